// Uploading files into the session's workspace: the attach button and drag and drop.
import { els, problem, sendJSON, setStatus, state } from "./core.js";
import { canUpload, chatAgent, fileChip, loadFiles } from "./files.js";
import { variableValues } from "./agents.js";
import { loadSessions, openSession } from "./sessions.js";

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
