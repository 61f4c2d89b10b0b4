"""Stored messages → the `messages` list of the next model call, in the provider-neutral block format
(the Messages API's own shape; assistant/llm/openai_chat.py converts it for Chat Completions)."""

from __future__ import annotations

from typing import Any, Iterable, Protocol


class StoredMessage(Protocol):
    role: str
    status: str
    content: list[dict[str, Any]]


# Blocks worth sending back. A stopped or failed answer keeps its text (the user saw it) but not
# an unfinished tool call, whose result will never come.
_KEPT_FROM_UNFINISHED = {"text"}


def _usable_blocks(message: StoredMessage) -> list[dict[str, Any]]:
    blocks = [b for b in (message.content or []) if isinstance(b, dict)]
    if message.status != "complete":
        blocks = [b for b in blocks if b.get("type") in _KEPT_FROM_UNFINISHED]
    return [b for b in blocks if not (b.get("type") == "text" and not b.get("text"))]


def api_messages(messages: Iterable[StoredMessage]) -> list[dict[str, Any]]:
    """The conversation as the API takes it: roles alternate, starting with the user; empty and
    still-streaming messages are left out; neighbours of the same role are merged."""
    history: list[dict[str, Any]] = []
    for message in messages:
        if message.status == "streaming":
            continue
        blocks = _usable_blocks(message)
        if not blocks:
            continue
        if history and history[-1]["role"] == message.role:
            history[-1]["content"].extend(blocks)
        else:
            history.append({"role": message.role, "content": list(blocks)})
    while history and history[0]["role"] != "user":
        history.pop(0)
    _drop_orphan_tool_results(history)
    _drop_unanswered_tool_uses(history)
    return history


def _drop_unanswered_tool_uses(history: list[dict[str, Any]]) -> None:
    """A tool_use must be answered by a tool_result in the next message. A turn whose process died
    while its tools ran leaves a finished answer asking for tools and no results: that call is left
    out (the API refuses the whole request otherwise)."""
    for index, message in enumerate(history):
        if message["role"] != "assistant":
            continue
        following = history[index + 1]["content"] if index + 1 < len(history) else []
        answered = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
        message["content"] = [
            b for b in message["content"] if b.get("type") != "tool_use" or b.get("id") in answered
        ] or [{"type": "text", "text": "(no content)"}]


def _drop_orphan_tool_results(history: list[dict[str, Any]]) -> None:
    """A tool_result must answer a tool_use of the assistant message just before it."""
    for index, message in enumerate(history):
        if message["role"] != "user":
            continue
        previous = history[index - 1]["content"] if index else []
        asked = {b.get("id") for b in previous if b.get("type") == "tool_use"}
        message["content"] = [
            b for b in message["content"] if b.get("type") != "tool_result" or b.get("tool_use_id") in asked
        ] or [{"type": "text", "text": "(no content)"}]
