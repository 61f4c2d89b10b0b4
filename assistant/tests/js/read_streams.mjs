// Calls the run API as the Vercel AI SDK's own chat clients do, and prints what they read, as JSON.
//   node read_streams.mjs BASE_URL ACCESS_TOKEN AGENT_SLUG MESSAGE
// v5: `DefaultChatTransport` (what useChat uses to POST and parse the UI-message stream) and
//     `readUIMessageStream` (which assembles the chunks into the UI message).
// v4: `callChatApi` of @ai-sdk/ui-utils (useChat's request and data-stream reader in v4), and
//     `processDataStream` of ai@4 over the same kind of body, part by part.
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { processDataStream } from "ai-v4";
import { callChatApi } from "@ai-sdk/ui-utils";

const [base, token, slug, text] = process.argv.slice(2);
const runUrl = (protocol) => `${base}/api/v1/agents/${slug}/run?protocol=${protocol}`;
const headers = { Authorization: `Bearer ${token}` };

async function readV5() {
  const transport = new DefaultChatTransport({
    api: runUrl("v5"),
    headers,
    // Our API takes the new message only (the conversation lives in the session).
    prepareSendMessagesRequest: ({ messages }) => ({
      body: { message: messages.at(-1).parts.find((part) => part.type === "text").text },
    }),
  });
  const chunks = await transport.sendMessages({
    chatId: "chat-1",
    messages: [{ id: "user-1", role: "user", parts: [{ type: "text", text }] }],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  const errors = [];
  let message;
  for await (const snapshot of readUIMessageStream({ stream: chunks, onError: (error) => errors.push(String(error)) })) {
    message = snapshot;
  }
  return { message, errors };
}

async function readV4() {
  let finished;
  await callChatApi({
    api: runUrl("v4"),
    body: { message: text },
    streamProtocol: "data",
    credentials: undefined,
    headers,
    abortController: () => null,
    restoreMessagesOnFailure: () => {},
    onResponse: undefined,
    onUpdate: () => {},
    onFinish: (message, { usage, finishReason }) => {
      finished = { message, usage, finishReason };
    },
    onToolCall: undefined,
    generateId: () => "assistant-1",
    fetch,
    lastMessage: undefined,
  });
  return finished;
}

async function readV4Parts() {
  const response = await fetch(runUrl("v4"), {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ message: text }),
  });
  const parts = [];
  await processDataStream({
    stream: response.body,
    onTextPart: (value) => parts.push({ type: "text", value }),
    onToolCallPart: (value) => parts.push({ type: "tool_call", value }),
    onToolResultPart: (value) => parts.push({ type: "tool_result", value }),
    onStartStepPart: (value) => parts.push({ type: "start_step", value }),
    onFinishStepPart: (value) => parts.push({ type: "finish_step", value }),
    onFinishMessagePart: (value) => parts.push({ type: "finish_message", value }),
    onErrorPart: (value) => parts.push({ type: "error", value }),
  });
  return { header: response.headers.get("x-vercel-ai-data-stream"), parts };
}

const out = { v5: await readV5(), v4: await readV4(), v4Parts: await readV4Parts() };
process.stdout.write(JSON.stringify(out));
