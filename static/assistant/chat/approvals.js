// Approval cards for the tool calls the agent's policy holds.
import { els, setStatus, state } from "./core.js";
import { bubble, note, tail } from "./render.js";
import { resume, send } from "./socket.js";
import { pendingCards, setRunning, updateComposer } from "./composer.js";

// --- approvals ---------------------------------------------------------------------------------
// A tool call the agent's policy holds: a card with its name and input (as text), an optional
// reason and Allow / Deny. The decision goes over the socket (`approve`); the `approval_decision`
// event, from this page or any other place the user decided, marks the card and the turn goes on.
export const APPROVAL_REFUSALS = new Set(["already_decided", "not_found", "too_many_turns", "invalid"]);
const DECIDED = { allowed: "Allowed", denied: "Denied", expired: "Expired" };
const cardFor = (approvalId) => [...els.messages.querySelectorAll(".approval")].find((card) => card.dataset.approvalId === approvalId);
const toolCallFor = (root, toolUseId) => [...root.querySelectorAll("details.tool-call")].find((d) => d.dataset.toolId === toolUseId);

export function addApproval(el, { approval_id: approvalId, tool_use_id: toolUseId, name, input, expires_at: expiresAt }) {
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

export function approvalDecided(frame) {
  const card = cardFor(frame.approval_id) || addApproval(state.current, { ...frame, input: undefined });
  markDecided(card, frame);
  if (!pendingCards().length) { // the last decision: the turn goes on
    clearAwaiting(state.current);
    state.current.classList.add("streaming");
    setRunning(true);
  }
}

export function clearAwaiting(el) {
  if (!el.classList.contains("awaiting")) return;
  el.classList.remove("awaiting");
  el.querySelector(":scope > .note")?.remove();
}

// A refused decision: on the card it was for. Taken already (or gone): the card stops offering it and
// a resume fetches what happened; refused for now (too many running turns): it can be sent again.
export function approvalRefused(frame) {
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
export function showPendingApprovals(pending) {
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
