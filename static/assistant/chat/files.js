// The session's workspace files: whether the chat's agent takes uploads, and their list.
import { els, getJSON, results, state } from "./core.js";

// --- files: upload into the session's workspace (REST /api/v1/sessions/<id>/files) ----------------
// Offered when the chat's agent has workspace tools; a new chat is created first (it has no
// workspace yet). The API's refusals (size, quota, too many files) are shown on the file's chip.
export function chatAgent() {
  const session = state.sessionId ? state.sessions.get(state.sessionId) : null;
  const slug = session ? session.agent_detail && session.agent_detail.slug : els.agent.value;
  return state.agents.get(slug);
}
// Only staff's organization agents (no owner) get workspace tools, whatever a user's own agent says.
export const canUpload = () => {
  const agent = chatAgent();
  return Boolean(agent && agent.owner == null && agent.workspace_tools && agent.workspace_tools !== "none");
};
export function showAttach() { els.attach.hidden = !canUpload(); }

export async function loadFiles() {
  if (!state.sessionId || !canUpload()) { showFiles([]); return; }
  const sessionId = state.sessionId;
  const files = await getJSON(`/api/v1/sessions/${sessionId}/files`).catch(() => null);
  if (sessionId === state.sessionId) showFiles(results(files), { keep: true });
}

// The stored files, and (`keep`) the uploads still going or refused, which stay listed until the chat changes.
export function showFiles(files, { keep = false } = {}) {
  const kept = keep ? [...els.fileList.querySelectorAll("li.uploading, li.failed")] : [];
  els.fileList.replaceChildren(...files.map((file) => fileChip(file.name, file.size != null ? `${file.size} bytes` : "")), ...kept);
  els.files.hidden = !els.fileList.children.length;
}

export function fileChip(name, title, kind) {
  const chip = Object.assign(document.createElement("li"), { textContent: name, title: title || "" });
  if (kind) chip.classList.add(kind);
  return chip;
}
