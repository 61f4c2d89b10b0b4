"""The OpenAI Chat Completions wire format, mapped to and from ours (no database, no transport).

In: a request body → `ChatRequest` (the client's messages as stored messages in the neutral block
format: text / image / tool_use / tool_result; its `system` messages; what the agent answers: the
last user message, or the results of the client's own tools the last answer called; the client's
tools and options, chat_options.py). Out: turn events → `chat.completion` /
`chat.completion.chunk` objects (with `tool_calls` when the model called the client's tools).
Errors (errors.py): `{"error": {"message", "type", "code", "param"}}` with their HTTP status.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from assistant.llm.types import ResponseFormat, ToolCall, ToolChoice
from assistant.surfaces.openai import chat_options
from assistant.surfaces.openai.errors import (  # noqa: F401 - the API's errors, re-exported
    ERROR_STATUSES,
    OpenAIError,
    bad_request,
    edge_error_body,
    method_not_allowed,
    unknown_url,
)
from assistant.surfaces.openai.images import ImageCounter, image_block
from config import untrusted

MAX_MESSAGES = 2_000
MAX_STOP_SEQUENCES = 4  # as OpenAI
ROLES = {"system", "developer", "user", "assistant", "tool"}
INSTRUCTION_ROLES = {"system", "developer"}  # "developer" is the newer name of "system"

# Our stop reasons (the Messages API's, plus the turn's own) → OpenAI's finish_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stopped": "stop",  # the turn was stopped (a stop from another client of the session)
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "max_turns": "length",  # the agent's tool-turn limit ended the answer
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

@dataclass
class ChatRequest:
    model: str
    prompt: str  # the text of the last user message ("" when the client sends its tools' results)
    history: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (role, blocks) before it
    system: str = ""  # the client's system/developer messages, in order
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    user: str = ""
    # What the agent answers, as parsed: the last user message, or the `tool` messages after the
    # answer that called the client's tools.
    prompt_messages: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)  # the client's, as Messages API definitions
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    @property
    def prompt_blocks(self) -> list[dict[str, Any]]:
        """The blocks of the user message the turn stores: the prompt's messages as one."""
        if not self.prompt_messages:
            return [{"type": "text", "text": self.prompt}]
        return [block for _, blocks in self.prompt_messages for block in blocks]

    def conversation(self, answer: str, calls: list[ToolCall] = ()) -> list[tuple[str, list[dict[str, Any]]]]:
        """The conversation as the client has it once it has read `answer` and the client tool
        `calls` (what its next request sends as the earlier messages): the history, the prompt,
        the answer as parsed back from the assistant message the client echoes."""
        prompt = self.prompt_messages or [("user", [{"type": "text", "text": self.prompt}])]
        blocks = [{"type": "text", "text": answer}] if answer else []
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in calls]
        return [*self.history, *prompt, ("assistant", blocks)]


def conversation_digest(model: str, messages: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The digest of a conversation with the agent `model`, as parsed from a client's messages (the
    blocks `parse_chat_request` makes, so that the same messages sent again digest the same)."""
    canonical = json.dumps([model, [[role, blocks] for role, blocks in messages]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_body(raw: bytes) -> Any:
    try:
        return untrusted.parse_json(raw)
    except untrusted.UnsafeInput as unsafe:
        raise bad_request(unsafe.message, _param_of(unsafe.path)) from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The body is not valid JSON.", None) from None


def _param_of(path: tuple[str | int, ...]) -> str | None:
    param = ""
    for part in path:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    return param or None


def _text_of(content: Any, param: str, *, allow_refusal: bool = False) -> str:
    """The text of a message's `content`: a string or a list of text parts (images and audio are refused)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request("`content` must be a string or a list of content parts.", param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif allow_refusal and kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise bad_request(
                f"Content part of type {kind!r} is not supported: only text parts are.", f"{param}[{index}].type"
            )
    return "\n\n".join(texts)


def _user_blocks(content: Any, param: str, images: ImageCounter) -> list[dict[str, Any]]:
    """A user message's `content` as blocks: its text as one text block (as _text_of reads it) or,
    with `image_url` parts, text and image blocks in the parts' order."""
    if not isinstance(content, list) or not any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
        text = _text_of(content, param)
        return [{"type": "text", "text": text}] if text else []
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if isinstance(part, dict) and part.get("type") == "image_url":
            images.add(where)
            blocks.append(image_block(part, where))
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
        else:
            kind = part.get("type") if isinstance(part, dict) else None
            message = f"Content part of type {kind!r} is not supported: only text and image_url parts are."
            raise bad_request(message, f"{where}.type")
    return blocks


