// Conduit chat page: REST for agents, sessions and stored messages; one websocket for live turns.
// The websocket protocol is documented in assistant/consumers.py. The open session lives in the URL
// hash (#session-12), so a reload comes back to it and resumes a turn that is still running.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    agent: $("agent-picker"), sessions: $("session-list"), messages: $("messages"), status: $("status"),
    composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"), newSession: $("new-session"),
  };
  const state = {
    ws: null, sessionId: null, lastSeq: 0, running: false, reconnectDelay: 500,
    current: null, // the assistant bubble being streamed
  };

  // --- REST ------------------------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) { location.href = "/accounts/login/?next=/chat/"; return null; }
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }
  const results = (page) => (Array.isArray(page) ? page : (page && page.results) || []);

  async function loadAgents() {
    const agents = results(await getJSON("/api/v1/agents?page_size=200"));
    els.agent.replaceChildren(...agents.map((agent) => new Option(agent.name, agent.slug)));
    if (!agents.length) setStatus("No agents yet: ask an administrator to create one.");
  }

  async function loadSessions() {
    const sessions = results(await getJSON("/api/v1/sessions?page_size=50"));
    els.sessions.replaceChildren(...sessions.map((session) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `#session-${session.id}`;
      link.textContent = session.title || `Session ${session.id}`;
      link.dataset.sessionId = session.id;
      link.classList.toggle("active", session.id === state.sessionId);
      item.append(link);
      return item;
    }));
  }

  async function loadMessages(sessionId) {
    const page = await getJSON(`/api/v1/sessions/${sessionId}/messages?page_size=200`);
    els.messages.replaceChildren();
    for (const message of results(page)) renderStored(message);
  }

  // --- rendering -------------------------------------------------------------------------------
  // An answer's markdown: markdown-it with raw HTML off, then DOMPurify (static/vendor/README.md).
  const markdown = window.markdownit({ html: false, linkify: true, breaks: false });
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer nofollow"); }
  });
  const renderMarkdown = (source) => window.DOMPurify.sanitize(markdown.render(source), { USE_PROFILES: { html: true } });
  const TOOL_PREVIEW = 500; // characters of a tool's result shown (the live events carry as many)

  function bubble(role, seq) {
    const el = document.createElement("div");
    el.className = `msg ${role}`;
    if (seq != null) el.dataset.seq = seq;
    if (role === "user") el.append(document.createElement("span"));
    els.messages.append(el);
    els.messages.scrollTop = els.messages.scrollHeight;
    return el;
  }

  // The answer's text after its last tool call: each text segment keeps its markdown source and
  // is rendered again as it grows (at most once a frame).
  function textSegment(el) {
    const last = [...el.children].filter((child) => !child.classList.contains("note")).at(-1);
    if (last && last.classList.contains("md")) return last;
    const segment = document.createElement("div");
    segment.className = "md";
    segment.source = "";
    el.insertBefore(segment, el.querySelector(":scope > .note"));
    return segment;
  }

  function appendText(el, text, { now = false } = {}) {
    if (!text) return;
    const segment = textSegment(el);
    segment.source += text;
    if (now) { segment.innerHTML = renderMarkdown(segment.source); return; }
    if (segment.pending) return;
    segment.pending = requestAnimationFrame(() => {
      segment.pending = 0;
      segment.innerHTML = renderMarkdown(segment.source);
      els.messages.scrollTop = els.messages.scrollHeight;
    });
  }

  const preview = (text) => (text.length > TOOL_PREVIEW ? `${text.slice(0, TOOL_PREVIEW)}…` : text);
  const resultText = (content) =>
    typeof content === "string" ? content : (content || []).filter((b) => b.type === "text").map((b) => b.text).join("\n");

  // A tool call: a collapsible block with its name, input and (when in) a preview of its result.
  function addToolCall(el, { id, name, input }) {
    const details = document.createElement("details");
    details.className = "tool-call running";
    details.dataset.toolId = id;
    const summary = document.createElement("summary");
    const label = document.createElement("code");
    label.className = "tool-name";
    label.textContent = name;
    const status = document.createElement("span");
    status.className = "tool-status";
    status.textContent = "running…";
    summary.append("Tool ", label, " ", status);
    const inputView = document.createElement("pre");
    inputView.className = "tool-input";
    inputView.textContent = JSON.stringify(input ?? {}, null, 2);
    details.append(summary, inputView);
    el.insertBefore(details, el.querySelector(":scope > .note"));
  }

  function setToolResult(root, { id, isError, output }) {
    const details = [...root.querySelectorAll("details.tool-call")].find((d) => d.dataset.toolId === id);
    if (!details) return;
    details.classList.remove("running");
    details.classList.toggle("failed", Boolean(isError));
    details.querySelector(".tool-status").textContent = isError ? "failed" : "done";
    let outputView = details.querySelector(".tool-output");
    if (!outputView) {
      outputView = document.createElement("pre");
      outputView.className = "tool-output";
      details.append(outputView);
    }
    outputView.textContent = preview(output);
  }

  function note(el, text, kind) {
    let n = el.querySelector(":scope > .note");
    if (!n) { n = document.createElement("span"); n.className = "note"; el.append(n); }
    n.textContent = text;
    if (kind) el.classList.add(kind);
  }

  // Stored messages: a turn with tool calls is stored as several messages (the answer up to the
  // calls, their results as a user message, the next answer…); they go into one bubble, as live.
  function renderStored(message) {
    const blocks = message.content || [];
    const last = els.messages.lastElementChild;
    if (message.role === "user" && blocks.length && blocks.every((b) => b.type === "tool_result")) {
      if (last) for (const b of blocks) setToolResult(last, { id: b.tool_use_id, isError: b.is_error, output: resultText(b.content) });
      if (last) last.dataset.afterTools = "1";
      return;
    }
    if (message.role === "user") {
      bubble("user", message.seq).firstChild.textContent = blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
      return;
    }
    let el = last;
    if (!(last && last.classList.contains("assistant") && last.dataset.afterTools)) el = bubble("assistant", message.seq);
    delete el.dataset.afterTools;
    for (const block of blocks) {
      if (block.type === "text") appendText(el, block.text, { now: true });
      if (block.type === "tool_use") addToolCall(el, block);
    }
    el.classList.remove("stopped", "error", "streaming");
    if (message.status === "stopped") note(el, "Stopped.", "stopped");
    if (message.status === "error") note(el, `Error: ${message.error_message || message.error_code}`, "error");
    if (message.status === "streaming") el.classList.add("streaming");
  }

  function setStatus(text) { els.status.textContent = text || ""; }

  function setRunning(running) {
    state.running = running;
    els.stop.hidden = !running;
    els.send.disabled = running;
  }

  // --- websocket ---------------------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/assistant/`);
    state.ws = ws;
    ws.onopen = () => {
      state.reconnectDelay = 500;
      setStatus("");
      if (state.sessionId) resume(state.lastSeq || null);
    };
    ws.onmessage = (message) => handle(JSON.parse(message.data));
    ws.onclose = (event) => {
      if (event.code === 4401) { location.href = "/accounts/login/?next=/chat/"; return; }
      setStatus("Connection lost, reconnecting…");
      setTimeout(connect, state.reconnectDelay);
      state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
    };
  }

  function send(frame) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(frame)); return true; }
    setStatus("Not connected yet, try again in a moment.");
    return false;
  }

  function resume(afterSeq) {
    const frame = { type: "resume", session_id: state.sessionId };
    if (afterSeq) frame.after_seq = afterSeq;
    send(frame);
  }

  function handle(frame) {
    if (frame.seq == null) { // not a turn event: replies to our own requests
      if (frame.type === "error") setStatus(frame.message);
      if (frame.type === "resumed") setRunning(frame.running);
      return;
    }
    if (frame.session_id !== state.sessionId) {
      if (frame.type !== "session" || state.sessionId) return;
      openSession(frame.session_id, { load: false });
    }
    if (frame.seq <= state.lastSeq) return;
    state.lastSeq = frame.seq;
    if (!state.current && frame.type !== "session") {
      state.current = bubble("assistant", null);
      state.current.classList.add("streaming");
    }
    switch (frame.type) {
      case "session": {
        // A turn starts (or is replayed from its start): what follows replaces any stored copy.
        for (const el of [...els.messages.children]) if (Number(el.dataset.seq) >= frame.user_message.seq) el.remove();
        bubble("user", frame.user_message.seq).firstChild.textContent = frame.user_message.text;
        state.current = bubble("assistant", frame.user_message.seq + 1);
        state.current.classList.add("streaming");
        setRunning(true);
        loadSessions();
        break;
      }
      case "text_delta":
        appendText(state.current, frame.text);
        break;
      case "thinking_delta": {
        let details = state.current.querySelector(":scope > details.thinking");
        if (!details) {
          details = document.createElement("details");
          details.className = "thinking";
          details.append(Object.assign(document.createElement("summary"), { textContent: "Thinking" }), document.createElement("div"));
          state.current.prepend(details);
        }
        details.lastChild.textContent += frame.text;
        break;
      }
      case "tool_use": addToolCall(state.current, frame); break;
      case "tool_result": setToolResult(state.current, { id: frame.id, isError: frame.is_error, output: frame.output }); break;
      case "result":
        state.current.classList.remove("streaming");
        if (frame.status === "stopped") note(state.current, "Stopped.", "stopped");
        setRunning(false);
        break;
      case "error":
        state.current.classList.remove("streaming");
        note(state.current, `Error: ${frame.message}`, "error");
        setRunning(false);
        break;
    }
  }

  // --- sessions and actions ----------------------------------------------------------------------
  async function openSession(sessionId, { load = true } = {}) {
    state.sessionId = sessionId;
    state.lastSeq = 0;
    state.current = null;
    setRunning(false);
    if (location.hash !== `#session-${sessionId}`) history.replaceState(null, "", `#session-${sessionId}`);
    for (const link of els.sessions.querySelectorAll("a")) link.classList.toggle("active", Number(link.dataset.sessionId) === sessionId);
    if (load) {
      await loadMessages(sessionId);
      resume(null);
    }
  }

  function sessionFromHash() {
    const match = /^#session-(\d+)$/.exec(location.hash);
    return match ? Number(match[1]) : null;
  }

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.prompt.value.trim();
    if (!text || state.running) return;
    const frame = state.sessionId
      ? { type: "start", session_id: state.sessionId, message: text }
      : { type: "start", agent: els.agent.value, message: text };
    if (send(frame)) { els.prompt.value = ""; setStatus(""); }
  });
  els.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); els.composer.requestSubmit(); }
  });
  els.stop.addEventListener("click", () => send({ type: "stop", session_id: state.sessionId }));
  els.newSession.addEventListener("click", () => {
    state.sessionId = null; state.lastSeq = 0; state.current = null;
    history.replaceState(null, "", location.pathname);
    els.messages.replaceChildren();
    setRunning(false);
    loadSessions();
    els.prompt.focus();
  });
  window.addEventListener("hashchange", () => {
    const sessionId = sessionFromHash();
    if (sessionId && sessionId !== state.sessionId) openSession(sessionId);
  });

  (async () => {
    // Stored messages first, then the socket: its `onopen` resumes the open session, and the
    // replayed turn must land on top of the stored history, not be wiped by it.
    const sessionId = sessionFromHash();
    if (sessionId) {
      await loadMessages(sessionId);
      state.sessionId = sessionId;
    }
    connect();
    await Promise.all([loadAgents(), loadSessions()]);
  })().catch((error) => setStatus(String(error)));
})();
