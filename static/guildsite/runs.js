// The run page: Cancel (POST /api/runs/{id}/cancel with the session and CSRF token) and, while the run is
// queued or running, its status live from /api/ws (topic agent:{guild}:{agent}); once it ends, the page is read
// again for its final figures.
"use strict";

(() => {
  const body = document.body;
  const runId = body.dataset.run;
  if (!runId) return;
  const ACTIVE = new Set(["queued", "running"]);
  const statusCell = document.getElementById("run-status");
  const cancel = document.getElementById("run-cancel");
  const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || "";

  const say = window.guildsiteToast;  // dashboard.js's toasts (it is loaded first)
  function showStatus(status) {
    const pill = document.createElement("span");
    pill.className = `pill ${status}`;
    pill.textContent = status.replace("_", " ");
    statusCell.replaceChildren(pill);
    if (!ACTIVE.has(status)) {
      if (cancel) cancel.hidden = true;
      sessionStorage.setItem("guildsite.toast", `The run is ${status}.`);  // dashboard.js shows it after the reload
      location.reload();
    }
  }

  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const response = await fetch(`/api/runs/${encodeURIComponent(runId)}/cancel`, {
          method: "POST", credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        });
        if (response.status !== 202) {
          const problem = await response.json().catch(() => ({}));
          throw new Error(problem.detail || `the server answered ${response.status}`);
        }
        cancel.textContent = "Cancelling…";
        say("Cancelling the run.");
      } catch (error) {
        cancel.disabled = false;
        say(`Cancelling failed: ${error.message}`, "error");
      }
    });
  }

  const status = statusCell.querySelector(".pill")?.classList[1];
  if (!ACTIVE.has(status)) return;
  const topic = `agent:${body.dataset.runGuild}:${body.dataset.runAgent}`;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
  const send = (frame) => socket.send(JSON.stringify({ v: 1, id: Math.random().toString(36).slice(2), topic: "system",
                                                       ts: Math.floor(Date.now() / 1000), ...frame }));
  socket.addEventListener("open", () => send({ type: "subscribe", data: { topics: [topic] } }));
  socket.addEventListener("message", async (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch (_) { return; }
    if (frame.type === "ping") send({ type: "pong", data: {} });
    else if (frame.type === "run_update" && frame.data?.run_id === runId) showStatus(frame.data.status);
    else if (frame.type === "subscribe_ack" && frame.topic === topic) {
      // It may have ended between the page's render and this subscription.
      const response = await fetch(`/api/runs/${encodeURIComponent(runId)}`, { credentials: "same-origin" });
      if (response.ok) {
        const run = await response.json();
        if (!ACTIVE.has(run.status)) showStatus(run.status);
      }
    }
  });
  socket.addEventListener("close", () => { body.dataset.runLive = "closed"; });
})();
