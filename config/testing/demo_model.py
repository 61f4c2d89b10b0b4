"""A model to try Conduit with, no key needed: the fake Anthropic API, answering from a script.

    python3 dev.py run --demo                # the demo model on a free port and the server against it
    python3 dev.py demo-model [--port 8765]  # only the model, until Ctrl-C; then start Conduit with
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=demo python3 dev.py run

It speaks the real Messages API stream (the SDK can't tell it apart), so the chat page, the streaming, stop
and resume behave as with a real model. It quotes what you wrote; ask it to "list files" or "use a tool" and,
when the agent has workspace tools, it calls `list_directory` and then answers with what the tool returned.
"""

from __future__ import annotations

import argparse
import errno
import re
import signal
import sys
import threading
from typing import Any

from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server

DEFAULT_PORT = 8765
MODEL_NAME = "conduit-demo"
DELAY = 0.03  # seconds between streamed words: slow enough to watch
TOOL_REQUEST = re.compile(r"\b(list|show)\b.*\bfiles?\b|\btools?\b|\bworkspace\b", re.IGNORECASE | re.DOTALL)
RESULT_LIMIT = 1500  # characters of a tool's result quoted back
INTRO = (
    "I am Conduit's demo model: I quote what you write, so you can watch an answer stream. "
    'Ask me to "list files" to see a tool call.'
)


def last_user_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [block for block in content or [] if isinstance(block, dict)]
    return []


def last_user_text(body: dict[str, Any]) -> str:
    return "\n".join(block.get("text", "") for block in last_user_content(body) if block.get("type") == "text")


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _streamed(answer: str, **fields: Any) -> Reply:
    return Reply(text=re.findall(r"\S+\s*|\s+", answer), delay=DELAY, model=MODEL_NAME, **fields)


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.splitlines())


def answer(body: dict[str, Any]) -> Reply:
    """The reply to one request: a tool's result summed up, a tool call when asked for one, else a quote."""
    content = last_user_content(body)
    results = [block for block in content if block.get("type") == "tool_result"]
    if results:
        text = _result_text(results[-1]).strip() or "(nothing)"
        if len(text) > RESULT_LIMIT:
            text = text[:RESULT_LIMIT] + "\n…"
        verdict = "failed" if results[-1].get("is_error") else "answered"
        return _streamed(
            f"The tool {verdict}:\n\n```text\n{text.replace('```', '` ` `')}\n```\n\n"
            "That was a whole tool round trip: my call, Conduit running the tool in this session's workspace, "
            "and my answer from its result. Upload a file and ask again to see it listed.",
            input_tokens=len(text.split()) or 1,
        )
    said = last_user_text(body).strip()
    tool_names = {tool.get("name") for tool in body.get("tools") or [] if isinstance(tool, dict)}
    if said and TOOL_REQUEST.search(said):
        if "list_directory" in tool_names:
            return _streamed(
                "Let me look at the files of this session's workspace.",
                tool_uses=[ToolUse("list_directory", {"path": "."})],
                stop_reason="tool_use",
                input_tokens=len(said.split()),
            )
        return _streamed(
            "This agent has no workspace tools, so I can't show a tool call here. Start a chat with the "
            "**Code reviewer** agent (it has file tools) and ask again.",
            input_tokens=len(said.split()),
        )
    quoted = _quoted(said) if said else "> (nothing)"
    return _streamed(f"You said:\n\n{quoted}\n\n{INTRO}", input_tokens=len(said.split()) or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in a container).")
    parser.add_argument("--quiet", action="store_true", help="Print only the base URL (for dev.py run --demo).")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server = fake_anthropic_server(port=args.port, host=args.host)
        fake = server.__enter__()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(f"Port {args.port} is busy: start the demo model on another one (--port N, or 0 for any).")
        raise
    try:
        def respond(body: dict[str, Any]) -> Reply:
            fake.requests.clear()  # a test's record of what was sent: kept, it would grow for as long as the demo runs
            return answer(body)

        fake.responder = respond
        if args.quiet:
            print(fake.base_url, flush=True)
        else:
            print(f"Demo model listening on {fake.base_url}. Start Conduit against it with:", flush=True)
            print(f"  ANTHROPIC_BASE_URL={fake.base_url} ANTHROPIC_API_KEY=demo python3 dev.py run", flush=True)
            print("(or let `python3 dev.py run --demo` start both)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
