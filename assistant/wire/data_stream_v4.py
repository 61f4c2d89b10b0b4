"""The Vercel AI SDK v4 data stream (what v4's `useChat` and `processDataStream` read): lines of
`CODE:JSON`, header `x-vercel-ai-data-stream: v1`.

    session        → nothing (the SDK's message id comes with each step)
    text_delta     → [f:{messageId}] 0:"text"
    thinking_delta → [f:{messageId}] g:"text"
    tool_use       → [f:{messageId}] 9:{toolCallId, toolName, args}
    tool_result    → a:{toolCallId, result} (a failed tool: result = {"error": output}); the step's
                     last result → e:{finishReason: "tool-calls", isContinued: false}
    approval_request / approval_decision → 2:[{type: "approval-request" | "approval-decision", …}] (data)
    result         → [e:{finishReason, isContinued, usage?}] d:{finishReason, usage}
    error          → [e:{finishReason: "error"}] 3:"message" d:{finishReason: "error"}

Usage is reported per turn: `d:` carries the turn's total. A step's `e:` carries usage only when
the turn had a single model call (then the step's usage is the turn's); the events don't split a
multi-call turn's usage by call (the stored messages do: one per call)."""

from __future__ import annotations

from typing import Any

from assistant.wire.jsontext import dumps

from assistant.wire.vercel import Steps, finish_reason

HEADER = "x-vercel-ai-data-stream"


def sdk_usage(usage: dict[str, int]) -> dict[str, int]:
    """v4's usage shape, as its Anthropic provider reports it (input tokens without cached ones)."""
    return {"promptTokens": usage.get("input_tokens", 0), "completionTokens": usage.get("output_tokens", 0)}


def part(code: str, value: Any) -> bytes:
    return f"{code}:{dumps(value)}\n".encode()


class DataStreamEncoder:
    content_type = "text/plain; charset=utf-8"
    headers = {HEADER: "v1"}

    def __init__(self) -> None:
        self.steps = Steps()
        self.message_id = ""

    def keepalive(self) -> bytes:
        return b""  # the format has no comment line; a quiet stream stays quiet

    def encode(self, frame: dict[str, Any]) -> bytes:
        kind = frame["type"]
        if kind == "session":
            self.message_id = f"session-{frame['session_id']}-{frame['seq']}"
            return b""
        if kind == "text_delta":
            return self._begin_step() + part("0", frame["text"])
        if kind == "thinking_delta":
            return self._begin_step() + part("g", frame["text"])
        if kind == "tool_use":
            out = self._begin_step()
            self.steps.tool_called(frame["id"])
            call = {"toolCallId": frame["id"], "toolName": frame["name"], "args": frame.get("input") or {}}
            return out + part("9", call)
        if kind == "tool_result":
            result = {"error": frame["output"]} if frame.get("is_error") else frame["output"]
            out = part("a", {"toolCallId": frame["id"], "result": result})
            if self.steps.tool_answered(frame["id"]):
                out += part("e", {"finishReason": "tool-calls", "isContinued": False})
            return out
        if kind in {"approval_request", "approval_decision"}:
            data = {k: v for k, v in frame.items() if k not in {"type", "seq"}}
            return part("2", [{"type": kind.replace("_", "-"), **data}])
        if kind == "result":
            reason = finish_reason(frame)
            usage = sdk_usage(frame.get("usage") or {})
            out = b""
            if self.steps.end():
                step = {"finishReason": reason, "isContinued": False}
                if frame.get("turns") == 1:
                    step["usage"] = usage
                out += part("e", step)
            return out + part("d", {"finishReason": reason, "usage": usage})
        if kind == "error":
            out = part("e", {"finishReason": "error", "isContinued": False}) if self.steps.end() else b""
            return out + part("3", frame["message"]) + part("d", {"finishReason": "error"})
        return b""

    def _begin_step(self) -> bytes:
        return part("f", {"messageId": self.message_id}) if self.steps.begin() else b""
