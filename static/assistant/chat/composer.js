// The composer's state (running, waiting for a decision) and regenerate / edit of the last exchange.
import { els, setStatus, state } from "./core.js";
import { send } from "./socket.js";
import { showAttach } from "./files.js";

export function setRunning(running) {
  state.running = running;
  els.stop.hidden = !running;
  updateComposer();
}

// While a tool call waits for a decision the session takes no new message (the server refuses it
// with `approval_pending`): the composer says so.
export const pendingCards = () => [...els.messages.querySelectorAll(".approval.pending")];
export function updateComposer() {
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
  const text = el.dataset.text ?? el.firstChild.textContent; // without an image placeholder
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
