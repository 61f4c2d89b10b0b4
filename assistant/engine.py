"""The agent loop, free of the database and of any transport.

`agent_loop` streams the model's answer, and when the model asks for tools (and a tool runner is given)
runs them, parallel calls of one turn concurrently, sends the results back and goes on, until the
model ends its turn or the turn limit is reached. It yields typed events; callers persist, relay or
print them. Cancelling the task that iterates it closes the upstream stream (stop means stop).
While a model call streams, `UsageReported` carries its usage so far: a call that is stopped, cut off
or fails mid-stream still counts the tokens the API reported before it ended.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

from assistant.llm import LLMError, ModelSettings, async_client, map_sdk_error


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }

    @classmethod
    def from_sdk(cls, usage: Any) -> Usage:
        return cls(
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
            cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
            cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        )


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolOutcome:
    tool_use_id: str
    content: str
    is_error: bool = False

    def as_block(self) -> dict[str, Any]:
        return {"type": "tool_result", "tool_use_id": self.tool_use_id, "content": self.content, "is_error": self.is_error}


class ToolRunner(Protocol):
    def definitions(self) -> list[dict[str, Any]]:
        """Tool definitions in the Messages API's `tools` format."""

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Run one call. Failures are outcomes with is_error=True, not exceptions: the model reads them."""


# --- events ---------------------------------------------------------------------------------


@dataclass
class ModelCallStarted:
    turn: int


@dataclass
class TextDelta:
    text: str


@dataclass
class ThinkingDelta:
    text: str


@dataclass
class UsageReported:
    """The usage of the model call in progress so far (cumulative for that call), from the stream's
    `message_start` and `message_delta` events: what a stopped or failed call still counts."""

    usage: Usage


@dataclass
class ToolUseRequested:
    call: ToolCall


@dataclass
class ModelCallFinished:
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    model: str


@dataclass
class ToolResults:
    results: list[ToolOutcome]


@dataclass
class LoopFinished:
    stop_reason: str
    usage: Usage
    turns: int
    duration_ms: int


LoopEvent = (
    ModelCallStarted
    | UsageReported
    | TextDelta
    | ThinkingDelta
    | ToolUseRequested
    | ModelCallFinished
    | ToolResults
    | LoopFinished
)


# --- the loop -------------------------------------------------------------------------------

_BLOCK_FIELDS = {
    "text": ("type", "text", "citations"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "tool_use": ("type", "id", "name", "input"),
}


def content_block_param(block: Any) -> dict[str, Any]:
    """An SDK content block as the plain dict the API takes back in the next request."""
    data = block.model_dump(mode="json", exclude_none=True)
    fields = _BLOCK_FIELDS.get(data.get("type"))
    return {k: v for k, v in data.items() if k in fields} if fields else data


@dataclass
class LoopRequest:
    model: ModelSettings
    messages: list[dict[str, Any]]
    system: str = ""
    tools: ToolRunner | None = None
    max_turns: int = 1
    # Sequences that end the model's answer early (stop_reason "stop_sequence"); every provider has them.
    stop_sequences: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # Awaited before each model call (with its turn number), after ModelCallStarted: raising an
    # LLMError (e.g. usage's BudgetExceeded) ends the loop before the model is reached.
    before_model_call: Callable[[int], Awaitable[None]] | None = None


async def agent_loop(request: LoopRequest) -> AsyncIterator[LoopEvent]:
    started = time.monotonic()
    client = async_client(request.model)
    history = list(request.messages)
    total = Usage()
    tool_definitions = request.tools.definitions() if request.tools else []
    for turn in range(1, request.max_turns + 1):
        yield ModelCallStarted(turn)
        if request.before_model_call is not None:
            await request.before_model_call(turn)
        params: dict[str, Any] = {
            "model": request.model.model,
            "max_tokens": request.model.max_tokens,
            "messages": history,
            **request.extra,
        }
        if request.system:
            params["system"] = request.system
        if tool_definitions:
            params["tools"] = tool_definitions
        if request.stop_sequences:
            params["stop_sequences"] = list(request.stop_sequences)
        try:
            async with client.messages.stream(**params) as stream:
                async for event in stream:
                    if event.type == "content_block_delta":
                        if event.delta.type == "text_delta":
                            yield TextDelta(event.delta.text)
                        elif event.delta.type == "thinking_delta":
                            yield ThinkingDelta(event.delta.thinking)
                    elif event.type in ("message_start", "message_delta"):
                        # The SDK's snapshot has merged this event's usage the way the API means it.
                        yield UsageReported(Usage.from_sdk(stream.current_message_snapshot.usage))
                    elif event.type == "content_block_stop" and event.content_block.type == "tool_use":
                        block = event.content_block
                        yield ToolUseRequested(ToolCall(block.id, block.name, dict(block.input or {})))
                final = await stream.get_final_message()
            if final.stop_reason is None:
                # The SDK accepts a stream that ends without message_delta/message_stop: a cut
                # connection would pass for a complete answer.
                raise LLMError("upstream_unavailable", "The model's answer was cut off mid-stream.", retryable=True)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's
            raise map_sdk_error(exc) from exc

        usage = Usage.from_sdk(final.usage)
        total.add(usage)
        content = [content_block_param(block) for block in final.content]
        yield ModelCallFinished(content, final.stop_reason, usage, final.model)
        history.append({"role": "assistant", "content": content})

        calls = [ToolCall(b["id"], b["name"], b.get("input") or {}) for b in content if b["type"] == "tool_use"]
        if final.stop_reason != "tool_use" or not calls or request.tools is None:
            yield LoopFinished(final.stop_reason or "end_turn", total, turn, _ms_since(started))
            return
        results = list(await asyncio.gather(*(request.tools.run(call) for call in calls)))
        yield ToolResults(results)
        history.append({"role": "user", "content": [result.as_block() for result in results]})

    yield LoopFinished("max_turns", total, request.max_turns, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "LLMError",
    "LoopEvent",
    "LoopRequest",
    "ModelSettings",
    "ToolCall",
    "ToolOutcome",
    "ToolRunner",
    "Usage",
    "UsageReported",
    "agent_loop",
]
