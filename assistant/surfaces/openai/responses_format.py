"""The OpenAI Responses wire format, mapped to and from ours (no database, no transport).

In: a `POST /v1/responses` body → `ResponsesRequest`, whose `chat` is the same `ChatRequest` a Chat
Completions request makes (format.py), so the two APIs share turn planning, history digests and the
relay. The Responses `input` is translated item by item into Chat Completions messages first:
- a string: one user message;
- `message` items (`role` user/assistant/system/developer; `content` a string or `input_text` /
  `output_text` / `refusal` parts): the message;
- `function_call` items: an assistant message's tool call; `function_call_output`: a `tool` message
  (so both become the neutral tool_use / tool_result blocks of the history);
- `reasoning` items: dropped (the model's earlier thinking isn't replayed).
`instructions` go first among the client's system texts (after the agent's own system prompt).

Out: the Response object (`response_object`) and the streamed events (`ResponseEvents`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai.format import OpenAIError, bad_request

MAX_INPUT_ITEMS = wire.MAX_MESSAGES
MAX_METADATA_KEYS = 16  # as OpenAI
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
TEXT_PART_TYPES = {"input_text", "output_text", "text"}
NOT_YET_FUNCTION_TOOLS = "function tools on /v1/responses: not yet (they work on /v1/chat/completions only when served)."

# Our stop reasons that end a response early: its status is `incomplete`, for this reason.
INCOMPLETE_REASONS = {"max_tokens": "max_output_tokens", "model_context_window_exceeded": "max_output_tokens",
                      "max_turns": "max_output_tokens", "refusal": "content_filter"}  # fmt: skip


@dataclass
class ResponsesRequest:
    chat: wire.ChatRequest
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    max_output_tokens: int | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the Response object repeats


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _content_parts(content: Any, param: str) -> Any:
    """A Responses message's content as a Chat Completions one (a string or text parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise bad_request("`content` must be a string or a list of content parts.", param)
    parts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PART_TYPES and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "refusal", "refusal": part["refusal"]})
        else:
            raise bad_request(
                f"Content part of type {kind!r} is not supported: only input_text and output_text parts are.",
                f"{param}[{index}].type",
            )  # fmt: skip
    return parts


def _string(item: dict[str, Any], name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"`{name}` must be a non-empty string.", f"{param}.{name}")
    return value


def input_messages(value: Any) -> list[dict[str, Any]]:
    """The Responses `input` as Chat Completions messages. Raises OpenAIError (400 naming the item)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad_request("`input` must be a string or a non-empty list of input items.", "input")
    if len(value) > MAX_INPUT_ITEMS:
        raise bad_request(f"At most {MAX_INPUT_ITEMS} input items.", "input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise bad_request("Each input item must be an object.", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in {"user", "assistant", "system", "developer"}:
                raise bad_request("`role` must be one of assistant, developer, system, user.", f"{param}.role")
            messages.append({"role": role, "content": _content_parts(item.get("content"), f"{param}.content")})
        elif kind == "function_call":
            call = {"id": _string(item, "call_id", param), "type": "function",
                    "function": {"name": _string(item, "name", param), "arguments": item.get("arguments", "{}")}}  # fmt: skip
            # Calls of one model answer are one assistant message, as Chat Completions sends them.
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and (last.get("tool_calls") or not last["content"]):
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = _content_parts(output, f"{param}.output")
            elif not isinstance(output, str):
                raise bad_request("`output` must be a string or a list of content parts.", f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", param), "content": output})
        elif kind == "reasoning":
            continue
        else:
            raise bad_request(f"Input items of type {kind!r} are not supported.", f"{param}.type")
    return messages


def _bounded_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise bad_request(f"`metadata` must be an object of at most {MAX_METADATA_KEYS} string values.", "metadata")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY_CHARS or not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_CHARS:
            raise bad_request(
                f"`metadata` keys have at most {MAX_METADATA_KEY_CHARS} characters, values are strings of at most "
                f"{MAX_METADATA_VALUE_CHARS}.", f"metadata.{key[:MAX_METADATA_KEY_CHARS]}",
            )  # fmt: skip
    return dict(value)


def _refuse_unserved_options(data: dict[str, Any]) -> None:
    """Options this layer can't honour yet are refused, not silently dropped."""
    tools = data.get("tools")
    if tools not in (None, []):
        if not isinstance(tools, list):
            raise bad_request("`tools` must be a list.", "tools")
        # TODO(issue 27): map function tools onto the client-tool layer of /v1/chat/completions once
        # merged: `tools` of type function → client tools, `tool_choice`/`parallel_tool_calls` with them;
        # input_messages already turns function_call / function_call_output items into tool calls/results.
        raise OpenAIError(400, NOT_YET_FUNCTION_TOOLS, code="unsupported_value", param="tools")
    choice = data.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise OpenAIError(400, NOT_YET_FUNCTION_TOOLS, code="unsupported_value", param="tool_choice")
    text = data.get("text")
    if text is not None and not isinstance(text, dict):
        raise bad_request("`text` must be an object.", "text")
    text_format = (text or {}).get("format")
    if text_format is not None and (not isinstance(text_format, dict) or text_format.get("type") != "text"):
        # TODO(issue 27): json_object / json_schema through the structured-output layer of chat completions.
        raise OpenAIError(400, "Structured output (`text.format` other than text) on /v1/responses: not yet.",
                          code="unsupported_value", param="text.format")  # fmt: skip
    if data.get("background"):
        raise OpenAIError(400, "`background` responses are not supported.", code="unsupported_value", param="background")
    conversation = data.get("conversation")
    if conversation is not None:
        raise OpenAIError(400, "`conversation` is not supported: use `previous_response_id`.", code="unsupported_value",
                          param="conversation")  # fmt: skip


