"""Where a run's events go: numbered, as JSON lines or as readable text."""

from __future__ import annotations

import json
from typing import Any, TextIO


# --- output -----------------------------------------------------------------------------------


class EventSink:
    """Numbers the run's events and hands them to `write`. One vocabulary for every transport:
    session, text_delta, thinking_delta, tool_use, tool_result, result, error."""

    def __init__(self) -> None:
        self.session_id: int | None = None
        self.seq = 0

    def emit(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.write({"type": kind, "session_id": self.session_id, "seq": self.seq, **fields})

    def write(self, event: dict[str, Any]) -> None:
        raise NotImplementedError


class JsonLinesSink(EventSink):
    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream

    def write(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.stream.flush()


class TextSink(EventSink):
    """Assistant text as it streams, `→ tool(args)` and `← ok: first line` for tools, a summary."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.at_line_start = True

    def _out(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()
            self.at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        self._out(("" if self.at_line_start else "\n") + text + "\n")

    def write(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "text_delta":
            self._out(event["text"])
        elif kind == "tool_use":
            self._line(f"→ {event['name']}({_summary(event['input'])})")
        elif kind == "tool_result":
            first = next((line.strip() for line in event["output"].splitlines() if line.strip()), "")
            more = "…" if len(event["output"].strip()) > len(first) else ""
            self._line(f"← {'error' if event['is_error'] else 'ok'}: {_shorten(first, 100)}{more}")
        elif kind == "approval_decision":
            self._line(f"✋ {event['name']}: {event['decision']} ({event['decided_by']})")
        elif kind == "result":
            usage = event["usage"]
            self._line(
                f"[{event['stop_reason']} · {event['turns']} turn{'s' if event['turns'] != 1 else ''} · "
                f"{usage['input_tokens']} in / {usage['output_tokens']} out tokens · {event['duration_ms'] / 1000:.1f} s]"
            )
            self._line(f"session: {event['session_id']}")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(arguments: dict[str, Any]) -> str:
    parts = []
    for key, value in (arguments or {}).items():
        shown = (
            json.dumps(value, ensure_ascii=False)
            if not isinstance(value, str)
            else json.dumps(_shorten(value, 60), ensure_ascii=False)
        )
        parts.append(f"{key}={shown}")
    return _shorten(", ".join(parts), 120)
