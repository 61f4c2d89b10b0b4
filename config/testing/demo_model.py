"""A model to try Conduit with, no key needed: the fake Anthropic API on a fixed port, echoing each message.

    python3 dev.py demo-model                # http://127.0.0.1:8765, until Ctrl-C
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=demo python3 dev.py run

It speaks the real Messages API stream (the SDK can't tell it apart), so the chat page, the streaming, stop
and resume behave as with a real model; the answers just repeat what you wrote.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from typing import Any

from config.testing.fake_anthropic import Reply, fake_anthropic_server

DEFAULT_PORT = 8765


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [block.get("text", "") for block in content or [] if isinstance(block, dict) and block.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    return ""


def echo(body: dict[str, Any]) -> Reply:
    said = last_user_text(body).strip() or "(nothing)"
    answer = f"You said: **{said}**\n\nI am Conduit's demo model: I repeat what you write, word by word, so you can watch an answer stream."
    words = re.findall(r"\S+\s*|\s+", answer)
    return Reply(text=words, delay=0.04, model="conduit-demo", input_tokens=len(said.split()) or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake_anthropic_server(port=args.port) as fake:
        fake.responder = echo
        print(f"Demo model listening on {fake.base_url}. Start Conduit against it with:", flush=True)
        print(f"  ANTHROPIC_BASE_URL={fake.base_url} ANTHROPIC_API_KEY=demo python3 dev.py run", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
