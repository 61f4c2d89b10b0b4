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
Function `tools`, `tool_choice`, `text.format` and `input_image` parts become the Chat Completions
options (responses_options.py), so both APIs check and honour them alike.

Out: the Response object and its streamed events (`ResponseState`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from assistant.engine import ToolCall
from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai import responses_options as options
from assistant.surfaces.openai.format import OpenAIError, bad_request

MAX_INPUT_ITEMS = wire.MAX_MESSAGES
MAX_METADATA_KEYS = 16  # as OpenAI
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
TEXT_PART_TYPES = {"input_text", "output_text", "text"}
# The name of the stand-in call a `function_call_output` answers when `input` goes on from the previous
# response (the session has the real call: only its id links the result to it).
PREVIOUS_CALL = "previous_response_call"

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
    previous_call_ids: list[str] = field(default_factory=list)  # the previous response's calls `input` answers


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
        elif kind == "input_image":
            parts.append(options.image_part(part, f"{param}[{index}]"))
        else:
            raise bad_request(
                f"Content part of type {kind!r} is not supported: only input_text, input_image and output_text parts are.",
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
            # An answer's text and calls are one assistant message, as Chat Completions sends them.
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
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
    """Options this layer can't honour are refused, not silently dropped."""
    if data.get("background"):
        raise OpenAIError(400, "`background` responses are not supported.", code="unsupported_value", param="background")
    conversation = data.get("conversation")
    if conversation is not None:
        raise OpenAIError(400, "`conversation` is not supported: use `previous_response_id`.", code="unsupported_value",
                          param="conversation")  # fmt: skip


def parse_responses_request(data: Any) -> ResponsesRequest:
    """Validate a Responses body. Raises OpenAIError (400 naming the `param`).

    Accepted and ignored: sampling parameters (temperature, top_p, …; the agent's config decides),
    `reasoning`, `truncation`, `include`, `prompt_cache_key`, `safety_identifier`.
    With `previous_response_id`, `input` may start with `function_call_output` items: the results of
    the calls the previous response handed over (`previous_call_ids`, checked against it by the view)."""
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", None)
    _refuse_unserved_options(data)
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("`instructions` must be a string.", "instructions")
    if "input" not in data:
        raise bad_request("`input` is required: a string or a list of input items.", "input")
    previous = data.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous.startswith("resp_") or len(previous) > 64):
        raise bad_request("`previous_response_id` must be the id of a response (resp_…).", "previous_response_id")
    messages = input_messages(data["input"])
    previous_call_ids = []
    if previous:  # results of the previous response's calls: after a stand-in of its call message
        previous_call_ids = [m["tool_call_id"] for m in _leading(messages, "tool")]
    shift = 0
    if previous_call_ids:
        calls = [{"id": i, "type": "function", "function": {"name": PREVIOUS_CALL, "arguments": "{}"}} for i in previous_call_ids]
        messages.insert(0, {"role": "assistant", "content": "", "tool_calls": calls})
        shift += 1
    if instructions and instructions.strip():
        messages.insert(0, {"role": "developer", "content": instructions})
        shift += 1
    store = data.get("store", True)
    if store is None:
        store = True
    if not isinstance(store, bool):
        raise bad_request("`store` must be a boolean.", "store")
    max_output = data.get("max_output_tokens")
    if max_output is not None and (isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 1):
        raise bad_request("`max_output_tokens` must be a positive integer.", "max_output_tokens")
    chat_body = {
        "model": data.get("model"), "messages": messages, "stream": data.get("stream"), "max_tokens": max_output,
        "user": data.get("user"), "tools": options.chat_tools(data.get("tools")),
        "tool_choice": options.chat_tool_choice(data.get("tool_choice")),
        "parallel_tool_calls": data.get("parallel_tool_calls"),
        "response_format": options.chat_response_format(data.get("text")),
    }  # fmt: skip
    try:
        chat = wire.parse_chat_request(chat_body)
    except OpenAIError as error:
        error.param = _responses_param(error.param, data.get("input"), shift)
        if error.param == "input" and error.message.startswith("The last message"):
            error.message = ("The last input item (after any system messages) must be a `user` message, or "
                             "`function_call_output` items answering the last `function_call` items: the agent answers it.")  # fmt: skip
        elif error.param == "input" and error.message.startswith("`tool` messages"):
            error.message = ("`function_call_output` items must follow the `function_call` items they answer "
                             "(or start `input` going on from `previous_response_id`).")  # fmt: skip
        raise
    if previous_call_ids:
        chat.history = chat.history[1:]  # the stand-in: the session holds the previous response's calls
    echo = {
        "temperature": data.get("temperature") if isinstance(data.get("temperature"), (int, float)) else 1.0,
        "top_p": data.get("top_p") if isinstance(data.get("top_p"), (int, float)) else 1.0,
        "user": data.get("user"),
        "parallel_tool_calls": data.get("parallel_tool_calls") if isinstance(data.get("parallel_tool_calls"), bool) else True,
        "truncation": data.get("truncation") if data.get("truncation") in ("auto", "disabled") else "disabled",
        "tools": data.get("tools") or [],
        "tool_choice": data.get("tool_choice") or "auto",
        "text": {"format": (data.get("text") or {}).get("format") or {"type": "text"}},
    }  # fmt: skip
    return ResponsesRequest(
        chat=chat, instructions=instructions, previous_response_id=previous, store=store,
        metadata=_bounded_metadata(data.get("metadata")), max_output_tokens=max_output, echo=echo,
        previous_call_ids=previous_call_ids,
    )  # fmt: skip


def _leading(messages: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    count = 0
    while count < len(messages) and messages[count]["role"] == role:
        count += 1
    return messages[:count]


def _responses_param(param: str | None, original_input: Any, shift: int) -> str | None:
    """A Chat Completions param (`messages[2].content`) as the Responses request's (`input[1].content`).
    Exact for string input and for lists without function calls merged into one message."""
    if not param or not param.startswith("messages"):
        return options.responses_param({"max_tokens": "max_output_tokens"}.get(param or "", param)) if param else param
    if isinstance(original_input, str):
        return "input"
    rest = param[len("messages") :]
    if rest.startswith("[") and "]" in rest:
        index = int(rest[1 : rest.index("]")]) - shift
        if index < 0:
            return "instructions"
        return options.responses_param(f"input[{index}]" + rest[rest.index("]") + 1 :])
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


def function_call_item(call: ToolCall, item_id: str, *, arguments: str | None = None, status: str = "completed") -> dict[str, Any]:
    encoded = json.dumps(call.input, ensure_ascii=False) if arguments is None else arguments
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call.id, "name": call.name,
            "arguments": encoded}  # fmt: skip


@dataclass
class ResponseState:
    """One response as it goes: what the Response object and its events say. Its output: the message
    (when there is text, or nothing else), then a `function_call` item per client tool call."""

    request: ResponsesRequest
    response_id: str = field(default_factory=new_response_id)
    message_id: str = field(default_factory=new_message_id)
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "in_progress"
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    call_item_ids: list[str] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, str] | None = None
    sequence: int = 0
    message_opened: bool = False  # streamed: its output_item.added was sent

    @property
    def has_message(self) -> bool:
        return bool(self.text) or not self.calls

    def finish(self, *, stop_reason: str | None, usage: dict[str, int], calls: list[ToolCall] = ()) -> None:
        self.status, self.incomplete_details = status_of(None if calls else stop_reason)
        self.calls = list(calls)
        self.call_item_ids = [f"fc_{uuid.uuid4().hex}" for _ in self.calls]
        message = [output_message(self.message_id, self.text, status=self.status)] if self.has_message else []
        self.output = message + [function_call_item(c, i) for c, i in zip(self.calls, self.call_item_ids)]
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
            "text": request.echo.get("text", {"format": {"type": "text"}}),
            "tool_choice": request.echo.get("tool_choice", "auto"),
            "tools": request.echo.get("tools", []),
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

    # The documented sequence of an answer, piece by piece: the message's events (opened by its first
    # text), then each function call's.

    def opening_events(self) -> list[tuple[str, dict[str, Any]]]:
        return [self.event("response.created", response=self.body()), self.event("response.in_progress", response=self.body())]

    def _message_opening(self) -> list[tuple[str, dict[str, Any]]]:
        if self.message_opened:
            return []
        self.message_opened = True
        item = {"id": self.message_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        return [
            self.event("response.output_item.added", output_index=0, item=item),
            self.event("response.content_part.added", item_id=self.message_id, output_index=0, content_index=0,
                       part=output_text_part("")),
        ]  # fmt: skip

    def delta_events(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        opening = self._message_opening()
        self.text += text
        return [*opening, self.event("response.output_text.delta", item_id=self.message_id, output_index=0,
                                     content_index=0, delta=text, logprobs=[])]  # fmt: skip

    def closing_events(self) -> list[tuple[str, dict[str, Any]]]:
        """After `finish`: the text, part and item done, the function calls, then the response's end."""
        events = []
        if self.has_message:
            where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
            events += self._message_opening()
            events += [
                self.event("response.output_text.done", **where, text=self.text, logprobs=[]),
                self.event("response.content_part.done", **where, part=output_text_part(self.text)),
                self.event("response.output_item.done", output_index=0, item=self.output[0]),
            ]
        first = 1 if self.has_message else 0
        for index, (call, item_id) in enumerate(zip(self.calls, self.call_item_ids), start=first):
            item = function_call_item(call, item_id)
            where = {"item_id": item_id, "output_index": index}
            events.append(self.event("response.output_item.added", output_index=index,
                                     item=function_call_item(call, item_id, arguments="", status="in_progress")))  # fmt: skip
            for start in range(0, len(item["arguments"]), wire.ARGUMENT_PIECE):
                piece = item["arguments"][start : start + wire.ARGUMENT_PIECE]
                events.append(self.event("response.function_call_arguments.delta", **where, delta=piece))
            events.append(self.event("response.function_call_arguments.done", **where, name=call.name,
                                     arguments=item["arguments"]))  # fmt: skip
            events.append(self.event("response.output_item.done", output_index=index, item=item))
        final = "response.completed" if self.status == "completed" else "response.incomplete"
        return [*events, self.event(final, response=self.body())]

    def failed_events(self) -> list[tuple[str, dict[str, Any]]]:
        """After `fail`: the error (what OpenAI sends first) and `response.failed`."""
        error = self.error or {}
        return [
            self.event("error", code=error.get("code"), message=error.get("message"), param=None),
            self.event("response.failed", response=self.body()),
        ]
