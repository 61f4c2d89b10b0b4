"""What the Vercel AI SDK's two stream protocols share: steps and finish reasons.

The SDK counts a *step* per model call. Our events don't mark model calls, but a call that asks for
tools ends when the last of its tools' results is in (the next call starts then), and the last call
ends with the turn's `result`: that is enough to open and close steps in the same places."""

from __future__ import annotations

from typing import Any

# Anthropic stop reasons → the SDK's finish reasons (its Anthropic provider maps them the same way).
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
    "approval_required": "tool-calls",  # the turn waits for a person to approve its tool calls
}


def finish_reason(result: dict[str, Any]) -> str:
    if result.get("status") == "stopped":
        return "other"  # stopped by the user; the SDK has no reason of its own for that
    return FINISH_REASONS.get(result.get("stop_reason") or "", "other")


class Steps:
    """Tracks the open step and the tool calls it still waits for."""

    def __init__(self) -> None:
        self.open = False
        self.count = 0
        self.waiting_tools: set[str] = set()

    def begin(self) -> bool:
        """Before content: True if this content starts a new step."""
        if self.open:
            return False
        self.open = True
        self.count += 1
        return True

    def tool_called(self, tool_id: str) -> None:
        self.waiting_tools.add(tool_id)

    def tool_answered(self, tool_id: str) -> bool:
        """After a tool's result: True if that was the step's last one (the step ends)."""
        self.waiting_tools.discard(tool_id)
        if self.open and not self.waiting_tools:
            self.open = False
            return True
        return False

    def end(self) -> bool:
        """At the turn's end: True if a step was open."""
        was_open, self.open = self.open, False
        return was_open