def _tool_uses(tool_calls: Any, param: str) -> list[dict[str, Any]]:
    if tool_calls is None:
        return []
    if not isinstance(tool_calls, list):
        raise bad_request("`tool_calls` must be a list.", param)
    blocks = []
    for index, call in enumerate(tool_calls):
        where = f"{param}[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict):
            raise bad_request("A tool call needs an `id` and a `function` with `name` and `arguments`.", where)
        name, arguments = function.get("name"), function.get("arguments", "{}")
        if not isinstance(name, str) or not name:
            raise bad_request("A tool call needs a function `name`.", f"{where}.function.name")
        try:
            tool_input = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
        except (ValueError, RecursionError):
            raise bad_request("`arguments` must be a JSON object.", f"{where}.function.arguments") from None
        if not isinstance(tool_input, dict):
            raise bad_request("`arguments` must be a JSON object.", f"{where}.function.arguments")
        blocks.append({"type": "tool_use", "id": call["id"], "name": name, "input": tool_input})
    return blocks


def _converted_messages(messages: list[Any]) -> tuple[list[tuple[str, list[dict[str, Any]]]], list[str]]:
    """Stored messages (role, blocks) and the system texts, in order."""
    stored: list[tuple[str, list[dict[str, Any]]]] = []
    system: list[str] = []
    images = ImageCounter()
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request("Each message must be an object.", param)
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(f"`role` must be one of {', '.join(sorted(ROLES))}.", f"{param}.role")
        if role in INSTRUCTION_ROLES:
            text = _text_of(message.get("content"), f"{param}.content")
            if text.strip():
                system.append(text)
        elif role == "user":
            stored.append(("user", _user_blocks(message.get("content"), f"{param}.content", images)))
        elif role == "assistant":
            text = _text_of(message.get("content"), f"{param}.content", allow_refusal=True)
            blocks = [{"type": "text", "text": text}] if text else []
            blocks += _tool_uses(message.get("tool_calls"), f"{param}.tool_calls")
            stored.append(("assistant", blocks))
        else:  # tool
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request("A tool message needs its `tool_call_id`.", f"{param}.tool_call_id")
            text = _text_of(message.get("content"), f"{param}.content")
            stored.append(("user", [{"type": "tool_result", "tool_use_id": call_id, "content": text, "is_error": False}]))
    return stored, system


def _drop_unanswered_tool_uses(stored: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """A tool call the client's history never answered can't be sent back to the model (every
    tool_use needs its tool_result in the next message): keep only the answered ones."""
    for index, (role, blocks) in enumerate(stored):
        if role != "assistant" or not any(b["type"] == "tool_use" for b in blocks):
            continue
        answered = set()
        for later_role, later_blocks in stored[index + 1 :]:
            results = [b["tool_use_id"] for b in later_blocks if b["type"] == "tool_result"]
            if later_role != "user" or not results:
                break
            answered.update(results)
        blocks[:] = [b for b in blocks if b["type"] != "tool_use" or b["id"] in answered]


def _positive_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"`{name}` must be a positive integer.", name)
    return value


