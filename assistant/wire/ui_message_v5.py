"""The Vercel AI SDK v5 UI-message stream (what `useChat` and `readUIMessageStream` read):
Server-Sent Events of JSON chunks, header `x-vercel-ai-ui-message-stream: v1`, ended by
`data: [DONE]`.

    session        → start {messageId, messageMetadata: {sessionId, agent}}
    text_delta     → [start-step] [text-start {id}] text-delta {id, delta}
    thinking_delta → [start-step] [reasoning-start {id}] reasoning-delta {id, delta}
    tool_use       → [start-step] tool-input-available {toolCallId, toolName, input, dynamic}
    tool_result    → tool-output-available {toolCallId, output, dynamic} (tool-output-error if it
                     failed); the step's last result → finish-step
    approval_request  → data-approval-request {id: approvalId, data: {approvalId, toolCallId, toolName,
                        input, expiresAt}} (the pinned `ai` 5.0 has no tool-approval chunk)
    approval_decision → data-approval-decision {id: approvalId, data: {approvalId, toolCallId, decision,
                        reason, decidedBy}}
    result         → [finish-step] (abort if stopped) finish {finishReason, messageMetadata} [DONE]
                     (a turn waiting for approvals: finishReason tool-calls, status awaiting_approval)
    error          → [finish-step] error {errorText} finish {finishReason: "error"} [DONE]

Our tools are defined on the server (MCP, workspace), not in the client's tool set, so their parts
are `dynamic` (`dynamic-tool` parts in the UI message), as the SDK does for MCP tools. Usage goes in
the finish chunk's message metadata, in the SDK's usage shape."""

from __future__ import annotations

from typing import Any

from assistant.wire.jsontext import dumps

from assistant.wire.vercel import Steps, finish_reason

HEADER = "x-vercel-ai-ui-message-stream"


def sdk_usage(usage: dict[str, int]) -> dict[str, int]:
    """Our usage (Anthropic's counts) in the SDK's LanguageModelUsage shape, as its Anthropic
    provider reports it (input tokens without the cached ones, which are counted apart)."""
    input_tokens = usage.get("input_tokens", 0)
    output_tokens = usage.get("output_tokens", 0)
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
        "cachedInputTokens": usage.get("cache_read_input_tokens", 0),
    }


class UIMessageStreamEncoder:
    content_type = "text/event-stream; charset=utf-8"
    headers = {HEADER: "v1"}

    def __init__(self) -> None:
        self.steps = Steps()
        self.parts = 0  # ids of text and reasoning parts: "text-1", "reasoning-2"…
        self.text_id: str | None = None
        self.reasoning_id: str | None = None
        self.session_id: int | None = None

    def encode(self, frame: dict[str, Any]) -> bytes:
        return b"".join(self._sse(chunk) for chunk in self.chunks(frame)) + (
            b"data: [DONE]\n\n" if frame["type"] in {"result", "error"} else b""
        )

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def chunks(self, frame: dict[str, Any]) -> list[dict[str, Any] | str]:
        kind = frame["type"]
        if kind == "session":
            self.session_id = frame["session_id"]
            return [{"type": "start", "messageId": f"session-{frame['session_id']}-{frame['seq']}",
                     "messageMetadata": {"sessionId": frame["session_id"], "agent": frame.get("agent")}}]  # fmt: skip
        if kind == "text_delta":
            out = self._begin_step() + self._end_reasoning()
            if self.text_id is None:
                self.text_id = self._part_id("text")
                out.append({"type": "text-start", "id": self.text_id})
            return [*out, {"type": "text-delta", "id": self.text_id, "delta": frame["text"]}]
        if kind == "thinking_delta":
            out = self._begin_step() + self._end_text()
            if self.reasoning_id is None:
                self.reasoning_id = self._part_id("reasoning")
                out.append({"type": "reasoning-start", "id": self.reasoning_id})
            return [*out, {"type": "reasoning-delta", "id": self.reasoning_id, "delta": frame["text"]}]
        if kind == "tool_use":
            out = self._begin_step() + self._end_parts()
            self.steps.tool_called(frame["id"])
            return [*out, {"type": "tool-input-available", "toolCallId": frame["id"], "toolName": frame["name"],
                           "input": frame.get("input") or {}, "dynamic": True}]  # fmt: skip
        if kind == "tool_result":
            if frame.get("is_error"):
                chunk = {"type": "tool-output-error", "toolCallId": frame["id"], "errorText": frame["output"]}
            else:
                chunk = {"type": "tool-output-available", "toolCallId": frame["id"], "output": frame["output"]}
            out = [{**chunk, "dynamic": True}]
            if self.steps.tool_answered(frame["id"]):
                out.append({"type": "finish-step"})
            return out
        if kind == "approval_request":
            data = {"approvalId": frame["approval_id"], "toolCallId": frame["tool_use_id"], "toolName": frame["name"],
                    "input": frame.get("input") or {}, "expiresAt": frame.get("expires_at")}  # fmt: skip
            return [{"type": "data-approval-request", "id": frame["approval_id"], "data": data}]
        if kind == "approval_decision":
            data = {"approvalId": frame["approval_id"], "toolCallId": frame["tool_use_id"],
                    "decision": frame["decision"], "reason": frame.get("reason") or "",
                    "decidedBy": frame.get("decided_by")}  # fmt: skip
            return [{"type": "data-approval-decision", "id": frame["approval_id"], "data": data}]
        if kind == "result":
            out = self._end_step()
            if frame.get("status") == "stopped":
                out.append({"type": "abort"})
            metadata = {"sessionId": frame["session_id"], "status": frame.get("status"),
                        "stopReason": frame.get("stop_reason"), "usage": sdk_usage(frame.get("usage") or {})}  # fmt: skip
            return [*out, {"type": "finish", "finishReason": finish_reason(frame), "messageMetadata": metadata}]
        if kind == "error":
            out = self._end_step()
            metadata = {"sessionId": frame["session_id"], "errorCode": frame["code"]}
            return [
                *out,
                {"type": "error", "errorText": frame["message"]},
                {"type": "finish", "finishReason": "error", "messageMetadata": metadata},
            ]
        return []

    # -- parts and steps

    def _part_id(self, kind: str) -> str:
        self.parts += 1
        return f"{kind}-{self.parts}"

    def _begin_step(self) -> list[dict[str, Any]]:
        return [{"type": "start-step"}] if self.steps.begin() else []

    def _end_text(self) -> list[dict[str, Any]]:
        if self.text_id is None:
            return []
        chunk, self.text_id = {"type": "text-end", "id": self.text_id}, None
        return [chunk]

    def _end_reasoning(self) -> list[dict[str, Any]]:
        if self.reasoning_id is None:
            return []
        chunk, self.reasoning_id = {"type": "reasoning-end", "id": self.reasoning_id}, None
        return [chunk]

    def _end_parts(self) -> list[dict[str, Any]]:
        return self._end_reasoning() + self._end_text()

    def _end_step(self) -> list[dict[str, Any]]:
        out = self._end_parts()
        if self.steps.end():
            out.append({"type": "finish-step"})
        return out

    @staticmethod
    def _sse(chunk: dict[str, Any]) -> bytes:
        return f"data: {dumps(chunk)}\n\n".encode()
