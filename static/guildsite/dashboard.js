// The dashboard's behaviour: REST calls for actions, one /api/ws socket for live updates, and the
// table's search, sort and keyboard. Everything the server renders works without it but the actions.
"use strict";

(() => {
  const body = document.body;
  const development = body.dataset.authDisabled === "1";
  const organizationId = body.dataset.organization || "";
  const guildPageId = body.dataset.guild || "";

  // --- the viewer's time zone: "today" on the next render is their day ---------------------------
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // IANA names ("America/New_York") are cookie-safe as they are; the server reads them unencoded.
    if (zone && /^[A-Za-z0-9_+\-\/]+$/.test(zone) && !document.cookie.split("; ").includes(`tz=${zone}`)) {
      document.cookie = `tz=${zone}; path=/; max-age=31536000; samesite=lax`;
    }
  } catch (_) { /* UTC it is */ }

  // --- toasts -----------------------------------------------------------------------------------
  const toasts = document.getElementById("toasts");
  function toast(text, kind = "ok") {
    const item = document.createElement("div");
    item.className = `toast ${kind}`;
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.textContent = text;
    toasts.append(item);
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
  }
  window.guildsiteToast = toast;  // the pages' own scripts (catalog.js, runs.js), loaded after this one, say things here too
  const pending = sessionStorage.getItem("guildsite.toast");
  if (pending) { sessionStorage.removeItem("guildsite.toast"); toast(pending); }

  // --- who acts (development mode names a user; signed in, the session says) ----------------------
  const actingInput = document.getElementById("acting-as");
  if (actingInput) {
    actingInput.value = localStorage.getItem("guildsite.actingAs") || actingInput.value;
    actingInput.addEventListener("change", () => localStorage.setItem("guildsite.actingAs", actingInput.value.trim()));
  }
  const actingUser = () => (actingInput ? actingInput.value.trim() : body.dataset.username) || "operator";

  // --- REST --------------------------------------------------------------------------------------
  const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || "";
  async function api(method, path, payload, { asUser = false } = {}) {
    const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    if (development && asUser) options.headers["X-User-Id"] = actingUser();
    if (!["GET", "HEAD"].includes(method)) options.headers["X-CSRFToken"] = csrfToken();
    const response = await fetch(path, options);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text.slice(0, 200) }; }
    if (!response.ok) {
      const error = new Error(problemText(data, response.status));
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }
  function problemText(data, status) {
    if (data && typeof data === "object") {
      if (data.detail) return String(data.detail);
      if (data.errors && typeof data.errors === "object") {
        return Object.entries(data.errors).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`).join("; ");
      }
      const fields = Object.entries(data).filter(([, v]) => Array.isArray(v));
      if (fields.length) return fields.map(([field, messages]) => `${field}: ${messages.join(" ")}`).join("; ");
    }
    return `the server answered ${status}`;
  }
  async function act(label, work) {
    try {
      const result = await work();
      toast(label);
      return result;
    } catch (error) {
      toast(`${label.replace(/\.$/, "")} failed: ${error.message}`, "error");
      return undefined;
    }
  }

  // --- the live socket: one for the page, whatever it follows --------------------------------------
  const banner = document.getElementById("connection-banner");
  const followed = new Set();
  let socket = null;
  let backoff = 500;
  const handlers = [];
  function follow(topic) {
    if (followed.has(topic)) return;
    followed.add(topic);
    if (socket && socket.readyState === WebSocket.OPEN) send({ type: "subscribe", data: { topics: [topic] } });
  }
  function send(frame) {
    socket.send(JSON.stringify({ v: 1, id: Math.random().toString(36).slice(2), topic: "system",
                                 ts: Math.floor(Date.now() / 1000), ...frame }));
  }
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
    socket.addEventListener("open", () => {
      backoff = 500;
      banner.hidden = true;
      body.dataset.live = "connected";
      if (followed.size) send({ type: "subscribe", data: { topics: [...followed] } });
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (_) { return; }
      if (frame.type === "ping") { send({ type: "pong", data: {} }); return; }
      for (const handler of handlers) handler(frame);
    });
    socket.addEventListener("close", (event) => {
      body.dataset.live = "disconnected";
      if (event.code === 4401) { banner.textContent = "Signed out: reload the page to sign in again."; banner.hidden = false; return; }
      banner.textContent = "Live updates lost: reconnecting…";
      banner.hidden = false;
      setTimeout(connect, backoff + Math.random() * backoff);
      backoff = Math.min(backoff * 2, 15000);
    });
  }
  const onEvent = (handler) => handlers.push(handler);

  // --- status cells ---------------------------------------------------------------------------------
  const ACTIVE = new Set(["REQUESTED", "PENDING_LAUNCH", "STARTING", "RUNNING", "WARNING"]);
  const RELAUNCHABLE = new Set(["ERROR", "WARNING"]);  // a STOPPED guild stays stopped
  function setStatus(cell, status, detail) {
    if (!cell) return;
    const pill = cell.querySelector(".pill.status");
    pill.className = `pill status ${status}`;
    pill.textContent = status;
    pill.title = detail || "";
    const note = cell.querySelector(".detail");
    if (note) note.textContent = (detail || "").slice(0, 120);
  }
  // The guild page's health timeline, as the server recorded it: read again when a move is heard, and after a
  // reconnection (a move may have been missed meanwhile).
  async function timelineReload() {
    const timeline = document.getElementById("health-timeline");
    if (!timeline) return;
    try {
      const answer = await fetch(timeline.dataset.url, { credentials: "same-origin" });
      if (answer.ok) timeline.innerHTML = await answer.text();  // our own template's escaped HTML
    } catch (_) { /* the next move, or the next reconnection, reads it again */ }
  }
  function guildStatusChanged(guildId, status, detail) {
    const group = document.getElementById(`guild-${guildId}`);
    if (group) {
      group.dataset.status = status;
      setStatus(group.querySelector(".guild-row td[data-label=Status]"), status, detail);
      const active = ACTIVE.has(status);
      group.querySelector("button.stop").hidden = !active;
      group.querySelector("button.relaunch").hidden = !RELAUNCHABLE.has(status);
      group.querySelectorAll("button.run-now").forEach((b) => { b.disabled = !active; });
    }
    if (guildPageId === guildId) {
      setStatus(document.getElementById("guild-status"), status, detail);
      timelineReload();
      const active = ACTIVE.has(status);
      const stop = document.getElementById("guild-stop");
      const relaunch = document.getElementById("guild-relaunch");
      if (stop) stop.hidden = !active;
      if (relaunch) relaunch.hidden = !RELAUNCHABLE.has(status);
    }
  }
  function agentStatusChanged(data) {
    if (data.external_agent_id) {
      document.querySelectorAll(`[data-external-id="${CSS.escape(data.external_agent_id)}"]`).forEach((row) => {
        if (row.dataset.row === "agent") return;  // a seat's own status comes with its guild's event
        setStatus(row.querySelector("td[data-label=Status]"), data.status, data.detail);
      });
      return;
    }
    const selector = `tr[data-guild-id="${CSS.escape(data.guild_id)}"][data-agent-id="${CSS.escape(data.agent_id)}"]`;
    document.querySelectorAll(selector).forEach((row) => setStatus(row.querySelector("td[data-label=Status]"), data.status, data.detail));
  }
  // Events sent between the page's render and its subscription (or while the socket was down) were missed:
  // each time the organisation is (re)followed, statuses are read again.
  let reloadAgentRows = null;  // the dashboard's: read an expanded guild's agent rows again
  const acked = new Set();
  async function resyncStatuses() {
    let next = `/api/guilds?org_id=${encodeURIComponent(organizationId)}&limit=1000`;
    try {
      while (next) {
        const response = await fetch(next, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) return;
        for (const guild of await response.json()) guildStatusChanged(guild.id, guild.status, guild.status_detail);
        next = (response.headers.get("Link") || "").match(/<([^>]+)>;\s*rel="next"/)?.[1];
      }
    } catch (_) { /* the next event, or the next reconnection, tells */ }
  }
  onEvent((frame) => {
    if (frame.type === "subscribe_error") {
      toast(`Live updates for ${frame.data?.topic || frame.topic} refused: ${frame.data?.reason || "error"}. Reload to retry.`, "error");
    } else if (frame.type === "subscribe_ack" && frame.topic === `org:${organizationId}`) {
      if (document.getElementById("guilds")) resyncStatuses();
    } else if (frame.type === "subscribe_ack" && frame.topic.startsWith("guild:") && frame.topic !== `guild:${guildPageId}`) {
      // The first ack follows the rows' own fetch; a later one is a reconnection, after which they may be stale.
      if (acked.has(frame.topic)) reloadAgentRows?.(frame.topic.slice("guild:".length));
      acked.add(frame.topic);
    }
    else if (frame.type === "subscribe_ack" && frame.topic === `guild:${guildPageId}`) {
      api("GET", `/api/guilds/${encodeURIComponent(guildPageId)}`)
        .then((guild) => guildStatusChanged(guild.id, guild.status, guild.status_detail)).catch(() => {});
    }
    else if (frame.type === "guild_status") {
      // Its health in a line when nothing is wrong enough to say why: "running 3 · unresponsive 1".
      const health = Object.entries(frame.data.agents || {}).map(([state, n]) => `${state} ${n}`).join(" · ");
      guildStatusChanged(frame.data.guild_id, frame.data.status, frame.data.detail || health);
    }
    else if (frame.type === "agent_status") agentStatusChanged(frame.data);
    else if (frame.type === "run_update") runUpdated(frame.data);
  });
  function runUpdated(data) {
    const guild = CSS.escape(data.guild_id);
    const selector = `tr[data-guild-id="${guild}"][data-agent-id="${CSS.escape(data.agent_id)}"] td[data-label="Last run"], `
                     + `#guild-${guild} .guild-row td[data-label="Last run"]`;
    document.querySelectorAll(selector).forEach((cell) => {
      cell.replaceChildren();
      const pill = document.createElement("span");
      pill.className = `pill ${data.status}`;
      pill.textContent = data.status;
      const time = document.createElement("time");
      time.dateTime = data.at;
      time.textContent = new Date(data.at).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      cell.append(pill, " ", time);
    });
  }

  // --- guild actions (both pages) ----------------------------------------------------------------
  async function stopGuild(guildId) {
    await act("Stopping the guild.", () => api("POST", `/api/guilds/${encodeURIComponent(guildId)}/stop`, { user_id: actingUser() }));
  }
  async function relaunchGuild(guildId) {
    await act("Relaunching the guild.", () => api("POST", `/api/guilds/${encodeURIComponent(guildId)}/relaunch`, {}));
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.matches("button.stop, #guild-stop")) stopGuild(button.dataset.guildId || guildPageId);
    else if (button.matches("button.relaunch, #guild-relaunch")) relaunchGuild(button.dataset.guildId || guildPageId);
    else if (button.matches("dialog .cancel")) button.closest("dialog").close();
  });

  const orgSelect = document.getElementById("org");
  if (orgSelect) orgSelect.addEventListener("change", () => orgSelect.form.submit());

  if (document.getElementById("guilds") || document.getElementById("launch-open")) dashboardPage();
  if (guildPageId) guildPage();
  if (organizationId) follow(`org:${organizationId}`);
  if (guildPageId) follow(`guild:${guildPageId}`);
  connect();

  // === /dashboard/ ==================================================================================
  function dashboardPage() {
    const table = document.getElementById("guilds");
    const search = document.getElementById("search");
    const noMatch = document.getElementById("no-match");
    const groups = () => table ? [...table.tBodies] : [];

    // Search: every word must appear in the guild's or one of its agents' names, ids, kinds.
    function applySearch() {
      const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const group of groups()) {
        const match = words.every((word) => group.dataset.search.includes(word));
        group.hidden = !match;
        shown += match ? 1 : 0;
      }
      if (noMatch) noMatch.hidden = shown > 0 || !table;
    }
    if (search) {
      search.addEventListener("input", applySearch);
      search.addEventListener("keydown", (event) => {
        if (event.key === "Escape") { search.value = ""; applySearch(); search.blur(); }
        if (event.key === "ArrowDown") { event.preventDefault(); moveFocus(1); }
      });
    }

    // Sort: click a column; again to reverse (on phones, where the header is hidden, a select). Guilds move with
    // their agents; a guild with no value ("never", unknown) sorts last either way.
    let sortKey = null;
    let ascending = true;
    const NUMERIC = new Set(["last-run", "runs-today", "runs-week", "next-run", "queue", "dead"]);
    const NEWEST_FIRST = groups();
    function sortBy(key, up) {
      sortKey = key;
      ascending = up;
      const attribute = key ? key.replace(/-([a-z])/g, (_, c) => c.toUpperCase()) : null;
      const value = (group) => {
        const raw = group.dataset[attribute] ?? "";
        if (!NUMERIC.has(key)) return raw;
        if (raw === "") return up ? Infinity : -Infinity;
        return Number(raw);
      };
      const sorted = key ? groups().sort((a, b) => {
        const x = value(a), y = value(b);
        const order = typeof x === "number" ? (x === y ? 0 : x < y ? -1 : 1) : String(x).localeCompare(String(y));
        return up ? order : -order;
      }) : NEWEST_FIRST;
      table.append(...sorted);
      table.querySelectorAll("th").forEach((th) => {
        const button = th.querySelector("button.sort");
        const on = button && button.dataset.key === key;
        th.setAttribute("aria-sort", on ? (up ? "ascending" : "descending") : "none");
        if (button) button.dataset.arrow = on ? (up ? "▲" : "▼") : "";
      });
    }
    table?.querySelectorAll("button.sort").forEach((button) => button.addEventListener("click", () => {
      sortBy(button.dataset.key, sortKey === button.dataset.key ? !ascending : true);
    }));
    const sortSelect = document.getElementById("sort-by");
    sortSelect?.addEventListener("change", () => { if (table) sortBy(sortSelect.value || null, true); });

    // Expand: show a guild's agents, and follow its topic for their status and runs.
    async function fetchAgentRows(group) {
      const response = await fetch(group.dataset.agentsUrl, { credentials: "same-origin" });
      if (!response.ok || response.redirected || !(response.headers.get("Content-Type") || "").startsWith("text/html")) {
        throw new Error(`the server answered ${response.status}`);
      }
      const html = await response.text();
      const focused = document.activeElement?.closest?.(".agent-row")?.dataset.agentId;
      group.querySelectorAll(".agent-row").forEach((row) => row.remove());
      group.insertAdjacentHTML("beforeend", html);  // our own server-rendered, escaped rows
      group.querySelectorAll(".agent-row").forEach((row) => { row.hidden = !group.classList.contains("expanded"); });
      if (focused) group.querySelector(`.agent-row[data-agent-id="${CSS.escape(focused)}"]`)?.focus();
    }
    function loadAgentRows(group) {
      if (!group.agentRows) {  // one fetch, however often it is asked for while on its way
        group.agentRows = fetchAgentRows(group).catch((problem) => {
          group.agentRows = null;
          throw problem;
        });
      }
      return group.agentRows;
    }
    reloadAgentRows = (guildId) => {
      const group = document.getElementById(`guild-${guildId}`);
      if (group && group.agentRows) { group.agentRows = null; loadAgentRows(group).catch(() => {}); }
    };
    async function setExpanded(group, expanded) {
      if (expanded) {
        try {
          await loadAgentRows(group);
        } catch (problem) {
          toast(`The guild's agents could not be read: ${problem.message}`, "error");
          return;
        }
      }
      const row = group.querySelector(".guild-row");
      const toggle = row.querySelector("button.expand");  // says expanded (a table row may not)
      toggle.setAttribute("aria-expanded", String(expanded));
      toggle.textContent = expanded ? "▾" : "▸";
      group.classList.toggle("expanded", expanded);
      group.querySelectorAll(".agent-row").forEach((agent) => { agent.hidden = !expanded; });
      if (expanded) follow(`guild:${group.dataset.guildId}`);
    }
    table?.addEventListener("click", (event) => {
      const toggle = event.target.closest("button.expand");
      if (toggle) {
        const group = toggle.closest("tbody");
        setExpanded(group, !group.classList.contains("expanded"));
      }
      const run = event.target.closest("button.run-now");
      if (run) runNow(run.closest("tr"));
      const pause = event.target.closest("button.pause");
      if (pause) togglePause(pause);
      const row = event.target.closest("tr[data-row]");
      if (row && !event.target.closest("a, button")) row.focus();
    });

    // Keyboard.
    const visibleRows = () => [...(table?.querySelectorAll("tr[data-row]") || [])]
      .filter((row) => !row.hidden && !row.closest("tbody").hidden);
    function moveFocus(step) {
      const rows = visibleRows();
      if (!rows.length) return;
      const at = rows.indexOf(document.activeElement?.closest?.("tr[data-row]"));
      const next = at === -1 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, at + step));
      rows[next].focus();
    }
    const typing = (target) => target.closest("input, textarea, select, [contenteditable]") !== null;
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
        event.preventDefault();
        search?.focus();
        search?.select();
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || document.querySelector("dialog[open]")) return;
      const row = document.activeElement?.closest?.("tr[data-row]");
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        moveFocus(event.key === "ArrowDown" ? 1 : -1);
      } else if (event.key === "Enter" && row?.dataset.row === "guild" && document.activeElement === row) {
        event.preventDefault();
        const group = row.closest("tbody");
        setExpanded(group, !group.classList.contains("expanded"));
      } else if (event.key.toLowerCase() === "n") {
        event.preventDefault();
        openLaunch();
      } else if (event.key.toLowerCase() === "r" && row?.dataset.row === "agent") {
        event.preventDefault();
        runNow(row);
      } else if (event.key === "Escape" && search && search.value) {
        search.value = "";
        applySearch();
      }
    });

    // Launch.
    const launchDialog = document.getElementById("launch-dialog");
    const launchForm = document.getElementById("launch-form");
    function openLaunch() {
      if (!launchDialog) return;
      document.getElementById("launch-error") && (document.getElementById("launch-error").textContent = "");
      launchDialog.showModal();
      (document.getElementById("launch-name") || launchDialog.querySelector("button")).focus();
    }
    document.getElementById("launch-open")?.addEventListener("click", openLaunch);
    launchForm?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const blueprint = document.getElementById("launch-blueprint").value;
      const name = document.getElementById("launch-name").value.trim();
      const error = document.getElementById("launch-error");
      const submit = document.getElementById("launch-submit");
      submit.disabled = true;
      try {
        const made = await api("POST", `/catalog/blueprints/${encodeURIComponent(blueprint)}/guilds`,
                               { guild_name: name, user_id: actingUser(), org_id: organizationId });
        sessionStorage.setItem("guildsite.toast", `Launched ${name} (${made.id}).`);
        location.reload();
      } catch (problem) {
        error.textContent = problem.message;
        submit.disabled = false;
      }
    });

    // Run now: the agent's schedule fires now; an agent without one is sent a message.
    const promptDialog = document.getElementById("prompt-dialog");
    let promptRow = null;
    async function runNow(row) {
      if (row.querySelector("button.run-now")?.disabled) { toast("The guild is not running: relaunch it first.", "error"); return; }
      if (row.dataset.scheduleId) {
        await act(`Running ${row.dataset.agentName} now.`, () => api("POST", `/api/schedules/${encodeURIComponent(row.dataset.scheduleId)}/run`, {}, { asUser: true }));
        return;
      }
      promptRow = row;
      document.getElementById("prompt-agent").textContent = row.dataset.agentName;
      document.getElementById("prompt-error").textContent = "";
      promptDialog.showModal();
      document.getElementById("prompt-text").focus();
    }
    document.getElementById("prompt-form")?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = document.getElementById("prompt-text").value;
      const row = promptRow;
      try {
        const sent = await api("POST", `/api/guilds/${encodeURIComponent(row.dataset.guildId)}/messages`,
                               { format: "text", payload: { text }, agent: row.dataset.agentId }, { asUser: true });
        promptDialog.close();
        document.getElementById("prompt-text").value = "";
        toast(`Sent to ${row.dataset.agentName}${sent.run_id ? ` (run ${sent.run_id})` : ""}.`);
        row.focus();
      } catch (problem) {
        document.getElementById("prompt-error").textContent = problem.message;
      }
    });

    // Pause / resume a schedule.
    async function togglePause(button) {
      const row = button.closest("tr");
      const enable = row.dataset.scheduleEnabled !== "1";
      const schedule = await act(enable ? "Schedule resumed." : "Schedule paused.",
        () => api("PATCH", `/api/schedules/${encodeURIComponent(button.dataset.scheduleId)}`, { enabled: enable }, { asUser: true }));
      if (!schedule) return;
      row.dataset.scheduleEnabled = schedule.enabled ? "1" : "0";
      button.textContent = schedule.enabled ? "Pause" : "Resume";
      const cell = row.querySelector("td.next-run");
      cell.replaceChildren();
      if (schedule.enabled && schedule.next_run_at) {
        const time = document.createElement("time");
        time.dateTime = schedule.next_run_at;
        time.textContent = new Date(schedule.next_run_at).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
        cell.append(time);
      } else {
        const muted = document.createElement("span");
        muted.className = "muted";
        muted.textContent = "paused";
        cell.append(muted);
      }
    }
  }

  // === /dashboard/guilds/<id>/ =========================================================================
  function guildPage() {
    const guildPath = `/api/guilds/${encodeURIComponent(guildPageId)}`;

    document.addEventListener("click", async (event) => {
      const redeliver = event.target.closest("button.redeliver");
      if (redeliver) {
        const done = await act("Redelivered.", () => api("POST", `${guildPath}/dead-letters/${encodeURIComponent(redeliver.dataset.messageId)}/redeliver`, {}));
        if (done !== undefined) redeliver.closest("tr").remove();
      }
      const resend = event.target.closest("button.redeliver-webhook");
      if (resend) await act("Delivery queued again.", () => api("POST", `/api/webhook-deliveries/${encodeURIComponent(resend.dataset.deliveryId)}/redeliver`, {}));
    });

    // The message browser: a topic, optional sender and format, newest first, "Older" pages back.
    const browser = document.getElementById("message-browser");
    if (!browser) return;
    const form = document.getElementById("message-filters");
    const list = document.getElementById("messages");
    const older = document.getElementById("messages-older");
    const topicSelect = document.getElementById("filter-topic");
    let nextBefore = null;
    let shown = new URLSearchParams();  // the filters of the list on the page: "Older" pages back through them
    async function load(append) {
      let params = new URLSearchParams({ limit: "25" });
      if (append) {
        params = new URLSearchParams(shown);
        if (nextBefore) params.set("before_id", nextBefore);
      } else {
        for (const [name, id] of [["topic", "filter-topic"], ["sender", "filter-sender"], ["format", "filter-format"]]) {
          const value = document.getElementById(id).value.trim();
          if (value) params.set(name, value);
        }
        shown = new URLSearchParams(params);
      }
      let page;
      try {
        page = await api("GET", `${guildPath}/history?${params}`);
      } catch (problem) {
        toast(`Messages could not be read: ${problem.message}`, "error");
        return;
      }
      if (!topicSelect.options.length || !append) {
        const chosen = topicSelect.value || page.topic;
        topicSelect.replaceChildren(...page.topics.map((topic) => new Option(topic, topic, false, topic === chosen)));
      }
      if (!append) list.replaceChildren();
      for (const message of page.messages) list.append(messageItem(message));
      nextBefore = page.next_before_id;
      older.hidden = !nextBefore;
      browser.dataset.loaded = String(Number(browser.dataset.loaded || 0) + 1);
      if (!list.children.length) {
        const empty = document.createElement("li");
        empty.className = "muted";
        empty.textContent = "No message matches.";
        list.append(empty);
      }
    }
    function messageItem(message) {
      const item = document.createElement("li");
      item.className = "message";
      const head = document.createElement("div");
      head.className = "small muted";
      const sender = message.sender ? (message.sender.name || message.sender.id) : "?";
      head.textContent = `${new Date(message.timestamp).toLocaleString()} · ${sender} · ${message.format}`;
      const payload = document.createElement("pre");
      payload.textContent = JSON.stringify(message.payload, null, 1).slice(0, 2000);
      item.append(head, payload);
      return item;
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
    older.addEventListener("click", () => load(true));
    load(false);
  }
})();