def parse_chat_request(data: Any) -> ChatRequest:
    """Validate a Chat Completions body. Raises OpenAIError (400 naming the `param`).

    Accepted and ignored: sampling parameters (temperature, top_p, …; the agent's config decides),
    `seed`, `logprobs`, `metadata`."""
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", None)
    model = data.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 255:
        raise bad_request("`model` must be the slug of an agent (see GET /v1/models).", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty list.", "messages")
    if len(messages) > MAX_MESSAGES:
        raise bad_request(f"At most {MAX_MESSAGES} messages.", "messages")
    stored, system = _converted_messages(messages)
    _drop_unanswered_tool_uses(stored)
    results = 0  # trailing `tool` messages: the results of the client's tools, which the agent goes on from
    while results < len(stored) and stored[-1 - results][1][:1] and stored[-1 - results][1][0]["type"] == "tool_result":
        results += 1
    last = stored[-1] if stored else None
    if results:
        prompt_messages = stored[-results:]
        if len(stored) == results or stored[-results - 1][0] != "assistant":
            raise bad_request("`tool` messages must follow the assistant message whose `tool_calls` they answer.", "messages")
        prompt = ""
    else:
        if last is None or last[0] != "user" or any(b["type"] not in ("text", "image") for b in last[1]):
            raise bad_request(
                "The last message (after any system messages) must be a `user` message, or `tool` messages "
                "answering the last assistant message's `tool_calls`: the agent answers it.", "messages",
            )  # fmt: skip
        prompt_messages = [last]
        prompt = "\n\n".join(b["text"] for b in last[1] if b["type"] == "text")
        if not prompt.strip() and not any(b["type"] == "image" for b in last[1]):
            raise bad_request("The last user message is empty.", f"messages[{len(messages) - 1}].content")
    history = stored[: len(stored) - len(prompt_messages)]

    tools = chat_options.parse_tools(data)
    tool_choice = chat_options.parse_tool_choice(data, tools)
    parallel_tool_calls = chat_options.parse_parallel_tool_calls(data)
    response_format = chat_options.parse_response_format(data)

    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("`stream` must be a boolean.", "stream")
    stream_options = data.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise bad_request("`stream_options` must be an object.", "stream_options")
    include_usage = (stream_options or {}).get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request("`include_usage` must be a boolean.", "stream_options.include_usage")

    max_tokens = _positive_int(data, "max_completion_tokens") or _positive_int(data, "max_tokens")
    if data.get("n") not in (None, 1):
        raise bad_request("Only one choice (`n` = 1) is supported.", "n")

    stop = data.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in stop):
        raise bad_request(f"`stop` must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them.", "stop")

    user = data.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 256):
        raise bad_request("`user` must be a string of at most 256 characters.", "user")

    return ChatRequest(
        model=model,
        prompt=prompt,
        history=history,
        system="\n\n".join(system),
        stream=bool(stream),
        include_usage=include_usage,
        max_tokens=max_tokens,
        stop=tuple(stop),
        user=user or "",
        prompt_messages=prompt_messages,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        response_format=response_format,
    )


# --- out ------------------------------------------------------------------------------------------


def finish_reason(stop_reason: str | None, calls: list[ToolCall] | tuple = ()) -> str:
    """`tool_calls` only when the answer hands the client calls of its tools (the server's own calls
    were run, not handed over)."""
    if calls:
        return "tool_calls"
    reason = FINISH_REASONS.get(stop_reason or "", "stop")
    return "stop" if reason == "tool_calls" else reason


def client_calls_of(result: dict[str, Any]) -> list[ToolCall]:
    """The client tool calls a turn's `result` event hands over."""
    return [ToolCall(c["id"], c["name"], c.get("input") or {}) for c in result.get("client_tool_calls") or ()]


def message_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input, ensure_ascii=False)}}
        for c in calls
    ]


ARGUMENT_PIECE = 256  # characters of a call's arguments per streamed delta


def tool_call_deltas(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """The streamed deltas of the calls, as OpenAI sends them: per call (its `index`), one with its id,
    type and name, then its arguments in pieces."""
    deltas = []
    for index, call in enumerate(message_tool_calls(calls)):
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        opening = {"index": index, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
        deltas.append({"tool_calls": [opening]})
        for start in range(0, len(arguments), ARGUMENT_PIECE):
            piece = arguments[start : start + ARGUMENT_PIECE]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def openai_usage(usage: dict[str, int]) -> dict[str, Any]:
    """Our usage (the Messages API's counts) as OpenAI's: cached and cache-writing input tokens are
    prompt tokens too (the Messages API counts them apart from `input_tokens`)."""
    cached = usage.get("cache_read_input_tokens", 0)
    prompt = usage.get("input_tokens", 0) + cached + usage.get("cache_creation_input_tokens", 0)
    completion = usage.get("output_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def completion(
    *, completion_id: str, created: int, model: str, text: str, stop_reason: str | None, usage: dict[str, int],
    calls: list[ToolCall] | tuple = (),
) -> dict[str, Any]:  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = message_tool_calls(calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(stop_reason, calls),
            }
        ],
        "usage": openai_usage(usage),
    }


def chunk(
    *,
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One `chat.completion.chunk`. With `usage` it is the usage chunk (no choices); when the client
    asked for usage, the others carry `"usage": null`, as OpenAI's do."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [] if usage is not None else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None or with_usage_field:
        body["usage"] = usage
    return body