def parse_responses_request(data: Any) -> ResponsesRequest:
    """Validate a Responses body. Raises OpenAIError (400 naming the `param`).

    Accepted and ignored: sampling parameters (temperature, top_p, …; the agent's config decides),
    `reasoning`, `truncation`, `include`, `parallel_tool_calls`, `prompt_cache_key`, `safety_identifier`."""
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", None)
    _refuse_unserved_options(data)
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("`instructions` must be a string.", "instructions")
    if "input" not in data:
        raise bad_request("`input` is required: a string or a list of input items.", "input")
    messages = input_messages(data["input"])
    if instructions and instructions.strip():
        messages.insert(0, {"role": "developer", "content": instructions})
    previous = data.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous.startswith("resp_") or len(previous) > 64):
        raise bad_request("`previous_response_id` must be the id of a response (resp_…).", "previous_response_id")
    store = data.get("store", True)
    if store is None:
        store = True
    if not isinstance(store, bool):
        raise bad_request("`store` must be a boolean.", "store")
    max_output = data.get("max_output_tokens")
    if max_output is not None and (isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 1):
        raise bad_request("`max_output_tokens` must be a positive integer.", "max_output_tokens")
    chat_body = {"model": data.get("model"), "messages": messages, "stream": data.get("stream"),
                 "max_tokens": max_output, "user": data.get("user")}  # fmt: skip
    try:
        chat = wire.parse_chat_request(chat_body)
    except OpenAIError as error:
        error.param = _responses_param(error.param, data.get("input"), bool(instructions and instructions.strip()))
        if error.param == "input" and error.message.startswith("The last message"):
            error.message = "The last input item (after any system messages) must be a `user` message: the agent answers it."
        raise
    echo = {
        "temperature": data.get("temperature") if isinstance(data.get("temperature"), (int, float)) else 1.0,
        "top_p": data.get("top_p") if isinstance(data.get("top_p"), (int, float)) else 1.0,
        "user": data.get("user"),
        "parallel_tool_calls": data.get("parallel_tool_calls") if isinstance(data.get("parallel_tool_calls"), bool) else True,
        "truncation": data.get("truncation") if data.get("truncation") in ("auto", "disabled") else "disabled",
    }  # fmt: skip
    return ResponsesRequest(
        chat=chat, instructions=instructions, previous_response_id=previous, store=store,
        metadata=_bounded_metadata(data.get("metadata")), max_output_tokens=max_output, echo=echo,
    )  # fmt: skip


