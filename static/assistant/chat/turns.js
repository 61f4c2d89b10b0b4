// The websocket: live turn events and refusals.
import { els, setStatus, state } from "./core.js";
import { addToolCall, appendText, bubble, finishAnswer, note, setToolResult, userBubble } from "./render.js";
import { resume } from "./socket.js";
import { setRunning, updateComposer } from "./composer.js";
import { loadAgents, showSessionAgent, showVariables } from "./agents.js";
import { offerConnect } from "./connections.js";
import { addApproval, APPROVAL_REFUSALS, approvalDecided, approvalRefused, clearAwaiting, showPendingApprovals } from "./approvals.js";
import { loadSessions, openSession } from "./sessions.js";

// --- websocket ---------------------------------------------------------------------------------
export function connect() {
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
    state.resuming = 0; // unanswered: the next socket resumes again
    if (event.code === 4401) { location.href = "/accounts/login/?next=/chat/"; return; }
    if (state.starting) { state.starting = false; updateComposer(); } // the box still has the message
    setStatus("Connection lost, reconnecting…");
    setTimeout(connect, state.reconnectDelay);
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 10000);
  };
}

function handle(frame) {
  if (frame.type === "resumed" && frame.session_id === state.sessionId && --state.resuming <= 0) {
    state.resuming = 0;
    els.messages.removeAttribute("aria-busy");
  }
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
      userBubble(frame.user_message.seq, frame.user_message.text, frame.user_message.images);
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
