// Conduit chat page: REST for agents, sessions and stored messages; one websocket for live turns.
// The websocket protocol is documented in assistant/surfaces/websocket.py. The open session lives in the URL
// hash (#session-12), so a reload comes back to it and resumes a turn that is still running.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    agent: $("agent-picker"), sessions: $("session-list"), messages: $("messages"), status: $("status"),
    composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"), newSession: $("new-session"),
    variables: $("variables"), variableFields: $("variable-fields"),
    app: $("app"), chat: $("chat"), sidebarToggle: $("sidebar-toggle"), search: $("session-search"),
    sessionEmpty: $("session-empty"), attach: $("attach"), fileInput: $("file-input"), files: $("files"),
    fileList: $("file-list"), dropZone: $("drop-zone"),
  };
  const state = {
    ws: null, sessionId: null, lastSeq: 0, running: false, reconnectDelay: 500,
    current: null, // the assistant bubble being streamed
    starting: false, // the frame type (`start`, `edit`, `regenerate`) sent whose turn or refusal hasn't come back yet
    agents: new Map(), // slug -> agent (with its prompt_variables)
    sessions: new Map(), // id -> session (its agent, custom_properties)
    outbox: [], // `start` frames sent while the socket was still connecting
    deciding: [], // approval cards whose `approve` was sent, oldest first, until their decision comes
  };

  // --- REST ------------------------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) { location.href = "/accounts/login/?next=/chat/"; return null; }
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }
  const results = (page) => (Array.isArray(page) ? page : (page && page.results) || []);

  // Writes: the page signs in with the session cookie, so Django wants the CSRF token (the one
  // the sign-out form carries) in a header.
  async function sendJSON(method, url, body) {
    const token = document.querySelector("[name=csrfmiddlewaretoken]").value;
    const response = await fetch(url, {
      method, credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": token },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) { location.href = "/accounts/login/?next=/chat/"; return null; }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new Error(problem(data) || `HTTP ${response.status}`);
    return data;
  }
  // The message of an error body: the API's ({"detail": {"message": …, "fields": …}}), or DRF's
  // ({"detail": …} or {"field": ["…"]}).
  function problem(data) {
    if (!data || typeof data !== "object") return "";
    if (typeof data.detail === "string") return data.detail;
    if (data.detail && typeof data.detail.message === "string") {
      const fields = Object.values(data.detail.fields || {}).flat().filter((text) => typeof text === "string");
      return fields.length ? fields.join(" ") : data.detail.message;
    }
    const first = Object.values(data)[0];
    return Array.isArray(first) ? String(first[0]) : typeof first === "string" ? first : "";
  }

  async function loadAgents() {
    const agents = results(await getJSON("/api/v1/agents?page_size=200"));
    state.agents = new Map(agents.map((agent) => [agent.slug, agent]));
    const picked = els.agent.value;
    els.agent.replaceChildren(...agents.map((agent) => new Option(agent.name, agent.slug)));
    if (state.agents.has(picked)) els.agent.value = picked;
    if (!agents.length) setStatus("No agents yet: ask an administrator to create one.");
  }

  // The latest 50 sessions, or those whose title or messages hold the search box's text (GET
  // /api/v1/sessions?search=…); a reply that comes after a newer search's is dropped.
  let sessionsAsked = 0;
  async function loadSessions() {
    const search = els.search.value.trim();
    const asked = ++sessionsAsked;
    const query = new URLSearchParams({ page_size: "50" });
    if (search) query.set("search", search);
    const sessions = results(await getJSON(`/api/v1/sessions?${query}`));
    if (asked !== sessionsAsked) return;
    for (const session of sessions) state.sessions.set(session.id, session);
    els.sessions.replaceChildren(...sessions.map(sessionItem));
    els.sessionEmpty.textContent = search ? "No chat matches." : "No chats yet.";
    els.sessionEmpty.hidden = sessions.length > 0;
  }

  // "Today 14:05" style dates: the time for today's, the day for older ones.
  function shortDate(text) {
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return "";
    const today = new Date().toDateString() === date.toDateString();
    return today ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
  }

  function sessionItem(session) {
    const item = document.createElement("li");
    item.dataset.sessionId = session.id;
    const link = document.createElement("a");
    link.href = `#session-${session.id}`;
    const title = session.title || `Session ${session.id}`;
    const agentName = (session.agent_detail && session.agent_detail.name) || "";
    const when = shortDate(session.updated_at);
    link.append(Object.assign(document.createElement("span"), { className: "session-title", textContent: title }),
      Object.assign(document.createElement("span"), { className: "session-meta", textContent: [agentName, when].filter(Boolean).join(" · ") }));
    link.title = `${title}\n${agentName}, ${new Date(session.updated_at).toLocaleString()}`;
    link.dataset.sessionId = session.id;
    link.classList.toggle("active", session.id === state.sessionId);
    if (session.id === state.sessionId) link.setAttribute("aria-current", "page");
    const rename = Object.assign(document.createElement("button"), { type: "button", className: "icon rename", textContent: "✎", title: "Rename" });
    const remove = Object.assign(document.createElement("button"), { type: "button", className: "icon delete", textContent: "✕", title: "Delete" });
    rename.setAttribute("aria-label", `Rename ${title}`);
    remove.setAttribute("aria-label", `Delete ${title}`);
    rename.addEventListener("click", () => startRename(item, session));
    remove.addEventListener("click", () => deleteSession(session));
    item.append(link, rename, remove);
    return item;
  }

  function startRename(item, session) {
    const input = Object.assign(document.createElement("input"), { className: "rename-input", value: session.title || "", maxLength: 255 });
    input.setAttribute("aria-label", "New title");
    item.replaceChildren(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== session.title) {
        try {
          Object.assign(session, await sendJSON("PATCH", `/api/v1/sessions/${session.id}`, { title }));
        } catch (error) { setStatus(`Couldn't rename: ${error.message}`); }
      }
      item.replaceWith(sessionItem(session));
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true); }
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }

  async function deleteSession(session) {
    if (!confirm(`Delete the chat "${session.title || `Session ${session.id}`}" and its messages?`)) return;
    try {
      await sendJSON("DELETE", `/api/v1/sessions/${session.id}`);
    } catch (error) { setStatus(`Couldn't delete: ${error.message}`); return; }
    if (session.id === state.sessionId) newChat();
    await loadSessions();
  }

  // --- the agent of the chat and its prompt variables --------------------------------------------

  // An open session keeps its own agent (it can't change): the picker shows it, and is for new chats.
  async function showSessionAgent() {
    if (!state.sessionId) { els.agent.disabled = false; return; }
    let session = state.sessions.get(state.sessionId);
    if (!session) {
      session = await getJSON(`/api/v1/sessions/${state.sessionId}`).catch(() => null);
      if (!session) return;
      state.sessions.set(session.id, session);
    }
    const { slug, name } = session.agent_detail || {};
    if (!slug) return;
    if (![...els.agent.options].some((option) => option.value === slug)) els.agent.append(new Option(name, slug));
    els.agent.value = slug;
    els.agent.disabled = true;
  }

  // The variables the chat's agent needs and doesn't have yet (a new chat: none given yet).
  function missingVariables() {
    const session = state.sessionId ? state.sessions.get(state.sessionId) : null;
    const slug = session ? session.agent_detail && session.agent_detail.slug : els.agent.value;
    const agent = state.agents.get(slug);
    if (!agent) return [];
    const given = (session && session.custom_properties) || {};
    const variables = agent.prompt_variables || [];
    const missing = variables.filter((variable) => variable.required && !(variable.name in given));
    if (!missing.length) return [];
    // With a required one missing, the form offers the optional ones of a new chat too.
    return session ? missing : variables;
  }

  function showVariables() {
    const wanted = missingVariables();
    const previous = variableValues();
    els.variableFields.replaceChildren(...wanted.map((variable) => {
      const label = document.createElement("label");
      const input = Object.assign(document.createElement("input"), { name: variable.name, value: previous[variable.name] || "" });
      input.required = variable.required;
      input.placeholder = variable.required ? "required" : `default: ${variable.default}`;
      label.append(Object.assign(document.createElement("span"), { textContent: variable.name }), input);
      return label;
    }));
    els.variables.hidden = !wanted.length;
  }

  function variableValues() {
    const values = {};
    for (const input of els.variableFields.querySelectorAll("input")) if (input.value.trim()) values[input.name] = input.value.trim();
    return values;
  }

  async function loadMessages(sessionId) {
    const page = await getJSON(`/api/v1/sessions/${sessionId}/messages?page_size=200`);
    els.messages.replaceChildren();
    for (const message of results(page)) renderStored(message);
    scrollToEnd(); // a session opens at its latest message
  }
  const scrollToEnd = () => { els.messages.scrollTop = els.messages.scrollHeight; };

  // --- rendering -------------------------------------------------------------------------------
  // An answer's markdown: markdown-it with raw HTML off, then DOMPurify (static/vendor/README.md).
  // Fenced code with a language highlight.js knows is highlighted (its spans and classes only; DOMPurify
  // still goes over the result); other code is escaped by markdown-it as usual.
  const highlight = (code, language) => {
    if (!language || !window.hljs || !window.hljs.getLanguage(language)) return "";
    try { return window.hljs.highlight(code, { language, ignoreIllegals: true }).value; } catch { return ""; }
  };
  const markdown = window.markdownit({ html: false, linkify: true, breaks: false, highlight });
  // An image in an answer is shown as a link (its text and address), never fetched: a prompt-injected
  // model could otherwise leak the chat by writing it into an image's URL, fetched as the page renders.
  // The page's Content-Security-Policy (img-src 'self' data:) blocks such a fetch too.
  markdown.renderer.rules.image = (tokens, index, options, env, renderer) => {
    const image = tokens[index];
    const url = image.attrGet("src") || "";
    const text = renderer.renderInlineAsText(image.children, options, env) || "image";
    const escape = markdown.utils.escapeHtml;
    return `<a class="image-link" href="${escape(url)}">${escape(text)} (${escape(url)})</a>`;
  };
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer nofollow"); }
  });
  const renderMarkdown = (source) => window.DOMPurify.sanitize(markdown.render(source), { USE_PROFILES: { html: true } });
  // A rendered segment: its markdown, then a copy button (and the language) on each code block.
  function renderSegment(segment) {
    segment.innerHTML = renderMarkdown(segment.source);
    for (const pre of segment.querySelectorAll("pre")) {
      const code = pre.querySelector("code");
      if (!code) continue;
      const block = Object.assign(document.createElement("div"), { className: "code-block" });
      pre.replaceWith(block);
      const language = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
      if (language) block.append(Object.assign(document.createElement("span"), { className: "code-lang", textContent: language[1] }));
      const copy = Object.assign(document.createElement("button"), { type: "button", className: "code-copy", textContent: "Copy" });
      copy.setAttribute("aria-label", "Copy this code");
      copy.addEventListener("click", () => copyText(code.textContent, copy));
      block.append(pre, copy);
    }
  }
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
  const tail = (el) => el.querySelector(":scope > .note, :scope > .meta");
  function textSegment(el) {
    const last = [...el.children].filter((child) => !child.matches(".note, .meta")).at(-1);
    if (last && last.classList.contains("md")) return last;
    const segment = document.createElement("div");
    segment.className = "md";
    segment.source = "";
    el.insertBefore(segment, tail(el));
    return segment;
  }

  function appendText(el, text, { now = false } = {}) {
    if (!text) return;
    const segment = textSegment(el);
    segment.source += text;
    if (now) { renderSegment(segment); return; }
    if (segment.pending) return;
    segment.pending = requestAnimationFrame(() => {
      segment.pending = 0;
      renderSegment(segment);
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
    el.insertBefore(details, tail(el));
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
    if (!n) { n = document.createElement("span"); n.className = "note"; el.insertBefore(n, el.querySelector(":scope > .meta")); }
    n.textContent = text;
    if (kind) el.classList.add(kind);
  }

  // An answer's footer: its token usage and a button copying its text (the markdown source).
  function finishAnswer(el, usage) {
    let meta = el.querySelector(":scope > .meta");
    if (!meta) {
      meta = document.createElement("div");
      meta.className = "meta";
      const copy = Object.assign(document.createElement("button"), { type: "button", className: "link copy", textContent: "Copy" });
      copy.addEventListener("click", () => copyAnswer(el, copy));
      meta.append(Object.assign(document.createElement("span"), { className: "usage" }), copy);
      el.append(meta);
    }
    const usageView = meta.querySelector(".usage");
    const tokens = usage ? (usage.input_tokens || 0) + (usage.output_tokens || 0) : 0;
    usageView.textContent = tokens ? `${usage.input_tokens || 0} in · ${usage.output_tokens || 0} out tokens` : "";
    usageView.title = usage && usage.cache_read_input_tokens ? `${usage.cache_read_input_tokens} input tokens read from the cache` : "";
  }

  const answerText = (el) => [...el.querySelectorAll(":scope > .md")].map((segment) => segment.source.trim()).filter(Boolean).join("\n\n");

  const copyAnswer = (el, button) => copyText(answerText(el), button);

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch { // no clipboard API (a page served over plain HTTP from another host): the old way
      const scratch = Object.assign(document.createElement("textarea"), { value: text });
      document.body.append(scratch);
      scratch.select();
      document.execCommand("copy");
      scratch.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
    document.dispatchEvent(new CustomEvent("conduit:copied", { detail: text }));
  }

  const addUsage = (total, message) => ({
    input_tokens: (total ? total.input_tokens : 0) + (message.input_tokens || 0),
    output_tokens: (total ? total.output_tokens : 0) + (message.output_tokens || 0),
    cache_read_input_tokens: (total ? total.cache_read_input_tokens : 0) + (message.cache_read_input_tokens || 0),
  });

  // Stored messages: a turn with tool calls is stored as several messages (the answer up to the
  // calls, their results as a user message, the next answer…); they go into one bubble, as live.
  function renderStored(message) {
    const blocks = message.content || [];
    const last = els.messages.lastElementChild;
    const toolResults = blocks.every((b) => b.type === "tool_result") && (blocks.length || message.status === "awaiting");
    if (message.role === "user" && toolResults) { // (a paused turn's results may be none yet: all its calls held)
      if (last) for (const b of blocks) setToolResult(last, { id: b.tool_use_id, isError: b.is_error, output: resultText(b.content) });
      if (last) last.dataset.afterTools = "1";
      return;
    }
    if (message.role === "user") {
      // Images (sent through /v1) aren't shown here: a placeholder says they were there.
      const images = blocks.filter((b) => b.type === "image").length;
      const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
      const placeholder = images ? `[${images} image${images > 1 ? "s" : ""}]` : "";
      bubble("user", message.seq).firstChild.textContent = [text, placeholder].filter(Boolean).join("\n");
      return;
    }
    let el = last;
    if (!(last && last.classList.contains("assistant") && last.dataset.afterTools)) el = bubble("assistant", message.seq);
    else el.querySelector(":scope > .meta")?.remove(); // the turn goes on after its tool calls
    delete el.dataset.afterTools;
    el.usage = addUsage(el.usage, message);
    for (const block of blocks) {
      if (block.type === "text") appendText(el, block.text, { now: true });
      if (block.type === "tool_use") addToolCall(el, block);
    }
    el.classList.remove("stopped", "error", "streaming");
    if (message.status === "stopped") note(el, "Stopped.", "stopped");
    if (message.status === "error") note(el, `Error: ${message.error_message || message.error_code}`, "error");
    if (message.status === "streaming") el.classList.add("streaming");
    else finishAnswer(el, el.usage);
  }

  // --- approvals ---------------------------------------------------------------------------------
  // A tool call the agent's policy holds: a card with its name and input (as text), an optional
  // reason and Allow / Deny. The decision goes over the socket (`approve`); the `approval_decision`
  // event, from this page or any other place the user decided, marks the card and the turn goes on.
  const APPROVAL_REFUSALS = new Set(["already_decided", "not_found", "too_many_turns", "invalid"]);
  const DECIDED = { allowed: "Allowed", denied: "Denied", expired: "Expired" };
  const cardFor = (approvalId) => [...els.messages.querySelectorAll(".approval")].find((card) => card.dataset.approvalId === approvalId);
  const toolCallFor = (root, toolUseId) => [...root.querySelectorAll("details.tool-call")].find((d) => d.dataset.toolId === toolUseId);

  function addApproval(el, { approval_id: approvalId, tool_use_id: toolUseId, name, input, expires_at: expiresAt }) {
    const existing = cardFor(approvalId);
    if (existing) return existing;
    const card = document.createElement("div");
    card.className = "approval pending";
    card.dataset.approvalId = approvalId;
    card.dataset.toolId = toolUseId || "";
    card.setAttribute("role", "group");
    card.setAttribute("aria-label", `Approval for ${name}`);
    const head = document.createElement("div");
    head.className = "approval-head";
    const label = Object.assign(document.createElement("code"), { className: "tool-name", textContent: name });
    const status = Object.assign(document.createElement("span"), { className: "approval-status", textContent: "waiting for your decision" });
    head.append("Run ", label, "? ", status);
    card.append(head);
    if (input !== undefined) {
      card.append(Object.assign(document.createElement("pre"), { className: "approval-input", textContent: JSON.stringify(input ?? {}, null, 2) }));
    }
    const actions = document.createElement("div");
    actions.className = "approval-actions";
    const reason = Object.assign(document.createElement("input"), { className: "approval-reason", placeholder: "Reason (optional)", maxLength: 2000 });
    reason.setAttribute("aria-label", `Reason for the decision on ${name}`);
    const allow = Object.assign(document.createElement("button"), { type: "button", className: "allow", textContent: "Allow" });
    const deny = Object.assign(document.createElement("button"), { type: "button", className: "deny", textContent: "Deny" });
    allow.addEventListener("click", () => decide(card, "allow"));
    deny.addEventListener("click", () => decide(card, "deny"));
    actions.append(reason, allow, deny);
    card.append(actions);
    const expires = expiresAt ? new Date(expiresAt) : null;
    if (expires && !Number.isNaN(expires.getTime())) {
      card.append(Object.assign(document.createElement("div"), { className: "approval-expiry", textContent: `Denied if not decided by ${expires.toLocaleString()}.` }));
    }
    card.append(Object.assign(document.createElement("div"), { className: "approval-error", hidden: true }));
    el.insertBefore(card, tail(el));
    const call = toolCallFor(el, toolUseId);
    if (call) { call.classList.add("held"); call.querySelector(".tool-status").textContent = "awaiting approval"; }
    els.messages.scrollTop = els.messages.scrollHeight;
    updateComposer();
    return card;
  }

  function setCardBusy(card, busy) {
    for (const control of card.querySelectorAll(".approval-actions button, .approval-actions input")) control.disabled = busy;
  }

  function showCardError(card, text) {
    const error = card.querySelector(".approval-error");
    error.textContent = text || "";
    error.hidden = !text;
  }

  function decide(card, decision) {
    if (!card.classList.contains("pending") || state.deciding.includes(card)) return;
    const frame = { type: "approve", session_id: state.sessionId, approval_id: card.dataset.approvalId, decision };
    const reason = card.querySelector(".approval-reason").value.trim();
    if (reason) frame.reason = reason;
    showCardError(card, "");
    if (!send(frame)) { showCardError(card, "Not connected: try again in a moment."); return; }
    state.deciding.push(card);
    setCardBusy(card, true);
    card.querySelector(".approval-status").textContent = decision === "allow" ? "allowing…" : "denying…";
  }

  // The decision, however it was made: the card shows it (and who), without buttons.
  function markDecided(card, { decision, reason, decided_by: decidedBy }) {
    state.deciding = state.deciding.filter((sent) => sent !== card);
    card.classList.remove("pending");
    card.classList.add("decided");
    if (decision in DECIDED) card.classList.add(decision);
    card.querySelector(".approval-actions")?.remove();
    card.querySelector(".approval-expiry")?.remove();
    showCardError(card, "");
    let text = decision ? DECIDED[decision] || decision : "Decided";
    if (decidedBy) text += ` by ${decidedBy}`;
    if (reason) text += `: ${reason}`;
    card.querySelector(".approval-status").textContent = text;
    const call = toolCallFor(els.messages, card.dataset.toolId);
    if (call) {
      call.classList.remove("held");
      if (call.classList.contains("running")) call.querySelector(".tool-status").textContent = decision === "allowed" ? "running…" : "not run";
    }
    updateComposer();
  }

  function approvalDecided(frame) {
    const card = cardFor(frame.approval_id) || addApproval(state.current, { ...frame, input: undefined });
    markDecided(card, frame);
    if (!pendingCards().length) { // the last decision: the turn goes on
      clearAwaiting(state.current);
      state.current.classList.add("streaming");
      setRunning(true);
    }
  }

  function clearAwaiting(el) {
    if (!el.classList.contains("awaiting")) return;
    el.classList.remove("awaiting");
    el.querySelector(":scope > .note")?.remove();
  }

  // A refused decision: on the card it was for. Taken already (or gone): the card stops offering it and
  // a resume fetches what happened; refused for now (too many running turns): it can be sent again.
  function approvalRefused(frame) {
    const card = state.deciding.shift();
    if (!card || !card.isConnected) { setStatus(frame.message); return; }
    showCardError(card, frame.message);
    card.querySelector(".approval-status").textContent = "not decided";
    if (frame.code === "already_decided" || frame.code === "not_found") {
      card.querySelector(".approval-actions")?.remove();
      card.classList.remove("pending");
      card.classList.add("decided");
      updateComposer();
      resume(state.lastSeq || null);
    } else {
      setCardBusy(card, false);
      card.querySelector(".approval-status").textContent = "waiting for your decision";
    }
  }

  // After a replay, the server's list of what still waits: a pending call the replay didn't show gets
  // its card; a card the list no longer has was decided meanwhile (its decision event follows).
  function showPendingApprovals(pending) {
    const waiting = new Set(pending.map((approval) => approval.approval_id));
    for (const card of pendingCards()) {
      if (!waiting.has(card.dataset.approvalId) && !state.deciding.includes(card)) markDecided(card, {});
    }
    for (const approval of pending) {
      const card = cardFor(approval.approval_id);
      if (card) continue;
      let el = state.current || [...els.messages.querySelectorAll(".msg.assistant")].at(-1);
      if (!el) el = state.current = bubble("assistant", null);
      addApproval(el, approval);
      if (!el.classList.contains("awaiting")) note(el, "Waiting for your decision on the tool call above.", "awaiting");
    }
    updateComposer();
  }

  function setStatus(text) { els.status.textContent = text || ""; }

  function setRunning(running) {
    state.running = running;
    els.stop.hidden = !running;
    updateComposer();
  }

  // While a tool call waits for a decision the session takes no new message (the server refuses it
  // with `approval_pending`): the composer says so.
  const pendingCards = () => [...els.messages.querySelectorAll(".approval.pending")];
  function updateComposer() {
    const waiting = pendingCards().length > 0;
    els.send.disabled = Boolean(state.running || state.starting || waiting);
    els.prompt.placeholder = waiting ? "Allow or deny the tool call above to go on…" : "Ask something…";
    els.send.title = waiting ? "A tool call waits for your decision" : "";
    showTurnActions(!state.running && !state.starting && !waiting);
    showAttach();
  }

  // --- regenerate the last answer, edit the last message (websocket `regenerate` / `edit`) ------------
  // Offered on the last exchange of an open session when nothing runs or waits: the server removes
  // that exchange and runs the turn again; its `session` event says from which seq the page drops.
  function showTurnActions(idle) {
    for (const old of els.messages.querySelectorAll(".turn-actions, .regenerate")) old.remove();
    if (!idle || !state.sessionId || els.messages.querySelector(".msg.user.editing")) return;
    const shown = [...els.messages.querySelectorAll(":scope > .msg")];
    const lastUser = shown.filter((el) => el.classList.contains("user")).at(-1);
    if (!lastUser) return;
    const actions = Object.assign(document.createElement("div"), { className: "turn-actions" });
    const edit = Object.assign(document.createElement("button"), { type: "button", className: "link edit", textContent: "Edit" });
    edit.setAttribute("aria-label", "Edit your last message and answer it again");
    edit.addEventListener("click", () => startEdit(lastUser));
    actions.append(edit);
    lastUser.append(actions);
    const answer = shown.at(-1);
    const meta = answer && answer !== lastUser && answer.classList.contains("assistant") && answer.querySelector(":scope > .meta");
    if (meta) {
      const again = Object.assign(document.createElement("button"), { type: "button", className: "link regenerate", textContent: "Regenerate" });
      again.setAttribute("aria-label", "Answer the last message again");
      again.addEventListener("click", () => runAgain({ type: "regenerate", session_id: state.sessionId }));
      meta.insertBefore(again, meta.querySelector(".copy"));
    }
  }

  function runAgain(frame) {
    if (state.running || state.starting || !send(frame)) return false;
    state.starting = frame.type;
    setStatus("");
    updateComposer();
    return true;
  }

  function startEdit(el) {
    const text = el.firstChild.textContent;
    const box = Object.assign(document.createElement("textarea"), { className: "edit-box", value: text, rows: 3 });
    box.setAttribute("aria-label", "Edit your message");
    const save = Object.assign(document.createElement("button"), { type: "button", className: "save", textContent: "Send again" });
    const cancel = Object.assign(document.createElement("button"), { type: "button", className: "cancel", textContent: "Cancel" });
    const buttons = Object.assign(document.createElement("div"), { className: "edit-actions" });
    buttons.append(cancel, save);
    const finish = () => { box.remove(); buttons.remove(); el.firstChild.hidden = false; el.classList.remove("editing"); updateComposer(); };
    const submit = () => {
      const edited = box.value.trim();
      if (!edited) { box.focus(); return; }
      if (runAgain({ type: "edit", session_id: state.sessionId, message: edited })) finish();
    };
    save.addEventListener("click", submit);
    cancel.addEventListener("click", () => { finish(); els.prompt.focus(); });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submit(); }
      if (event.key === "Escape") { event.preventDefault(); finish(); }
    });
    el.classList.add("editing");
    el.firstChild.hidden = true;
    el.querySelector(".turn-actions")?.remove();
    el.append(box, buttons);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // --- files: upload into the session's workspace (REST /api/v1/sessions/<id>/files) ----------------
  // Offered when the chat's agent has workspace tools; a new chat is created first (it has no
  // workspace yet). The API's refusals (size, quota, too many files) are shown on the file's chip.
  function chatAgent() {
    const session = state.sessionId ? state.sessions.get(state.sessionId) : null;
    const slug = session ? session.agent_detail && session.agent_detail.slug : els.agent.value;
    return state.agents.get(slug);
  }
  // Only staff's organization agents (no owner) get workspace tools, whatever a user's own agent says.
  const canUpload = () => {
    const agent = chatAgent();
    return Boolean(agent && agent.owner == null && agent.workspace_tools && agent.workspace_tools !== "none");
  };
  function showAttach() { els.attach.hidden = !canUpload(); }

  async function loadFiles() {
    if (!state.sessionId || !canUpload()) { showFiles([]); return; }
    const sessionId = state.sessionId;
    const files = await getJSON(`/api/v1/sessions/${sessionId}/files`).catch(() => null);
    if (sessionId === state.sessionId) showFiles(results(files), { keep: true });
  }

  // The stored files, and (`keep`) the uploads still going or refused, which stay listed until the chat changes.
  function showFiles(files, { keep = false } = {}) {
    const kept = keep ? [...els.fileList.querySelectorAll("li.uploading, li.failed")] : [];
    els.fileList.replaceChildren(...files.map((file) => fileChip(file.name, file.size != null ? `${file.size} bytes` : "")), ...kept);
    els.files.hidden = !els.fileList.children.length;
  }

  function fileChip(name, title, kind) {
    const chip = Object.assign(document.createElement("li"), { textContent: name, title: title || "" });
    if (kind) chip.classList.add(kind);
    return chip;
  }

  async function ensureSession() {
    if (state.sessionId) return state.sessionId;
    const agent = chatAgent();
    const values = els.variables.hidden ? {} : variableValues();
    const session = await sendJSON("POST", "/api/v1/sessions", { agent: agent.id, title: "", custom_properties: values });
    state.sessions.set(session.id, session);
    await openSession(session.id, { load: false });
    loadSessions().catch(() => {});
    return session.id;
  }

  async function uploadFiles(files) {
    if (!files.length) return;
    if (!canUpload()) { setStatus("This chat's agent has no workspace: it can't read files."); return; }
    let sessionId;
    try { sessionId = await ensureSession(); } catch (error) { setStatus(`Couldn't start a chat for the files: ${error.message}`); return; }
    els.files.hidden = false;
    const token = document.querySelector("[name=csrfmiddlewaretoken]").value;
    let failed = 0;
    for (const file of files) {
      const chip = fileChip(file.name, "uploading…", "uploading");
      els.fileList.append(chip);
      const body = new FormData();
      body.append("file", file, file.name);
      const response = await fetch(`/api/v1/sessions/${sessionId}/files`, {
        method: "POST", credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": token }, body,
      }).catch(() => null);
      const data = response ? await response.json().catch(() => null) : null;
      chip.classList.remove("uploading");
      if (response && response.ok) { chip.remove(); continue; } // listed with the stored files below
      failed += 1;
      const why = response ? problem(data) || `HTTP ${response.status}` : "the server could not be reached";
      chip.classList.add("failed");
      chip.title = why;
      setStatus(`Couldn't upload ${file.name}: ${why}`);
    }
    if (!failed) setStatus(files.length === 1 ? `Uploaded ${files[0].name}.` : `Uploaded ${files.length} files.`);
    if (sessionId === state.sessionId) await loadFiles();
  }

  els.attach.addEventListener("click", () => els.fileInput.click());
  els.fileInput.addEventListener("change", () => { uploadFiles([...els.fileInput.files]); els.fileInput.value = ""; });
  // Drag and drop onto the chat column: only files, only where the agent has a workspace.
  let dragDepth = 0;
  const dragsFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files") && canUpload();
  els.chat.addEventListener("dragenter", (event) => {
    if (!dragsFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    els.dropZone.hidden = false;
  });
  els.chat.addEventListener("dragover", (event) => { if (dragsFiles(event)) { event.preventDefault(); event.dataTransfer.dropEffect = "copy"; } });
  els.chat.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) els.dropZone.hidden = true; });
  els.chat.addEventListener("drop", (event) => {
    dragDepth = 0;
    els.dropZone.hidden = true;
    if (!dragsFiles(event)) return;
    event.preventDefault();
    uploadFiles([...event.dataTransfer.files]);
  });

  // --- websocket ---------------------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/assistant/`);
    state.ws = ws;
    ws.onopen = () => {
      state.reconnectDelay = 500;
      setStatus("");
      if (state.sessionId) resume(state.lastSeq || null);
      // What was sent before the socket opened (a message typed while the page connected) goes now.
      for (const frame of state.outbox.splice(0)) ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (message) => handle(JSON.parse(message.data));
    ws.onclose = (event) => {
      if (event.code === 4401) { location.href = "/accounts/login/?next=/chat/"; return; }
      if (state.starting) { state.starting = false; updateComposer(); } // the box still has the message
      setStatus("Connection lost, reconnecting…");
      setTimeout(connect, state.reconnectDelay);
      state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
    };
  }

  function send(frame) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(frame)); return true; }
    if (["start", "edit", "regenerate"].includes(frame.type) && state.ws && state.ws.readyState === WebSocket.CONNECTING) {
      state.outbox.push(frame); // sent as soon as the socket opens
      setStatus("Connecting…");
      return true;
    }
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
      if (frame.type === "error") refused(frame);
      if (frame.type === "resumed" && frame.session_id === state.sessionId) {
        showPendingApprovals(frame.pending_approvals || []);
        setRunning(frame.running);
      }
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
        // A turn starts (or is replayed from its start): what follows replaces any stored copy, and a
        // regenerated or edited turn replaces the last exchange (`replaced_from_seq`).
        const from = Math.min(frame.user_message.seq, frame.replaced_from_seq ?? Infinity);
        for (const el of [...els.messages.children]) if (Number(el.dataset.seq) >= from) el.remove();
        bubble("user", frame.user_message.seq).firstChild.textContent = frame.user_message.text;
        if (state.starting) { // our message was taken: now it may leave the box
          const sent = state.starting;
          state.starting = false;
          if (sent === "start" && els.prompt.value.trim() === frame.user_message.text) els.prompt.value = "";
          els.variableFields.replaceChildren();
          els.variables.hidden = true;
        }
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
      case "approval_request": addApproval(state.current, frame); break;
      case "approval_decision": approvalDecided(frame); break;
      case "result":
        state.current.classList.remove("streaming");
        clearAwaiting(state.current);
        if (frame.status === "stopped") note(state.current, "Stopped.", "stopped");
        if (frame.status === "awaiting_approval") note(state.current, "Waiting for your decision on the tool call above.", "awaiting");
        finishAnswer(state.current, frame.usage);
        setRunning(false);
        break;
      case "error":
        state.current.classList.remove("streaming");
        note(state.current, `Error: ${frame.message}`, "error");
        finishAnswer(state.current, null); // what came before the fault can still be copied
        setRunning(false);
        break;
    }
  }

  // A refused request (a `start` without the prompt's variables, a busy session…): the typed
  // message stays in the box, and the variables form shows what's missing.
  async function refused(frame) {
    if (!state.starting && state.deciding.length && APPROVAL_REFUSALS.has(frame.code)) { approvalRefused(frame); return; }
    setStatus(frame.message);
    if (frame.code === "connection_required") offerConnect(frame);
    if (!state.starting) return;
    state.starting = false;
    updateComposer();
    if (/variable/i.test(frame.message)) {
      // What the page knew may be stale (the prompt changed since): ask again.
      await (state.sessionId ? loadSessions() : loadAgents()).catch(() => {});
      if (state.sessionId) await showSessionAgent().catch(() => {});
      showVariables();
      els.variableFields.querySelector("input:invalid, input")?.focus();
    }
  }

  // A turn refused until the user connects an integration (issue 29): a button that connects it. OAuth
  // opens the authorization server in a popup; the page then watches the user's connections until this
  // one is made (the popup, gone cross-origin, can't be asked), and the message can be sent again.
  function offerConnect(frame) {
    const integration = frame.integration || {};
    const button = document.createElement("button");
    button.type = "button";
    button.className = "connect";
    button.textContent = `Connect ${integration.name}`;
    button.addEventListener("click", async () => {
      try {
        if (integration.auth === "per_user_token") {
          const token = window.prompt(`Your token for ${integration.name}:`);
          if (!token) return;
          await sendJSON("POST", frame.connect_url, { token });
          setStatus(`Connected to ${integration.name}: send your message again.`);
          return;
        }
        const popup = window.open("", "conduit-connect", "popup,width=600,height=720");
        const answer = await sendJSON("POST", frame.connect_url, {});
        if (!popup) { location.href = answer.authorize_url; return; }
        popup.location.href = answer.authorize_url;
        setStatus(`Finish connecting ${integration.name} in the window that opened…`);
        await connected(integration.id, Date.now());
        setStatus(`Connected to ${integration.name}: send your message again.`);
      } catch (error) { setStatus(`Couldn't connect ${integration.name}: ${error.message}`); }
    });
    els.status.append(" ", button);
  }

  async function connected(integrationId, since) {
    for (let tries = 0; tries < 300; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const rows = (await getJSON("/api/v1/connections")) || [];
      if (rows.some((row) => row.integration.id === integrationId && row.status === "connected"
                     && Date.parse(row.connected_at) >= since - 60000)) return;
    }
    throw new Error("not connected yet");
  }

  // --- sessions and actions ----------------------------------------------------------------------
  async function openSession(sessionId, { load = true } = {}) {
    state.sessionId = sessionId;
    state.lastSeq = 0;
    state.current = null;
    state.deciding = [];
    setRunning(false);
    if (location.hash !== `#session-${sessionId}`) history.replaceState(null, "", `#session-${sessionId}`);
    for (const link of els.sessions.querySelectorAll("a")) link.classList.toggle("active", Number(link.dataset.sessionId) === sessionId);
    showFiles([]);
    showSessionAgent().then(() => { showVariables(); updateComposer(); return loadFiles(); }).catch((error) => setStatus(String(error)));
    if (load) {
      await loadMessages(sessionId);
      resume(null);
    }
  }

  function sessionFromHash() {
    const match = /^#session-(\d+)$/.exec(location.hash);
    return match ? Number(match[1]) : null;
  }

  els.composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = els.prompt.value.trim();
    if (!text || state.running || state.starting) return;
    if (pendingCards().length) { setStatus("Allow or deny the pending tool call first."); return; }
    if (!els.variables.hidden) {
      const empty = els.variableFields.querySelector("input:invalid");
      if (empty) { setStatus(`Give a value for ${empty.name} first.`); empty.focus(); return; }
    }
    const values = els.variables.hidden ? {} : variableValues();
    let frame;
    if (state.sessionId) {
      if (Object.keys(values).length) { // an existing session takes them before its turn
        const session = state.sessions.get(state.sessionId);
        try {
          const updated = await sendJSON("PATCH", `/api/v1/sessions/${state.sessionId}`,
            { custom_properties: { ...(session && session.custom_properties), ...values } });
          state.sessions.set(updated.id, updated);
        } catch (error) { setStatus(`Couldn't save the values: ${error.message}`); return; }
      }
      frame = { type: "start", session_id: state.sessionId, message: text };
    } else {
      frame = { type: "start", agent: els.agent.value, message: text };
      if (Object.keys(values).length) frame.custom_properties = values;
    }
    if (send(frame)) { state.starting = "start"; updateComposer(); setStatus(""); }
  });
  els.variables.addEventListener("submit", (event) => { event.preventDefault(); els.composer.requestSubmit(); });
  els.agent.addEventListener("change", () => { showVariables(); updateComposer(); });
  let searchTimer = 0;
  els.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadSessions().catch((error) => setStatus(String(error))), 250);
  });

  // --- the sidebar on a narrow screen: folded behind the toggle -----------------------------------------
  function setSidebar(open) {
    els.app.classList.toggle("sidebar-open", open);
    els.sidebarToggle.setAttribute("aria-expanded", String(open));
    if (open) els.search.focus();
  }
  els.sidebarToggle.addEventListener("click", () => setSidebar(!els.app.classList.contains("sidebar-open")));
  els.sessions.addEventListener("click", (event) => { if (event.target.closest("a")) setSidebar(false); });
  els.newSession.addEventListener("click", () => setSidebar(false));
  els.messages.addEventListener("click", () => setSidebar(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && els.app.classList.contains("sidebar-open")) { setSidebar(false); els.sidebarToggle.focus(); }
  });
  els.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); els.composer.requestSubmit(); }
  });
  els.stop.addEventListener("click", () => send({ type: "stop", session_id: state.sessionId }));
  function newChat() {
    state.sessionId = null; state.lastSeq = 0; state.current = null; state.deciding = [];
    history.replaceState(null, "", location.pathname);
    els.messages.replaceChildren();
    showFiles([]);
    setRunning(false);
    els.agent.disabled = false;
    showVariables();
  }
  els.newSession.addEventListener("click", () => {
    newChat();
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
    await showSessionAgent();
    showVariables();
    updateComposer();
    await loadFiles();
  })().catch((error) => setStatus(String(error)));
})();
