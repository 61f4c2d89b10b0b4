// Frames to the server over the page's websocket (opened by turns.js).
import { els, setStatus, state } from "./core.js";

export function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(frame)); return true; }
  if (["start", "edit", "regenerate"].includes(frame.type) && state.ws && state.ws.readyState === WebSocket.CONNECTING) {
    state.outbox.push(frame); // sent as soon as the socket opens
    setStatus("Connecting…");
    return true;
  }
  setStatus("Not connected yet, try again in a moment.");
  return false;
}

// The session's events after `afterSeq` (none: its latest turn from the start), then live. The messages
// are busy (aria-busy) until every resume sent has its `resumed`: the replay may redraw the latest turn.
export function resume(afterSeq) {
  const frame = { type: "resume", session_id: state.sessionId };
  if (afterSeq) frame.after_seq = afterSeq;
  if (!send(frame)) return;
  state.resuming += 1;
  els.messages.setAttribute("aria-busy", "true");
}
