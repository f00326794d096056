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
  const me = {
    id: development ? localStorage.getItem("guildsite.userId") || `user-${Math.random().toString(36).slice(2, 8)}`
      : signedIn,
    name: localStorage.getItem("guildsite.userName") || (development ? "Guest" : signedIn),
  };
  $("user-id").value = me.id;
  $("user-name").value = me.name;
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
  async function loadPicker() {
    try {
      const [blueprints, guilds, myself] = await Promise.all([
        api("GET", "/catalog/blueprints/"),
        api("GET", "/api/guilds?status=RUNNING,WARNING,STARTING,PENDING_LAUNCH,REQUESTED"),
        api("GET", "/api/auth/me"),
      ]);
      fill($("blueprints"), blueprints, (b) => `${b.name} ${b.version || ""}`.trim());
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
      const name = $("guild-name").value.trim() || `${$("blueprints").selectedOptions[0].text} for ${me.name}`;
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
      if (guild.status === "STOPPED") {
        stopped = true;
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
      $("participants").replaceChildren(...message.payload.participants.map((p) => {
        const li = document.createElement("li");
        li.textContent = `${p.name} (${p.type})`;
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
    li.append(who);
    return li;
  }

  // Token chunks show the answer as it is written, with a Stop button; they are never a resume point (not
  // stored). The final reply that follows replaces them, so nothing shows twice.
  function onStreamChunk(message) {
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
      const used = document.createElement("small");
      used.className = "tool-output";
      const output = String(chunk.content || "");
      used.textContent = `${chunk.tool_name || "tool"}${chunk.ok === false ? " (failed)" : ""}: ${output.length > 200 ? `${output.slice(0, 200)}…` : output}`;
      stream.li.insertBefore(used, stream.text);
    }
    stream.li.scrollIntoView({ block: "end" });
  }

  function onUserMessage(message) {
    if (message.format === "stream_chunk") return onStreamChunk(message);
    if (message.format !== ERROR || message.topic_published_to) lastSeenId = message.id;
    if (message.id && seen.has(message.id)) return;
    if (message.id) seen.add(message.id);
    // The streamed answer gives way to the reply, in its place in the log; after an error it stays, as far as it got.
    const stream = message.in_response_to != null ? streams.get(String(message.in_response_to)) : undefined;
    if (stream) {
      streams.delete(String(message.in_response_to));
      stream.stop.remove();
      stream.li.classList.remove("streaming");
    }
    const li = messageItem(message);
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
    if (stream && message.format !== ERROR) stream.li.replaceWith(li); else $("log").append(li);
    li.scrollIntoView({ block: "end" });
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
      conversationId: guildId,
      timestamp: new Date().toISOString(),
    };
    if (file) {
      try {
        const form = new FormData();
        form.append("file", file);
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
