// The catalog pages: launching a guild from a blueprint, and the blueprint form (agents, properties, routes, or the
// whole spec as JSON). Every write is a REST call with the viewer's session, so the page can do only what the API
// lets them do; the API's validation messages are shown next to the fields they name.
"use strict";

(() => {
  const body = document.body;
  const development = body.dataset.authDisabled === "1";

  // dashboard.js (loaded first) owns the toasts and the "Acting as" box; these read what it set up.
  const toast = window.guildsiteToast;
  const actingInput = document.getElementById("acting-as");
  const actingUser = () => (actingInput ? actingInput.value.trim() : body.dataset.username) || "operator";
  const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || "";

  // The answer as JSON, or an Error carrying the problem body ({status, code, detail, errors}).
  async function api(method, path, payload, headers = {}) {
    const response = await fetch(path, {
      method, credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken(), ...headers },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text.slice(0, 200) }; }
    if (!response.ok) {
      const error = new Error((data && data.detail) || `the server answered ${response.status}`);
      error.data = data || {};
      throw error;
    }
    return data;
  }
  // What a failed call says: the API's field messages, else its detail.
  function problemText(problem) {
    const messages = Object.values(problem.data?.errors || {}).flat();
    return messages.length ? messages.join(" ") : problem.message;
  }
  const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`);

  // --- launch (both pages) --------------------------------------------------------------------------
  const launchDialog = document.getElementById("bp-launch-dialog");
  let launching = null;
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.launch");
    if (!button || !launchDialog) return;
    // One key per dialog: a double submit (or a retry after a lost answer) launches one guild.
    launching = { id: button.dataset.blueprintId, key: newKey() };
    document.getElementById("bp-launch-blueprint-name").textContent = button.dataset.blueprintName;
    document.getElementById("bp-launch-error").textContent = "";
    const org = document.getElementById("bp-launch-org");
    if ([...org.options].some((option) => option.value === button.dataset.organization)) org.value = button.dataset.organization;
    launchDialog.showModal();
    document.getElementById("bp-launch-name").focus();
  });
  document.getElementById("bp-launch-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("bp-launch-name").value.trim();
    const error = document.getElementById("bp-launch-error");
    const submit = document.getElementById("bp-launch-submit");
    submit.disabled = true;
    try {
      const made = await api("POST", `/catalog/blueprints/${encodeURIComponent(launching.id)}/guilds`,
                             { guild_name: name, user_id: actingUser(), org_id: document.getElementById("bp-launch-org").value },
                             { "Idempotency-Key": launching.key });
      launchDialog.close();
      document.getElementById("bp-launch-name").value = "";
      const result = document.getElementById("bp-launch-result");
      const link = document.createElement("a");
      link.href = `/dashboard/guilds/${encodeURIComponent(made.id)}/`;
      link.id = "launched-guild";
      link.textContent = `Open ${name}`;
      result.replaceChildren(`Launched ${name} (${made.id}). `, link);
      result.hidden = false;
      toast(`Launched ${name}.`);
    } catch (problem) {
      error.textContent = problemText(problem);
    } finally {
      submit.disabled = false;
    }
  });

  const form = document.getElementById("blueprint-form");
  if (form) blueprintForm(form);
  const manage = document.getElementById("blueprint-manage");
  if (manage) blueprintManage(manage);

  // === sharing and deleting (the page shows them to those who may change the blueprint) =================
  function blueprintManage(section) {
    const id = section.dataset.blueprintId;
    const path = `/catalog/blueprints/${encodeURIComponent(id)}`;
    const list = document.getElementById("shared-list");
    let shared = JSON.parse(document.getElementById("blueprint-shared-with").textContent);

    function render() {
      list.replaceChildren(...shared.map((organization) => {
        const item = document.createElement("li");
        item.dataset.organization = organization;
        const name = document.createElement("code");
        name.textContent = organization;
        const stop = document.createElement("button");
        stop.type = "button";
        stop.className = "unshare";
        stop.textContent = "Stop sharing";
        stop.setAttribute("aria-label", `Stop sharing with ${organization}`);
        item.append(name, " ", stop);
        return item;
      }));
      document.getElementById("shared-none").hidden = shared.length > 0;
      const fact = document.getElementById("facts-shared-with");
      if (fact) fact.replaceChildren(...(shared.length ? shared.flatMap((organization, position) => {
        const code = document.createElement("code");
        code.textContent = organization;
        return position ? [", ", code] : [code];
      }) : ["—"]));
    }
    render();

    const input = document.getElementById("share-org");
    const error = document.getElementById("share-error");
    input.addEventListener("input", () => { input.removeAttribute("aria-invalid"); error.textContent = ""; });
    document.getElementById("share-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const organization = input.value.trim();
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      if (!organization) {
        error.textContent = "Give the id of the organisation to share it with.";
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      const submit = document.getElementById("share-submit");
      submit.disabled = true;
      try {
        await api("POST", `${path}/share/`, { organization_id: organization });
        if (!shared.includes(organization)) shared = [...shared, organization].sort();
        render();
        input.value = "";
        toast(`Shared with ${organization}.`);
      } catch (problem) {
        error.textContent = problemText(problem);
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } finally {
        submit.disabled = false;
      }
    });
    list.addEventListener("click", async (event) => {
      const button = event.target.closest("button.unshare");
      if (!button) return;
      const organization = button.closest("li").dataset.organization;
      button.disabled = true;
      try {
        await api("DELETE", `${path}/share/${encodeURIComponent(organization)}`);
        shared = shared.filter((other) => other !== organization);
        render();
        input.focus();
        toast(`No longer shared with ${organization}.`);
      } catch (problem) {
        button.disabled = false;
        toast(problemText(problem), "error");
      }
    });

    const dialog = document.getElementById("bp-delete-dialog");
    document.getElementById("blueprint-delete").addEventListener("click", () => {
      document.getElementById("bp-delete-error").textContent = "";
      dialog.showModal();
    });
    document.getElementById("bp-delete-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const confirmButton = document.getElementById("bp-delete-confirm");
      confirmButton.disabled = true;
      try {
        await api("DELETE", path);
        sessionStorage.setItem("guildsite.toast", `Deleted ${section.dataset.blueprintName}.`);
        location.assign("/dashboard/catalog/");
      } catch (problem) {
        document.getElementById("bp-delete-error").textContent = problemText(problem);
        confirmButton.disabled = false;
      }
    });
  }

  // === the blueprint form ===============================================================================
  function blueprintForm(form) {
    const blueprintId = form.dataset.blueprintId;
    const agentsBox = document.getElementById("agents");
    const template = document.getElementById("agent-template");
    const jsonText = document.getElementById("spec-json-text");
    const field = (id) => document.getElementById(id);
    let baseSpec = {};  // the spec's other keys (ids, dependency_map, gateway…): kept as they are
    let jsonMode = false;

    class LocalProblem extends Error {
      constructor(errors) { super("invalid"); this.errors = errors; }
    }
    const pretty = (value) => JSON.stringify(value, null, 2);
    function parseObject(text, errorKey, { blankIs = undefined } = {}) {
      if (!text.trim()) return blankIs;
      let value;
      try { value = JSON.parse(text); } catch (problem) { throw new LocalProblem({ [errorKey]: [`Not valid JSON: ${problem.message}`] }); }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new LocalProblem({ [errorKey]: ["Must be a JSON object."] });
      return value;
    }

    // --- agents: one fieldset each, numbered as the spec's list (spec.agents.0 is the first) ---------------
    function addAgent(agent = {}) {
      const node = template.content.firstElementChild.cloneNode(true);
      node.original = agent;  // its other keys (id, predicates, qos…) are kept as they are
      const select = node.querySelector("[data-field=class]");
      if (agent.class_name && ![...select.options].some((option) => option.value === agent.class_name)) {
        select.add(new Option(`${agent.class_name} (not in the catalog)`, agent.class_name));
      }
      if (agent.class_name) select.value = agent.class_name;
      node.querySelector("[data-field=name]").value = agent.name || "";
      node.querySelector("[data-field=description]").value = agent.description || "";
      node.querySelector("[data-field=topics]").value = (agent.additional_topics || []).join(", ");
      node.querySelector("[data-field=default]").checked = agent.listen_to_default_topic !== false;
      const properties = agent.properties || {};
      node.querySelector("[data-field=properties]").value = Object.keys(properties).length ? pretty(properties) : "";
      node.querySelector(".agent-remove").addEventListener("click", () => { node.remove(); renumber(); });
      agentsBox.append(node);
      renumber();
      return node;
    }
    // Ids follow the position, so an error on spec.agents.1 lands on the second fieldset shown.
    function renumber() {
      [...agentsBox.children].forEach((node, position) => {
        node.querySelectorAll(".agent-number").forEach((number) => { number.textContent = String(position + 1); });
        for (const input of node.querySelectorAll("[data-field]")) input.id = `agent-${position}-${input.dataset.field}`;
        for (const label of node.querySelectorAll("label[data-for]")) label.htmlFor = `agent-${position}-${label.dataset.for}`;
      });
    }
    function agentFromFieldset(node, position) {
      const value = (name) => node.querySelector(`[data-field=${name}]`);
      return {
        ...node.original,
        name: value("name").value.trim(),
        class_name: value("class").value,
        description: value("description").value.trim(),
        additional_topics: value("topics").value.split(",").map((topic) => topic.trim()).filter(Boolean),
        listen_to_default_topic: value("default").checked,
        properties: parseObject(value("properties").value, `agent-${position}-properties`, { blankIs: {} }),
      };
    }

    // --- the form <-> the spec ------------------------------------------------------------------------------
    function specFromForm() {
      const problems = {};
      // The spec keeps its own name and description; the blueprint's fill them only where the spec has none.
      const spec = { ...baseSpec, name: baseSpec.name || field("bp-name").value.trim(),
                     description: baseSpec.description ?? field("bp-description").value.trim() };
      const attempt = (work) => { try { return work(); } catch (problem) { if (!(problem instanceof LocalProblem)) throw problem; Object.assign(problems, problem.errors); return undefined; } };
      spec.agents = [...agentsBox.children].map((node, position) => attempt(() => agentFromFieldset(node, position)));
      const properties = attempt(() => parseObject(field("spec-properties").value, "spec-properties"));
      const routes = attempt(() => parseObject(field("spec-routes").value, "spec-routes"));
      delete spec.properties;
      delete spec.routes;
      if (properties !== undefined) spec.properties = properties;
      if (routes !== undefined) spec.routes = routes;
      if (Object.keys(problems).length) throw new LocalProblem(problems);
      return spec;
    }
    function fillForm(spec) {
      const { agents = [], properties, routes, ...rest } = spec;
      baseSpec = { ...rest };
      if (typeof spec.name === "string" && !field("bp-name").value) field("bp-name").value = spec.name;
      if (typeof spec.description === "string" && !field("bp-description").value) field("bp-description").value = spec.description;
      agentsBox.replaceChildren();
      for (const agent of Array.isArray(agents) ? agents : []) addAgent(agent && typeof agent === "object" ? agent : {});
      field("spec-properties").value = properties && Object.keys(properties).length ? pretty(properties) : "";
      field("spec-routes").value = routes && Object.keys(routes).length ? pretty(routes) : "";
    }
    function specFromJson() {
      const spec = parseObject(jsonText.value, "spec-json-text");
      if (spec === undefined) throw new LocalProblem({ "spec-json-text": ["The spec is empty: give at least a name and agents."] });
      // The name and description are the blueprint's too: the JSON, being edited, wins.
      if (typeof spec.name === "string" && !field("bp-name").value) field("bp-name").value = spec.name;
      if (typeof spec.description === "string" && !field("bp-description").value) field("bp-description").value = spec.description;
      return spec;
    }
    function currentSpec() {
      return jsonMode ? specFromJson() : specFromForm();
    }

    // --- the two modes ----------------------------------------------------------------------------------------
    function setMode(json) {
      clearErrors();
      try {
        if (json && !jsonMode) jsonText.value = pretty(specFromForm());
        if (!json && jsonMode) fillForm(specFromJson());
      } catch (problem) {
        if (!(problem instanceof LocalProblem)) throw problem;
        showErrors(problem.errors, { local: true });
        return;
      }
      jsonMode = json;
      field("spec-form").hidden = json;
      field("spec-json").hidden = !json;
      field("mode-form").setAttribute("aria-pressed", String(!json));
      field("mode-json").setAttribute("aria-pressed", String(json));
    }
    field("mode-form").addEventListener("click", () => setMode(false));
    field("mode-json").addEventListener("click", () => setMode(true));
    field("agent-add").addEventListener("click", () => addAgent({}).querySelector("[data-field=name]").focus());

    // --- errors: each next to its field (aria-describedby, role=alert), the rest at the top ----------------
    const TOP_FIELDS = { name: "bp-name", "spec.name": "bp-name", description: "bp-description", "spec.description": "bp-description",
                         version: "bp-version", organization_id: "bp-organization", exposure: "bp-exposure", category_id: "bp-category" };
    const AGENT_FIELDS = { name: "name", class_name: "class", description: "description", additional_topics: "topics",
                           listen_to_default_topic: "default", properties: "properties" };
    // The id of the field an error path is about ("spec.agents.0.properties.base_url": agent-0-properties), or null.
    function fieldFor(path) {
      if (field(path)) return path;  // the page's own checks name the field itself
      if (TOP_FIELDS[path]) return TOP_FIELDS[path];
      if (!path.startsWith("spec")) return null;
      if (jsonMode) return "spec-json-text";
      if (path === "spec.agents") return "agent-add";
      if (path.startsWith("spec.properties")) return "spec-properties";
      if (path.startsWith("spec.routes")) return "spec-routes";
      const agent = path.match(/^spec\.agents\.(\d+)(?:\.([a-z_]+))?/);
      if (!agent) return null;
      // A bare spec.agents.N is the agent as a whole: what it runs (its class and what that class accepts).
      const id = `agent-${agent[1]}-${agent[2] ? AGENT_FIELDS[agent[2]] : "class"}`;
      return field(id) ? id : null;
    }
    function clearErrors() {
      form.querySelectorAll(".field-error").forEach((node) => node.remove());
      form.querySelectorAll("[aria-invalid]").forEach((input) => {
        input.removeAttribute("aria-invalid");
        const rest = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.endsWith("-error"));
        if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
        else input.removeAttribute("aria-describedby");
      });
      const top = field("form-errors");
      top.replaceChildren();
      top.hidden = true;
    }
    function showErrors(errors, { local = false, detail = "" } = {}) {
      const byField = new Map();
      const unplaced = [];
      for (const [path, messages] of Object.entries(errors)) {
        const list = [].concat(messages).map(String);
        const id = fieldFor(path);
        // In JSON mode, or for a deep path, the path says where in the spec.
        const shown = id && (id === "spec-json-text" || path.split(".").length > 4) && !local ? list.map((m) => `${path}: ${m}`) : list;
        if (id) byField.set(id, [...(byField.get(id) || []), ...shown]);
        else unplaced.push(...list.map((message) => (path === "non_field_errors" ? message : `${path}: ${message}`)));
      }
      let first = null;
      for (const [id, messages] of byField) {
        const input = field(id);
        const note = document.createElement("p");
        note.className = "error field-error";
        note.id = `${id}-error`;
        note.setAttribute("role", "alert");
        note.textContent = messages.join(" ");
        (input.closest(".field") || input.parentElement).append(note);
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), note.id].filter(Boolean).join(" "));
        first = first || input;
      }
      if (!Object.keys(errors).length && detail) unplaced.push(detail);
      if (unplaced.length) {
        const top = field("form-errors");
        const heading = document.createElement("p");
        heading.textContent = "The blueprint was not saved:";
        const list = document.createElement("ul");
        for (const message of unplaced) {
          const item = document.createElement("li");
          item.textContent = message;
          list.append(item);
        }
        top.replaceChildren(heading, list);
        top.hidden = false;
        first = top;
      }
      first?.focus();
    }

    // --- save ------------------------------------------------------------------------------------------------
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors();
      let spec;
      try {
        spec = currentSpec();
      } catch (problem) {
        if (!(problem instanceof LocalProblem)) throw problem;
        showErrors(problem.errors, { local: true });
        return;
      }
      const payload = {
        name: field("bp-name").value.trim(), version: field("bp-version").value.trim(),
        description: field("bp-description").value.trim(), organization_id: field("bp-organization").value,
        exposure: field("bp-exposure").value, category_id: field("bp-category").value || null, spec,
      };
      // Development trusts the named author; signed in, the API takes the caller. An edit keeps its author.
      if (development && !blueprintId) payload.author_id = actingUser();
      const save = field("blueprint-save");
      save.disabled = true;
      try {
        if (blueprintId) {
          const saved = await api("PATCH", `/catalog/blueprints/${encodeURIComponent(blueprintId)}`, payload);
          if (!jsonMode) fillForm(saved.spec);  // secrets come back as "***", which the API keeps as they are
          else jsonText.value = pretty(saved.spec);
          toast(`Saved ${saved.name}.`);
        } else {
          const made = await api("POST", "/catalog/blueprints/", payload);
          sessionStorage.setItem("guildsite.toast", `Created ${payload.name}.`);
          location.assign(`/dashboard/catalog/blueprints/${encodeURIComponent(made.id)}/`);
        }
      } catch (problem) {
        showErrors(problem.data?.errors || {}, { detail: problem.message });
      } finally {
        save.disabled = false;
      }
    });

    // --- start: the stored spec, or one agent to fill in -------------------------------------------------------
    const stored = JSON.parse(document.getElementById("blueprint-spec").textContent);
    if (stored && typeof stored === "object") fillForm(stored);
    else addAgent({});
  }
})();
