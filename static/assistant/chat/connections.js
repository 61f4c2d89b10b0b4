// Connecting an integration a turn was refused for.
import { els, getJSON, sendJSON, setStatus } from "./core.js";

// A turn refused until the user connects an integration (issue 29): a button that connects it. OAuth
// opens the authorization server in a popup; the page then watches the user's connections until this
// one is made (the popup, gone cross-origin, can't be asked), and the message can be sent again.
export function offerConnect(frame) {
  const integration = frame.integration || {};
  const button = document.createElement("button");
  button.type = "button";
  button.className = "connect";
  button.textContent = `Connect ${integration.name}`;
  button.addEventListener("click", async () => {
    try {
      if (integration.auth === "per_user_token") {
        const token = window.prompt(`Your token for ${integration.name}:`);
        if (!token) return;
        await sendJSON("POST", frame.connect_url, { token });
        setStatus(`Connected to ${integration.name}: send your message again.`);
        return;
      }
      const popup = window.open("", "conduit-connect", "popup,width=600,height=720");
      const answer = await sendJSON("POST", frame.connect_url, {});
      if (!popup) { location.href = answer.authorize_url; return; }
      popup.location.href = answer.authorize_url;
      setStatus(`Finish connecting ${integration.name} in the window that opened…`);
      await connected(integration.id, Date.now());
      setStatus(`Connected to ${integration.name}: send your message again.`);
    } catch (error) { setStatus(`Couldn't connect ${integration.name}: ${error.message}`); }
  });
  els.status.append(" ", button);
}

async function connected(integrationId, since) {
  for (let tries = 0; tries < 300; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const rows = (await getJSON("/api/v1/connections")) || [];
    if (rows.some((row) => row.integration.id === integrationId && row.status === "connected"
                   && Date.parse(row.connected_at) >= since - 60000)) return;
  }
  throw new Error("not connected yet");
}
