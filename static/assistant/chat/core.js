// The chat page's elements, its state, and the REST helpers every other module uses.

const $ = (id) => document.getElementById(id);
export const els = {
  agent: $("agent-picker"), sessions: $("session-list"), messages: $("messages"), status: $("status"),
  composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"), newSession: $("new-session"),
  variables: $("variables"), variableFields: $("variable-fields"),
  app: $("app"), chat: $("chat"), sidebarToggle: $("sidebar-toggle"), search: $("session-search"),
  sessionEmpty: $("session-empty"), attach: $("attach"), fileInput: $("file-input"), files: $("files"),
  fileList: $("file-list"), dropZone: $("drop-zone"),
};
export const state = {
  ws: null, sessionId: null, lastSeq: 0, running: false, reconnectDelay: 500,
  resuming: 0, // `resume` frames sent whose `resumed` hasn't come back
  current: null, // the assistant bubble being streamed
  starting: false, // the frame type (`start`, `edit`, `regenerate`) sent whose turn or refusal hasn't come back yet
  agents: new Map(), // slug -> agent (with its prompt_variables)
  sessions: new Map(), // id -> session (its agent, custom_properties)
  outbox: [], // `start` frames sent while the socket was still connecting
  deciding: [], // approval cards whose `approve` was sent, oldest first, until their decision comes
};

// --- REST ------------------------------------------------------------------------------------
export async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401 || response.status === 403) { location.href = "/accounts/login/?next=/chat/"; return null; }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}
export const results = (page) => (Array.isArray(page) ? page : (page && page.results) || []);

// Writes: the page signs in with the session cookie, so Django wants the CSRF token (the one
// the sign-out form carries) in a header.
export async function sendJSON(method, url, body) {
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
export function problem(data) {
  if (!data || typeof data !== "object") return "";
  if (typeof data.detail === "string") return data.detail;
  if (data.detail && typeof data.detail.message === "string") {
    const fields = Object.values(data.detail.fields || {}).flat().filter((text) => typeof text === "string");
    return fields.length ? fields.join(" ") : data.detail.message;
  }
  const first = Object.values(data)[0];
  return Array.isArray(first) ? String(first[0]) : typeof first === "string" ? first : "";
}

export function setStatus(text) { els.status.textContent = text || ""; }
