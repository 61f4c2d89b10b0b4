"""The OpenAI Chat Completions wire format, mapped to and from ours (no database, no transport).

In: a request body → `ChatRequest` (the client's messages as stored messages in the neutral block
format: text / tool_use / tool_result; its `system` messages; the last user message, which the
agent answers). Out: turn events → `chat.completion` / `chat.completion.chunk` objects, and every
error as `{"error": {"message", "type", "code", "param"}}` with its HTTP status.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

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

# Our error codes (turn refusals, LLMError) → (HTTP status, OpenAI error type).
ERROR_STATUSES = {
    "invalid": (400, "invalid_request_error"),
    "not_found": (404, "invalid_request_error"),
    "connection_required": (409, "invalid_request_error"),  # the user must connect an integration first
    "account_inactive": (401, "invalid_request_error"),  # deactivated since the request was authenticated
    "too_many_turns": (429, "rate_limit_error"),
    "turn_in_progress": (429, "rate_limit_error"),
    "approval_pending": (409, "invalid_request_error"),  # a session continued with X-Session-ID waits for a decision
    "rate_limited": (429, "rate_limit_error"),
    "budget_exceeded": (429, "insufficient_quota"),  # the user's or the organization's budget is used up
    "overloaded": (503, "server_error"),
    "upstream_timeout": (504, "server_error"),
    "upstream_unavailable": (502, "server_error"),
    "upstream_error": (502, "server_error"),
    "upstream_auth": (502, "server_error"),
    "invalid_request": (502, "server_error"),  # the provider refused what we sent
    "egress_refused": (502, "server_error"),
    "tool_unavailable": (502, "server_error"),  # an MCP server of the agent could not be started
    "not_configured": (503, "server_error"),
    "agent_unavailable": (503, "server_error"),
    "interrupted": (503, "server_error"),
}


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
        param: str | None = None, headers: dict[str, str] | None = None,
    ):  # fmt: skip
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    @classmethod
    def from_code(cls, code: str, message: str, *, param: str | None = None) -> OpenAIError:
        """Our error code (a turn refusal, a model error) in OpenAI's terms."""
        status, kind = ERROR_STATUSES.get(code, (500, "server_error"))
        if code == "not_found":
            return cls(404, message, code="model_not_found", param="model")
        if code == "budget_exceeded":  # what OpenAI clients know a spent quota by
            return cls(status, message, type=kind, code="insufficient_quota")
        if code == "invalid" and param is None:
            param = "messages"
        return cls(status, message, type=kind, code=code, param=param)


def edge_error_body(status: int, message: str, code: str) -> dict[str, Any]:
    """An error of the server's edge (config/edge.py: a body over the limit, a stalled one, too many
    connections) in OpenAI's shape; a body over the limit has the code this API gives it itself."""
    code = {"too_large": "request_too_large"}.get(code, code)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return OpenAIError(status, message, type=kind, code=code).body()


def unknown_url(method: str, path: str) -> OpenAIError:
    """What OpenAI answers for a path it doesn't serve (`/v1/nope`, or one of its APIs Conduit lacks)."""
    return OpenAIError(404, f"Invalid URL ({method} {path})", code=None)


def method_not_allowed(method: str, path: str, allowed: str) -> OpenAIError:
    """What OpenAI answers for a method a path doesn't take."""
    return OpenAIError(405, f"Invalid method for URL ({method} {path})", code=None, headers={"Allow": allowed})


def bad_request(message: str, param: str | None) -> OpenAIError:
    return OpenAIError(400, message, code="invalid_value" if param else "invalid_request", param=param)


@dataclass
class ChatRequest:
    model: str
    prompt: str  # the last user message: what the agent answers
    history: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (role, blocks) before it
    system: str = ""  # the client's system/developer messages, in order
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    user: str = ""

    def conversation(self, answer: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """The conversation as the client has it once it has read `answer` (what its next request
        sends as the earlier messages): the history, the prompt, the answer's text."""
        return [
            *self.history,
            ("user", [{"type": "text", "text": self.prompt}]),
            ("assistant", [{"type": "text", "text": answer}] if answer else []),
        ]


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
            text = _text_of(message.get("content"), f"{param}.content")
            stored.append(("user", [{"type": "text", "text": text}] if text else []))
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
    the client's `tools`/`tool_choice` (the agent's own tools apply, run by the server),
    `response_format`, `seed`, `logprobs`, `metadata`."""
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
    if not stored or stored[-1][0] != "user" or any(b["type"] != "text" for b in stored[-1][1]):
        raise bad_request("The last message (after any system messages) must be a `user` message: the agent answers it.", "messages")
    prompt = "".join(b["text"] for b in stored[-1][1])
    if not prompt.strip():
        raise bad_request("The last user message is empty.", f"messages[{len(messages) - 1}].content")
    history = stored[:-1]
    _drop_unanswered_tool_uses(history)

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
    )


# --- out ------------------------------------------------------------------------------------------


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


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


def completion(*, completion_id: str, created: int, model: str, text: str, stop_reason: str | None, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(stop_reason),
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
