// Rendering answers: markdown (markdown-it, DOMPurify), highlighted code, tool calls, stored messages.
import { els } from "./core.js";

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

export function bubble(role, seq) {
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  if (seq != null) el.dataset.seq = seq;
  if (role === "user") el.append(document.createElement("span"));
  els.messages.append(el);
  els.messages.scrollTop = els.messages.scrollHeight;
  return el;
}

// A message of the user's, from the stored message or a turn's `session` event. Images (sent through
// /v1) aren't shown here: a placeholder says they were there (and Edit changes only the text).
export function userBubble(seq, text, images = 0) {
  const placeholder = images ? `[${images} image${images > 1 ? "s" : ""}]` : "";
  const el = bubble("user", seq);
  el.dataset.text = text;
  el.firstChild.textContent = [text, placeholder].filter(Boolean).join("\n");
}

// The answer's text after its last tool call: each text segment keeps its markdown source and
// is rendered again as it grows (at most once a frame).
export const tail = (el) => el.querySelector(":scope > .note, :scope > .meta");
function textSegment(el) {
  const last = [...el.children].filter((child) => !child.matches(".note, .meta")).at(-1);
  if (last && last.classList.contains("md")) return last;
  const segment = document.createElement("div");
  segment.className = "md";
  segment.source = "";
  el.insertBefore(segment, tail(el));
  return segment;
}

export function appendText(el, text, { now = false } = {}) {
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
export function addToolCall(el, { id, name, input }) {
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

export function setToolResult(root, { id, isError, output }) {
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

export function note(el, text, kind) {
  let n = el.querySelector(":scope > .note");
  if (!n) { n = document.createElement("span"); n.className = "note"; el.insertBefore(n, el.querySelector(":scope > .meta")); }
  n.textContent = text;
  if (kind) el.classList.add(kind);
}

// An answer's footer: its token usage and a button copying its text (the markdown source).
export function finishAnswer(el, usage) {
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
export function renderStored(message) {
  const blocks = message.content || [];
  const last = els.messages.lastElementChild;
  const toolResults = blocks.every((b) => b.type === "tool_result") && (blocks.length || message.status === "awaiting");
  if (message.role === "user" && toolResults) { // (a paused turn's results may be none yet: all its calls held)
    if (last) for (const b of blocks) setToolResult(last, { id: b.tool_use_id, isError: b.is_error, output: resultText(b.content) });
    if (last) last.dataset.afterTools = "1";
    return;
  }
  if (message.role === "user") {
    const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("");
    userBubble(message.seq, text, blocks.filter((b) => b.type === "image").length);
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
