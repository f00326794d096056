// guildsite chat page: seed 000's synchronization strategy, shown to the person at each step.
// System socket first; on the first health report, the user socket; on "ok", chat.
(() => {
  "use strict";
  const REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport";
  const FILES = "rustic_ai.core.ui_protocol.types.FilesWithTextFormat";
  const ERROR = "rustic_ai.core.agents.commons.message_formats.ErrorMessage";
  const TIMEOUTS = { HEALTH_REPORT: 10000, READY_STATUS: 15000, CONNECTION: 5000 };
  const MAX_RECONNECT_ATTEMPTS = 5;
  const BACKOFF_BASE = 1000;
  // 4401 no or expired sign-in, 4403 not allowed, 1008 too many sockets: reconnecting would not help.
  const FINAL_CLOSE_CODES = new Set([1008, 4400, 4401, 4403, 4404, 4410]);

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

  // With authentication on you are who you signed in as; in development, whoever you type (trusted).
  const development = document.body.dataset.authDisabled === "1";
  const signedIn = document.body.dataset.username || "";
  // Names come from accounts: signed in, yours (your full name, else your user id); in development, what you
  // typed last time, else your user id. Never one name for everybody.
  const myId = development ? localStorage.getItem("guildsite.userId") || `user-${Math.random().toString(36).slice(2, 8)}`
    : signedIn;
  const me = {
    id: myId,
    name: (development && localStorage.getItem("guildsite.userName")) || document.body.dataset.displayName || myId,
  };
  $("user-id").value = me.id;
  $("user-name").value = me.name;
  $("user-name").readOnly = !development;  // signed in, your name is your account's
  const remember = () => {
    if (development) me.id = $("user-id").value.trim() || me.id;
    me.name = $("user-name").value.trim() || me.name;
    localStorage.setItem("guildsite.userId", me.id);
    localStorage.setItem("guildsite.userName", me.name);
  };
  const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || "";
  // Development names the user on every call; signed in, the session cookie says who it is.
  const asMe = (url) => development ? `${url}${url.includes("?") ? "&" : "?"}user_id=${encodeURIComponent(me.id)}` : url;

  async function api(method, url, body) {
    const options = { method, headers: {}, credentials: "same-origin" };
    if (development) options.headers["X-User-Id"] = me.id;
    if (!["GET", "HEAD"].includes(method)) options.headers["X-CSRFToken"] = csrfToken();
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.detail) || `${method} ${url}: ${response.status}`);
    return data;
  }

  // --- picking a guild -----------------------------------------------------------------
  let blueprintNames = new Map();
  async function loadPicker() {
    try {
      const [blueprints, guilds, myself] = await Promise.all([
        api("GET", "/catalog/blueprints/"),
        api("GET", "/api/guilds?status=RUNNING,WARNING,STARTING,PENDING_LAUNCH,REQUESTED"),
        api("GET", "/api/auth/me"),
      ]);
      blueprintNames = new Map(blueprints.map((b) => [b.id, `${b.name} ${b.version || ""}`.trim()]));
      // Two blueprints may share a name and version: say whose, when, and what each needs.
      fill($("blueprints"), blueprints, (b) => [
        `${b.name} ${b.version || ""}`.trim(),
        b.organization_id ? `· ${b.organization_id}` : "",
        b.author_id ? `· by ${b.author_id}` : "",
        b.created_at ? `· ${new Date(b.created_at).toLocaleDateString()}` : "",
        (b.needs || []).length ? `· needs ${b.needs.map((n) => (n === "redis" ? "Redis" : n)).join(", ")}` : "",
      ].filter(Boolean).join(" "));
      fill($("guilds"), guilds, (g) => `${g.name} (${g.status})`);
      // Launching needs the role member; development makes you one of your own when you have none.
      const launchable = myself.organizations.filter((o) => o.role !== "viewer");
      fill($("organizations"), launchable, (o) => `${o.name} (${o.role})`);
    } catch (err) {
      $("pick-error").textContent = err.message;
    }
  }
  function fill(select, items, label) {
    select.replaceChildren(...items.map((item) => new Option(label(item), item.id)));
    if (!items.length) select.append(new Option("(none)", ""));
  }
  $("launch").addEventListener("click", async () => {
    remember();
    const blueprintId = $("blueprints").value;
    if (!blueprintId) return;
    $("pick-error").textContent = "";
    try {
      const name = $("guild-name").value.trim() || `${blueprintNames.get(blueprintId) || "Guild"} for ${me.name}`;
      const { id } = await api("POST", `/catalog/blueprints/${blueprintId}/guilds`,
        { guild_name: name.slice(0, 64), user_id: me.id, org_id: $("organizations").value,
          description: "Launched from the chat page" });
      location.search = `?guild=${encodeURIComponent(id)}`;
    } catch (err) {
      $("pick-error").textContent = `Launch failed: ${err.message}`;
    }
  });
  $("open").addEventListener("click", () => {
    remember();
    if ($("guilds").value) location.search = `?guild=${encodeURIComponent($("guilds").value)}`;
  });

  // --- conversations with the guild's LLM agents ---------------------------------------------
  // A conversation is a conversation id on what you send; an LLM agent keeps one thread per conversation
  // (GET /api/threads). Without LLM agents the page keeps seed 000's one conversation, the guild's id.
  const conversation = {
    key: () => `guildsite.conversation.${params.get("guild")}`,
    current: () => localStorage.getItem(conversation.key()) || params.get("guild"),
    set(id) { localStorage.setItem(conversation.key(), id); },
    active: false,  // the guild has LLM agents: the panel shows, and other conversations' messages stay out of the log
  };

  async function setUpThreads(guild) {
    const keeping = new Set(guild.thread_agent_ids || []);  // the server knows which classes keep threads
    const agents = ((guild.spec && guild.spec.agents) || []).filter((a) => keeping.has(a.id));
    if (!agents.length) return;
    conversation.active = true;
    $("threads-panel").hidden = false;
    $("thread-agent").replaceChildren(...agents.map((a) => new Option(a.name, a.id)));
    $("thread-agent-label").hidden = agents.length < 2;
    $("thread-agent").addEventListener("change", refreshThreads);
    $("new-thread").addEventListener("click", () => {
      conversation.set(`c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`);
      leaveConversation();
      refreshThreads();
      $("text").focus();
    });
    await refreshThreads();
  }

  // With conversations, a message of another one (another tab's, or one switched away from) stays out of the log.
  function otherConversation(message) {
    return conversation.active && message.conversation_id && message.conversation_id !== conversation.current();
  }
  function leaveConversation() {  // its streams too: their replies will not come here
    streams.clear();
    $("log").replaceChildren();
  }

  let refreshTimer = null;
  function refreshThreadsSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshThreads, 300);  // one read for a burst of messages
  }

  async function refreshThreads() {
    const agent = $("thread-agent").value;
    let threads = [];
    try {
      threads = await api("GET", `/api/threads?guild_id=${encodeURIComponent(guildId)}&agent_id=${encodeURIComponent(agent)}`);
    } catch (err) {
      $("notice").textContent = `Conversations could not be read: ${err.message}`;
      return;
    }
    const current = conversation.current();
    $("threads").replaceChildren(...threads.map((thread) => {
      const li = document.createElement("li");
      li.dataset.threadId = thread.id;
      if (thread.conversation_id === current) li.classList.add("current");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "thread-open";
      open.textContent = thread.title || `Conversation of ${new Date(thread.created_at).toLocaleString()}`;
      if (thread.conversation_id === current) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => switchTo(thread));
      const rename = document.createElement("button");
      rename.type = "button";
      rename.className = "thread-rename";
      rename.textContent = "Rename";
      rename.setAttribute("aria-label", `Rename ${open.textContent}`);
      rename.addEventListener("click", async () => {
        const title = prompt("A name for this conversation", thread.title || "");
        if (title === null) return;
        try {
          await api("PATCH", `/api/threads/${encodeURIComponent(thread.id)}`, { title: title.trim().slice(0, 200) });
        } catch (err) {
          $("notice").textContent = `Rename failed: ${err.message}`;
        }
        refreshThreads();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "thread-delete";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete ${open.textContent}`);
      remove.addEventListener("click", async () => {
        if (!confirm("Delete this conversation and its messages?")) return;
        try {
          await api("DELETE", `/api/threads/${encodeURIComponent(thread.id)}`);
        } catch (err) {
          $("notice").textContent = `Delete failed: ${err.message}`;
          return;
        }
        if (thread.conversation_id === conversation.current()) {
          conversation.set(`c-${Date.now().toString(36)}`);
          leaveConversation();
        }
        refreshThreads();
      });
      li.append(open, rename, remove);
      return li;
    }));
  }

  // Switching shows that thread's messages (as stored) and sends into it from now on.
  async function switchTo(thread) {
    conversation.set(thread.conversation_id);
    let messages = [];
    try {
      messages = await api("GET", `/api/threads/${encodeURIComponent(thread.id)}/messages?limit=1000`);
    } catch (err) {
      $("notice").textContent = `The conversation could not be read: ${err.message}`;
      return;
    }
    streams.clear();
    const agentName = $("thread-agent").selectedOptions[0]?.text || "agent";
    const toolNames = new Map();  // a tool's answer names only the call it answers
    for (const m of messages) for (const call of m.tool_calls || []) toolNames.set(call.id, call.function?.name);
    $("log").replaceChildren(...messages.filter((m) => m.role !== "system").map((m) => {
      const sender = m.role === "user" ? { id: `upa-${me.id}`, name: me.name } : { id: thread.agent_id, name: agentName };
      const li = messageItem({ sender, timestamp: m.created_at });
      if (m.role === "tool") li.append(toolOutput(toolNames.get(m.tool_call_id), m.tool_result ?? m.content, false));
      else li.append(document.createTextNode(m.content || ""));
      for (const call of m.tool_calls || []) {
        li.append(toolOutput(`${call.function?.name || "tool"} (called)`, call.function?.arguments || "", false));
      }
      return li;
    }));
    refreshThreads();
  }

  // --- the guild room ------------------------------------------------------------------
  const guildId = params.get("guild");
  const seen = new Set();
  let systemWS = null, userWS = null;
  let state = "disconnected";
  let firstReport = false, ready = false, stopped = false;
  let reconnectAttempts = 0, lastSeenId = null, timers = [], refusal = "";

  function setState(next, text) {
    state = next;
    $("connection").textContent = next.replace("_", " ");
    $("connection").className = `pill ${next}`;
    if (text !== undefined) $("notice").textContent = text;
  }
  function setComposer(enabled) {
    for (const id of ["text", "file", "send"]) $(id).disabled = !enabled;
  }
  function clearTimers() { timers.forEach(clearTimeout); timers = []; }

  async function openRoom() {
    $("pick").hidden = true;
    $("room").hidden = false;
    try {
      const guild = await api("GET", `/api/guilds/${encodeURIComponent(guildId)}`);
      $("guild-title").textContent = guild.name;
      showStatus(guild.status);
      setUpThreads(guild);
      if (guild.status === "STOPPED") {
        stopped = true;
        $("stop").disabled = true;
        setState("stopped", "This guild is stopped. Launch a new one from its blueprint.");
      }
    } catch (err) {
      setState("error", `Cannot open the guild: ${err.message}`);
      return;
    }
    connect();
  }

  function showStatus(status) {
    $("guild-status").textContent = status;
    $("guild-status").className = `pill ${status}`;
  }

  function connect() {
    clearTimers();
    firstReport = false;
    ready = false;
    setComposer(false);
    setState("connecting", "Connecting to guild system…");
    systemWS = new WebSocket(`${wsBase}/ws/guilds/${encodeURIComponent(guildId)}/syscomms/${encodeURIComponent(me.id)}`);
    const ws = systemWS;
    timers.push(setTimeout(() => {
      if (ws.readyState !== WebSocket.OPEN) fail("Connection to the guild system timed out");
    }, TIMEOUTS.CONNECTION));
    timers.push(setTimeout(() => { if (!firstReport) fail("Guild initialization timed out"); }, TIMEOUTS.HEALTH_REPORT));
    timers.push(setTimeout(() => { if (!ready && !stopped) fail("Guild failed to reach ready state"); }, TIMEOUTS.READY_STATUS));
    ws.onopen = () => setState("system_connected", "Connected, waiting for guild initialization…");
    ws.onmessage = (event) => onSystemMessage(JSON.parse(event.data));
    ws.onclose = (event) => onClosed(ws, event);
  }

  function onSystemMessage(message) {
    if (message.format === REPORT) {
      const health = message.payload.guild_health;
      renderHealth(message.payload.agents || {});
      if (message.payload.guild_status) showStatus(message.payload.guild_status);
      if (!firstReport) {
        firstReport = true;
        setState("guild_initializing", "Guild initializing, connecting user session…");
        connectUser();
      }
      if (health === "ok" && !ready) {
        ready = true;
        reconnectAttempts = 0;
        setComposer(!stopped);
        setState("ready", "Ready!");
        sendSystem({ format: "participantsRequest", payload: { guild_id: guildId }, sender: { id: me.id } });
      }
      if (health === "warning") $("notice").textContent = "Some agents are experiencing issues";
      if (health === "error") $("notice").textContent = "Guild failed to initialize properly";
    } else if (message.format === "Participants") {
      const people = message.payload.participants;
      const named = new Map();
      for (const p of people) named.set(p.name, (named.get(p.name) || 0) + 1);
      $("participants").replaceChildren(...people.map((p) => {
        const li = document.createElement("li");
        // Two people called alike are told apart by their user ids.
        const id = String(p.id || "").replace(/^upa-/, "");
        li.textContent = named.get(p.name) > 1 ? `${p.name} [${id}] (${p.type})` : `${p.name} (${p.type})`;
        return li;
      }));
    } else if (message.format === "guildStatus") {
      showStatus(message.payload.status);
      if (message.payload.status === "STOPPED") onStopped();
    } else if (message.format === ERROR) {
      refusal = message.payload.error_message;
      $("notice").textContent = message.payload.error_message;
    }
  }

  function connectUser() {
    const resume = lastSeenId ? `?last_seen_id=${encodeURIComponent(lastSeenId)}` : "";
    userWS = new WebSocket(
      `${wsBase}/ws/guilds/${encodeURIComponent(guildId)}/usercomms/${encodeURIComponent(me.id)}/${encodeURIComponent(me.name)}${resume}`);
    const ws = userWS;
    ws.onopen = () => { if (!ready) setState("user_connecting", "User session connected, waiting for agents…"); };
    ws.onmessage = (event) => onUserMessage(JSON.parse(event.data));
    ws.onclose = (event) => onClosed(ws, event);
  }

  // Answers an LLM agent is streaming, by the message they answer: {li, text, seq, stop}.
  const streams = new Map();

  function messageItem(message) {
    const li = document.createElement("li");
    const mine = message.sender && message.sender.id === `upa-${me.id}`;
    if (mine) li.classList.add("mine");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.sender ? message.sender.name || message.sender.id : "";
    const when = Number(message.timestamp) || Date.parse(message.timestamp) || Date.now();
    const time = document.createElement("time");
    time.dateTime = new Date(when).toISOString();
    time.textContent = ` · ${new Date(when).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    who.append(time);
    li.append(who);
    return li;
  }

  // Token chunks show the answer as it is written, with a Stop button; they are never a resume point (not
  // stored). The final reply that follows replaces them, so nothing shows twice.
  function onStreamChunk(message) {
    if (otherConversation(message)) return;  // its thread has it
    const chunk = message.payload || {};
    let stream = streams.get(chunk.in_response_to);
    const ended = chunk.chunk_type === "assistant_message";
    if (ended && !chunk.content) { // stopped before the model said anything: nothing to show
      if (stream) stream.li.remove();
      streams.delete(chunk.in_response_to);
      return;
    }
    if (!stream) {
      const li = messageItem(message);
      li.classList.add("streaming");
      const text = document.createTextNode("");
      const stop = document.createElement("button");
      stop.type = "button";
      stop.className = "stop-run";
      stop.textContent = "Stop";
      stop.addEventListener("click", () => {
        if (!userWS || userWS.readyState !== WebSocket.OPEN) return;
        stop.disabled = true;
        stop.textContent = "Stopping…";
        userWS.send(JSON.stringify({ id: `cancel-${chunk.run_id}`, format: "cancelRequest", payload: { run_id: chunk.run_id } }));
      });
      li.append(text, stop);
      $("log").append(li);
      stream = { li, text, seq: 0, stop };
      streams.set(chunk.in_response_to, stream);
    }
    if (chunk.seq <= stream.seq) return; // a repeat
    stream.seq = chunk.seq;
    if (ended) {
      stream.text.data = chunk.content;
      stream.stop.remove();
    } else if (chunk.chunk_type === "assistant_token") {
      stream.text.appendData(chunk.content);
    } else if (chunk.chunk_type === "tool_output") {
      stream.li.insertBefore(toolOutput(chunk.tool_name, chunk.content, chunk.ok === false), stream.text);
    }
    stream.li.scrollIntoView({ block: "end" });
  }

  function onUserMessage(message) {
    if (message.format === "stream_chunk") return onStreamChunk(message);
    if (message.format !== ERROR || message.topic_published_to) lastSeenId = message.id;
    if (message.id && seen.has(message.id)) return;
    if (message.id) seen.add(message.id);
    // Another conversation's (another tab's, or one switched away from): its thread has it; the list says so.
    if (otherConversation(message)) {
      refreshThreadsSoon();
      return;
    }
    // The streamed answer gives way to the reply, in its place in the log; after an error it stays, as far as it got.
    const stream = message.in_response_to != null ? streams.get(String(message.in_response_to)) : undefined;
    if (stream) {
      streams.delete(String(message.in_response_to));
      stream.stop.remove();
      stream.li.classList.remove("streaming");
    }
    const li = messageItem(message);
    if (conversation.active && !li.classList.contains("mine")) refreshThreadsSoon();  // a new thread, a new title
    if (message.format === ERROR) {
      refusal = message.payload.error_message;
      li.classList.add("error");
      li.append(document.createTextNode(`${message.payload.error_type}: ${message.payload.error_message}`));
    } else {
      li.append(document.createTextNode(message.payload.text ?? JSON.stringify(message.payload)));
      for (const file of message.payload.files || []) {
        // Only this site's file URLs become links: a message could carry javascript: or another site.
        const url = safeFileUrl(file.url);
        const link = document.createElement(url ? "a" : "span");
        if (url) {
          link.href = asMe(url);
          link.target = "_blank";
          link.rel = "noopener";
        }
        link.textContent = ` [file: ${file.name}]`;
        li.append(link);
      }
    }
    if (stream && message.format !== ERROR) {
      // The tools it used stay with the answer, folded, above its text.
      const tools = stream.li.querySelectorAll("details.tool-output");
      if (tools.length) {
        const box = Object.assign(document.createElement("div"), { className: "tools" });
        box.append(...tools);
        li.firstElementChild.after(box);  // after who said it
      }
      stream.li.replaceWith(li);
    } else $("log").append(li);
    li.scrollIntoView({ block: "end" });
  }

  // A tool's output, folded: its name shows, the output opens on demand.
  function toolOutput(name, content, failed) {
    const box = document.createElement("details");
    box.className = "tool-output";
    const summary = document.createElement("summary");
    summary.textContent = `${name || "tool"}${failed ? " (failed)" : ""}`;
    const output = document.createElement("pre");
    const text = typeof content === "string" ? content : JSON.stringify(content, null, 1);
    output.textContent = text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
    box.append(summary, output);
    return box;
  }

  function safeFileUrl(raw) {
    try {
      const url = new URL(String(raw), location.origin);
      return url.origin === location.origin && url.pathname.startsWith("/api/guilds/") ? url.pathname + url.search : null;
    } catch {
      return null;
    }
  }

  function renderHealth(agents) {
    $("health").tBodies[0].replaceChildren(...Object.entries(agents).map(([id, beat]) => {
      const row = document.createElement("tr");
      const latency = beat.checkmeta && beat.checkmeta.observed_latency != null ? `${beat.checkmeta.observed_latency} ms` : "";
      for (const text of [beat.name || id, beat.checkstatus, latency]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.children[1].className = `pill ${beat.checkstatus}`;
      return row;
    }));
  }

  function sendSystem(frame) {
    if (systemWS && systemWS.readyState === WebSocket.OPEN) systemWS.send(JSON.stringify(frame));
  }

  function onStopped() {
    stopped = true;
    setComposer(false);
    $("stop").disabled = true;
    clearTimers();
    setState("stopped", "The guild is stopped. Launch a new one from its blueprint.");
  }

  function fail(text) {
    if (state === "error" || stopped) return;
    setState("error", text);
    [systemWS, userWS].forEach((ws) => ws && ws.close());
  }

  function onClosed(ws, event) {
    if (ws !== systemWS && ws !== userWS) return; // an old socket from before a reconnect
    if (FINAL_CLOSE_CODES.has(event.code)) {
      if (event.code === 4410) onStopped();
      else if (event.code === 4401) setState("error", "You are not signed in (or your sign-in expired): reload and sign in.");
      else setState("error", `The guild refused the connection (${event.code}${refusal ? `: ${refusal}` : ""})`);
      return;
    }
    if (stopped || state === "reconnecting") return;
    setComposer(false);
    [systemWS, userWS].forEach((other) => other && other !== ws && other.close());
    systemWS = userWS = null;
    reconnectWithBackoff();
  }

  function reconnectWithBackoff() {
    if (reconnectAttempts >= MAX_RECONNECT_ATTEMPTS) {
      setState("failed", "Maximum reconnection attempts reached. Reload to try again.");
      return;
    }
    const delay = BACKOFF_BASE * 2 ** reconnectAttempts;
    reconnectAttempts++;
    setState("reconnecting", `Connection lost; reconnecting in ${delay / 1000}s (attempt ${reconnectAttempts})…`);
    setTimeout(connect, delay);
  }

  // --- sending -------------------------------------------------------------------------
  let counter = 0;
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    const file = $("file").files[0];
    if (!text && !file) return;
    if (!userWS || userWS.readyState !== WebSocket.OPEN || !ready) {
      $("notice").textContent = "Not connected: your message was not sent.";
      return;
    }
    const frame = {
      id: `c${Date.now()}-${++counter}`,
      format: "text",
      payload: { text },
      sender: { id: me.id, name: me.name },
      conversationId: conversation.current(),
      timestamp: new Date().toISOString(),
    };
    if (file) {
      try {
        const form = new FormData();
        form.append("file", file);
        form.append("on_conflict", "rename");  // the same file again is stored as "name (2).ext", not refused
        const uploaded = await api("POST", asMe(`/api/guilds/${encodeURIComponent(guildId)}/files/`), form);
        frame.format = FILES;
        frame.payload = { files: [{ name: uploaded.filename, url: uploaded.url }], text, tagged_users: [] };
      } catch (err) {
        $("notice").textContent = `Upload failed: ${err.message}`;
        return;
      }
    }
    userWS.send(JSON.stringify(frame));
    $("text").value = "";
    $("file").value = "";
  });

  $("stop").addEventListener("click", () => {
    if (!confirm("Stop this guild for everyone? A stopped guild cannot be restarted.")) return;
    sendSystem({ format: "stopGuildRequest", payload: { guild_id: guildId }, sender: { id: me.id } });
  });

  if (guildId) openRoom(); else loadPicker();
})();
