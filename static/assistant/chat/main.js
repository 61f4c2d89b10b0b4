// Conduit chat page: REST for agents, sessions and stored messages; one websocket for live turns.
// The websocket protocol is documented in assistant/surfaces/websocket.py. The open session lives in the URL
// hash (#session-12), so a reload comes back to it and resumes a turn that is still running.
import { els, sendJSON, setStatus, state } from "./core.js";
import { send } from "./socket.js";
import { loadFiles } from "./files.js";
import { pendingCards, updateComposer } from "./composer.js";
import { loadAgents, showSessionAgent, showVariables, variableValues } from "./agents.js";
import { loadMessages, loadSessions, newChat, openSession, sessionFromHash } from "./sessions.js";
import { connect } from "./turns.js";
import "./upload.js"; // its listeners: the attach button, drag and drop

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
