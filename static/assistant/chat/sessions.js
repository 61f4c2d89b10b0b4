// The sessions sidebar (list, search, rename, delete) and opening a session or a new chat.
import { els, getJSON, results, sendJSON, setStatus, state } from "./core.js";
import { renderStored } from "./render.js";
import { resume } from "./socket.js";
import { loadFiles, showFiles } from "./files.js";
import { setRunning, updateComposer } from "./composer.js";
import { showSessionAgent, showVariables } from "./agents.js";

// The latest 50 sessions, or those whose title or messages hold the search box's text (GET
// /api/v1/sessions?search=…); a reply that comes after a newer search's is dropped.
let sessionsAsked = 0;
export async function loadSessions() {
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

export async function loadMessages(sessionId) {
  const page = await getJSON(`/api/v1/sessions/${sessionId}/messages?page_size=200`);
  els.messages.replaceChildren();
  for (const message of results(page)) renderStored(message);
  scrollToEnd(); // a session opens at its latest message
}
const scrollToEnd = () => { els.messages.scrollTop = els.messages.scrollHeight; };

// --- sessions and actions ----------------------------------------------------------------------
export async function openSession(sessionId, { load = true } = {}) {
  state.sessionId = sessionId;
  state.lastSeq = 0;
  state.resuming = 0; // another session's `resumed` doesn't count
  state.current = null;
  state.deciding = [];
  setRunning(false);
  if (location.hash !== `#session-${sessionId}`) history.replaceState(null, "", `#session-${sessionId}`);
  for (const link of els.sessions.querySelectorAll("a")) link.classList.toggle("active", Number(link.dataset.sessionId) === sessionId);
  showFiles([]);
  showSessionAgent().then(() => { showVariables(); updateComposer(); return loadFiles(); }).catch((error) => setStatus(String(error)));
  if (load) {
    els.messages.setAttribute("aria-busy", "true"); // until the socket's `resumed` (socket.js)
    await loadMessages(sessionId);
    resume(null);
  }
}

export function sessionFromHash() {
  const match = /^#session-(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

export function newChat() {
  state.sessionId = null; state.lastSeq = 0; state.current = null; state.deciding = []; state.resuming = 0;
  els.messages.removeAttribute("aria-busy");
  history.replaceState(null, "", location.pathname);
  els.messages.replaceChildren();
  showFiles([]);
  setRunning(false);
  els.agent.disabled = false;
  showVariables();
}