def _responses_param(param: str | None, original_input: Any, shifted: bool) -> str | None:
    """A Chat Completions param (`messages[2].content`) as the Responses request's (`input[1].content`).
    Exact for string input and for lists without function calls merged into one message."""
    if not param or not param.startswith("messages"):
        return {"max_tokens": "max_output_tokens"}.get(param or "", param)
    if isinstance(original_input, str):
        return "input"
    rest = param[len("messages") :]
    if rest.startswith("[") and "]" in rest:
        index = int(rest[1 : rest.index("]")]) - (1 if shifted else 0)
        if index < 0:
            return "instructions"
        return f"input[{index}]" + rest[rest.index("]") + 1 :]
    return "input"


# --- out ------------------------------------------------------------------------------------------


def responses_usage(usage: dict[str, int]) -> dict[str, Any]:
    counted = wire.openai_usage(usage)
    return {
        "input_tokens": counted["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": counted["prompt_tokens_details"]["cached_tokens"]},
        "output_tokens": counted["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counted["total_tokens"],
    }


def output_message(message_id: str, text: str, *, status: str = "completed") -> dict[str, Any]:
    return {
        "id": message_id, "type": "message", "status": status, "role": "assistant",
        "content": [output_text_part(text)],
    }  # fmt: skip


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def status_of(stop_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) of a response whose turn ended with `stop_reason`."""
    reason = INCOMPLETE_REASONS.get(stop_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


@dataclass
class ResponseState:
    """One response as it goes: what the Response object and its events say."""

    request: ResponsesRequest
    response_id: str = field(default_factory=new_response_id)
    message_id: str = field(default_factory=new_message_id)
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "in_progress"
    text: str = ""
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, str] | None = None
    sequence: int = 0

    def finish(self, *, stop_reason: str | None, usage: dict[str, int]) -> None:
        self.status, self.incomplete_details = status_of(stop_reason)
        self.output = [output_message(self.message_id, self.text, status=self.status)]
        self.usage = responses_usage(usage)

    def fail(self, error: OpenAIError) -> None:
        self.status = "failed"
        self.error = {"code": error.code or "server_error", "message": error.message}
        if self.text:
            self.output = [output_message(self.message_id, self.text, status="incomplete")]

    def body(self) -> dict[str, Any]:
        request = self.request
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": False,
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": request.chat.model,
            "output": self.output,
            "parallel_tool_calls": request.echo.get("parallel_tool_calls", True),
            "previous_response_id": request.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "store": request.store,
            "temperature": request.echo.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": request.echo.get("top_p", 1.0),
            "truncation": request.echo.get("truncation", "disabled"),
            "usage": self.usage,
            "user": request.echo.get("user"),
            "metadata": request.metadata,
        }

    def event(self, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        """One streamed event: (its name, its data with `type` and `sequence_number`)."""
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, data

    # The documented sequence of a text answer, piece by piece.

    def opening_events(self) -> list[tuple[str, dict[str, Any]]]:
        item = {"id": self.message_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        return [
            self.event("response.created", response=self.body()),
            self.event("response.in_progress", response=self.body()),
            self.event("response.output_item.added", output_index=0, item=item),
            self.event("response.content_part.added", item_id=self.message_id, output_index=0, content_index=0,
                       part=output_text_part("")),
        ]  # fmt: skip

    def delta_event(self, text: str) -> tuple[str, dict[str, Any]]:
        self.text += text
        return self.event("response.output_text.delta", item_id=self.message_id, output_index=0, content_index=0,
                          delta=text, logprobs=[])  # fmt: skip

    def closing_events(self) -> list[tuple[str, dict[str, Any]]]:
        """After `finish`: the text, part and item done, then the response's end."""
        where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        final = "response.completed" if self.status == "completed" else "response.incomplete"
        return [
            self.event("response.output_text.done", **where, text=self.text, logprobs=[]),
            self.event("response.content_part.done", **where, part=output_text_part(self.text)),
            self.event("response.output_item.done", output_index=0, item=self.output[0]),
            self.event(final, response=self.body()),
        ]

    def failed_events(self) -> list[tuple[str, dict[str, Any]]]:
        """After `fail`: the error (what OpenAI sends first) and `response.failed`."""
        error = self.error or {}
        return [
            self.event("error", code=error.get("code"), message=error.get("message"), param=None),
            self.event("response.failed", response=self.body()),
        ]
