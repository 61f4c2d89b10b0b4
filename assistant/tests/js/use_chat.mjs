// Chats with an agent through the run API as `useChat({transport: new DefaultChatTransport({api, headers})})`
// does, unchanged: the `ai` package's chat (AbstractChat, which @ai-sdk/react's useChat runs over React
// state; here over plain state) sends each message with the transport's default request body
// ({id, messages, trigger, messageId}) and reads the UI-message stream. Prints the chat's messages,
// the X-Session-ID of each answer and any errors, as JSON.
// AI_PACKAGE names the `ai` version to drive (package.json: "ai" is 5, "ai-v6" is 6); default "ai".
//   [AI_PACKAGE=ai-v6] node use_chat.mjs BASE_URL ACCESS_TOKEN AGENT_SLUG MESSAGE…
const { AbstractChat, DefaultChatTransport } = await import(process.env.AI_PACKAGE ?? "ai");

const [base, token, slug, ...texts] = process.argv.slice(2);

class PlainState {
  status = "ready";
  error = undefined;
  messages = [];
  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new PlainState() });
  }
}

const sessionIds = [];
const errors = [];
const chat = new Chat({
  id: "node-chat-1",
  transport: new DefaultChatTransport({
    api: `${base}/api/v1/agents/${slug}/run`,
    headers: { Authorization: `Bearer ${token}` },
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      sessionIds.push(response.headers.get("x-session-id"));
      return response;
    },
  }),
  onError: (error) => errors.push(String(error)),
});
for (const text of texts) {
  await chat.sendMessage({ text });
}
console.log(JSON.stringify({ messages: chat.messages, status: chat.status, sessionIds, errors }));
