"""The adapter for OpenAI's Chat Completions API and the servers that speak it (Azure OpenAI, Ollama,
vLLM, LM Studio, OpenRouter, LiteLLM …), through the official `openai` SDK.

Converts the stored block format to Chat Completions messages when it sends them (assistant
`tool_use` blocks → `tool_calls`, `tool_result` blocks → `tool` messages, thinking dropped, the
system prompt → a system message) and the streamed answer back to blocks, so a session's history
replays to either provider. Holds the pooled clients (one per event loop, key, URL and guard) and maps
SDK failures to the same codes as the Anthropic adapter.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import httpx2
import openai
from django.conf import settings

from assistant.llm.answers import (
    READING_ERRORS,
    bounded_name,
    check_event_stream,
    event_data,
    from_http_library,
    malformed,
    not_text,
    reading_error,
)
from assistant.llm.clients import ClientPool, guarded_sdk_http_client
from assistant.llm.estimates import CallMeter
from assistant.llm.types import (
    NO_KEY_HINT,
    CallEvent,
    LLMError,
    ModelCall,
    ModelCallFinished,
    ModelSettings,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolUseRequested,
    Usage,
    UsageReported,
    token_count,
)
from config.egress import egress_refusal

OPENAI_PUBLIC_BASE_URL = "https://api.openai.com/v1"

# Chat Completions finish reasons → ours (the Messages API's stop reasons).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# The SDK reads these from the process environment when it isn't given them; an explicit Omit keeps
# the organization's OPENAI_ORG_ID / OPENAI_PROJECT_ID (if the host has them) from going to any
# endpoint, a user's above all. Conduit's own settings are the only configuration.
_NO_AMBIENT_HEADERS = {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}

def async_client(model_settings: ModelSettings) -> openai.AsyncOpenAI:
    if not model_settings.api_key:
        raise LLMError(
            "not_configured",
            "No API key is configured for the model (OPENAI_API_KEY or the LLM config; an endpoint "
            f"without keys takes any placeholder). {NO_KEY_HINT}",
        )
    return _clients.get(model_settings)


def _new_client(model_settings: ModelSettings) -> openai.AsyncOpenAI:
    timeout = httpx2.Timeout(settings.OPENAI_READ_TIMEOUT, connect=settings.OPENAI_CONNECT_TIMEOUT)
    # On the guarded transport a refusal is not an httpx error, so the SDK neither wraps nor retries
    # it: it reaches us as it is.
    guarded = {"http_client": guarded_sdk_http_client(timeout)} if model_settings.guard_egress else {}
    return openai.AsyncOpenAI(
        api_key=model_settings.api_key,
        # Never None: the SDK would read OPENAI_BASE_URL from the environment itself.
        base_url=model_settings.base_url or OPENAI_PUBLIC_BASE_URL,
        organization=None,
        max_retries=settings.OPENAI_MAX_RETRIES,
        timeout=timeout,
        default_headers=_NO_AMBIENT_HEADERS,
        **guarded,
    )


_clients = ClientPool(_new_client)


def uses_max_completion_tokens(base_url: str | None) -> bool:
    """OpenAI's own API wants `max_completion_tokens` (its reasoning models refuse `max_tokens`);
    compatible servers (Ollama, vLLM, LM Studio, LiteLLM …) widely know only `max_tokens`."""
    host = urlsplit(base_url or OPENAI_PUBLIC_BASE_URL).hostname or ""
    return host == "api.openai.com"


# --- stored blocks → Chat Completions messages ---------------------------------------------------


def _text_of(content: Any) -> str:
    """A block's or message's content as plain text (strings, or lists of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "".join(part.get("text", "") for part in parts)
    return ""


def chat_messages(messages: list[dict[str, Any]], system: str = "") -> list[dict[str, Any]]:
    """The stored conversation as Chat Completions messages. Thinking blocks are Anthropic's (signed
    for it alone) and are left out; a user message's tool results become `tool` messages, which must
    directly follow the assistant message that asked for them, so they come before its text."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if message.get("role") == "assistant":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            if not text and not calls:
                continue
            assistant: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                assistant["tool_calls"] = calls
            out.append(assistant)
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                result = _text_of(block.get("content"))
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id", ""),
                        "content": f"Error: {result}" if block.get("is_error") else result,
                    }
                )
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        if any(b.get("type") == "image" for b in blocks):
            shown = [b for b in blocks if b.get("type") in ("text", "image") and (b.get("text") or b.get("source"))]
            parts = [_content_part(b) for b in shown]
            out.append({"role": "user", "content": parts})
        elif text:
            out.append({"role": "user", "content": text})
    return _without_unanswered_calls(out)


def _content_part(block: dict[str, Any]) -> dict[str, Any]:
    """A text or image block as a Chat Completions content part (an image: its URL, or a data: URL)."""
    if block.get("type") == "text":
        return {"type": "text", "text": block.get("text", "")}
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _without_unanswered_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions refuses an assistant's tool call that no `tool` message right after answers."""
    kept: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.get("tool_calls"):
            answered = set()
            for following in messages[index + 1 :]:
                if following["role"] != "tool":
                    break
                answered.add(following["tool_call_id"])
            calls = [c for c in message["tool_calls"] if c["id"] in answered]
            message = {k: v for k, v in message.items() if k != "tool_calls"}
            if calls:
                message["tool_calls"] = calls
            elif not message.get("content"):
                continue
        kept.append(message)
    return kept


def chat_tools(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages API tool definitions → Chat Completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": d["name"],
                "description": d.get("description", ""),
                "parameters": d.get("input_schema") or {"type": "object", "properties": {}},
            },
        }
        for d in definitions
    ]


# --- one call ------------------------------------------------------------------------------------

# What the Messages API accepts as a tool_use id: a call id from a compatible server that isn't one
# is replaced, so the history still replays to Anthropic.
_TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class _ToolCallParts:
    """A tool call assembled from its streamed pieces: the id and name on the first, arguments after."""

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def call(self) -> ToolCall:
        raw = "".join(self.arguments).strip()
        try:
            arguments = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            # The model read the tool's schema and wrote broken JSON (or JSON nested too deep to
            # read): the tool will refuse the input and the model reads why, rather than the whole
            # turn failing.
            arguments = {"_unparsed_arguments": raw}
        if not isinstance(arguments, dict):
            arguments = {"_arguments": arguments}
        call_id = self.id if _TOOL_ID_RE.match(self.id) else f"call_{uuid.uuid4().hex[:24]}"
        return ToolCall(call_id, self.name, arguments)


def _usage_of(usage: Any) -> Usage:
    """Chat Completions usage (the chunk's JSON object, or the SDK's model of it) in our terms: cached
    prompt tokens counted apart, as Anthropic does."""
    if not isinstance(usage, dict):
        usage = usage.model_dump() if hasattr(usage, "model_dump") else {}
    details = usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens", 0)) if isinstance(details, dict) else 0
    prompt = token_count(usage.get("prompt_tokens", 0))
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=token_count(usage.get("completion_tokens", 0)),
        cache_read_input_tokens=min(cached, prompt),
    )


def request_params(model: ModelSettings, call: ModelCall) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model.model,
        "messages": chat_messages(call.messages, call.system),
        "stream": True,
        "stream_options": {"include_usage": True},
        **call.extra,
    }
    limit = "max_completion_tokens" if uses_max_completion_tokens(model.base_url) else "max_tokens"
    params[limit] = model.max_tokens
    if model.temperature is not None and model.temperature != 1.0:
        params["temperature"] = model.temperature
    if call.tools:
        params["tools"] = chat_tools(call.tools)
        choice = call.tool_choice
        if choice is not None:
            params["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}} if choice.mode == "tool" else choice.mode
            )
        if call.parallel_tool_calls is not None:
            params["parallel_tool_calls"] = call.parallel_tool_calls
    wanted = call.response_format
    if wanted is not None:
        if wanted.kind == "json_schema":
            spec: dict[str, Any] = {"name": wanted.name, "schema": wanted.schema or {}}
            if wanted.description:
                spec["description"] = wanted.description
            if wanted.strict is not None:
                spec["strict"] = wanted.strict
            params["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            params["response_format"] = {"type": "json_object"}
    if call.stop_sequences:
        params["stop"] = list(call.stop_sequences)
    return params


# Arguments of the SDK's create() that aren't the request's body.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "timeout"})


def _sent_as_is(params: dict[str, Any]) -> dict[str, Any]:
    """create()'s arguments for `params`, the body given as `extra_body`, which the SDK sends as it is.
    Given as arguments, the SDK walks the whole body against its typed parameters first: ~0.6 ms of the
    event loop's CPU for one message and a few tools, 6.5 ms with 10 exchanges of history, 24 ms with
    40 (bench/RESULTS.md, session 11); `params` is the API's JSON already (request_params)."""
    body = {name: value for name, value in params.items() if name not in _SDK_OPTIONS}
    options = {name: value for name, value in params.items() if name in _SDK_OPTIONS}
    return {"model": body["model"], "messages": [], "stream": True, "extra_body": body, **options}


async def stream_call(model: ModelSettings, call: ModelCall) -> AsyncIterator[CallEvent]:
    """Stream one Chat Completions call. Usage: see UsageReported (estimated until the last chunk).

    The SDK sends the request (its retries, timeouts, errors); the answer's chunks are read as the JSON
    they are, through its documented raw streaming response, rather than built into its typed models:
    that took a third of a call's CPU (~0.8 of 2.5 ms here, issue 26)."""
    client = async_client(model)
    params = request_params(model, call)
    meter = CallMeter(call)
    text: list[str] = []
    tools: dict[int, _ToolCallParts] = {}
    finish_reason: str | None = None
    answered_by = model.model
    recognised = False  # a chunk with choices or usage came: the answer is Chat Completions'
    try:
        async with client.chat.completions.with_streaming_response.create(**_sent_as_is(params)) as response:
            check_event_stream(response.http_response)
            yield UsageReported(meter.usage)
            try:
                done = False
                async for data in event_data(response):
                    # Past [DONE], read on to the end, ignored: a kept-alive HTTP/1.1 connection is
                    # reused only once its answer was read whole (else each call opened a new one).
                    done = done or data.startswith("[DONE]")
                    if done:
                        continue
                    chunk = json.loads(data)
                    if chunk.get("error"):  # what OpenAI sends when it fails after the stream began
                        raise stream_error(chunk["error"])
                    answered_by = chunk.get("model") or answered_by
                    if chunk.get("usage") is not None:
                        recognised = True
                        meter.reported(_usage_of(chunk["usage"]), final=True)
                        yield UsageReported(meter.usage)
                    for choice in (chunk.get("choices") or ())[:1]:  # we ask for one choice (n=1)
                        recognised = True
                        delta = choice.get("delta") or {}
                        reasoning = delta.get("reasoning_content")
                        if isinstance(reasoning, str) and reasoning:
                            # vLLM, DeepSeek and others stream reasoning apart; shown, not stored (no
                            # provider could check it when it is sent back).
                            meter.received(reasoning)
                            yield ThinkingDelta(reasoning)
                        words = delta.get("content")
                        if words:
                            if type(words) is not str:
                                raise not_text()
                            meter.received(words)
                            text.append(words)
                            yield TextDelta(words)
                        for piece in delta.get("tool_calls") or ():
                            index = piece.get("index") if type(piece.get("index")) is int else 0
                            parts = tools.setdefault(index, _ToolCallParts())
                            parts.id = parts.id or (piece.get("id") or "")
                            function = piece.get("function")
                            if function is not None:
                                name, arguments = function.get("name") or "", function.get("arguments") or ""
                                if type(name) is not str or type(arguments) is not str or type(parts.id) is not str:
                                    raise not_text()
                                meter.received(name)
                                meter.received(arguments)
                                parts.name = parts.name or name
                                parts.arguments.append(arguments)
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
                if finish_reason is None:
                    if not recognised:
                        raise malformed("it holds no Chat Completions chunk")
                    # A stream closed without a finish reason was cut (the SDK takes any end as the end).
                    raise LLMError("upstream_unavailable", "The model's answer was cut off mid-stream.", retryable=True)
                content: list[dict[str, Any]] = [{"type": "text", "text": "".join(text)}] if text else []
                calls = [tools[index].call() for index in sorted(tools)]
            except READING_ERRORS as exc:
                error = reading_error(exc)
                if error is None:
                    raise
                raise error from exc
    except LLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's
        raise map_sdk_error(exc) from exc

    for tool_call in calls:
        yield ToolUseRequested(tool_call)
        content.append({"type": "tool_use", "id": tool_call.id, "name": tool_call.name, "input": tool_call.input})
    stop_reason = STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    if tools and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some compatible servers end a tool call with "stop"
    yield ModelCallFinished(content, stop_reason, meter.finished(), bounded_name(answered_by, model.model))


PROBE_TIMEOUT = 20.0  # seconds: a person waits for the answer


async def probe(model: ModelSettings) -> str:
    """One tiny call (the admin's "Test connection"): the answer's text, or an LLMError."""
    client = async_client(model).with_options(timeout=PROBE_TIMEOUT, max_retries=0)
    limit = "max_completion_tokens" if uses_max_completion_tokens(model.base_url) else "max_tokens"
    try:
        answer = await client.chat.completions.create(
            model=model.model, messages=[{"role": "user", "content": "Say OK."}], **{limit: 16}
        )
    except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's
        raise map_sdk_error(exc) from exc
    return (answer.choices[0].message.content or "") if answer.choices else ""


# --- errors --------------------------------------------------------------------------------------

_BY_STATUS = {
    400: ("invalid_request", "The model provider refused the request."),
    401: ("upstream_auth", "The model provider rejected the API key."),
    403: ("upstream_auth", "The API key may not use this model."),
    404: ("invalid_request", "The model or endpoint was not found at the provider."),
    408: ("upstream_timeout", "The model provider timed out."),
    413: ("invalid_request", "The request is too large for the model provider."),
    422: ("invalid_request", "The model provider refused the request."),
    429: ("rate_limited", "The model provider's rate limit was reached; try again shortly."),
    500: ("upstream_error", "The model provider had an internal error."),
    502: ("upstream_error", "The model provider had an internal error."),
    503: ("overloaded", "The model provider is overloaded; try again shortly."),
    504: ("upstream_timeout", "The model provider timed out."),
    529: ("overloaded", "The model provider is overloaded; try again shortly."),
}

# Error `type`s / `code`s in bodies (and mid-stream `error` chunks, which carry no status).
_BY_TYPE = {
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "requests": 429,
    "tokens": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 529,
    "service_unavailable": 503,
    "timeout": 408,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "model_not_found": 404,
}

_RETRYABLE = {"rate_limited", "overloaded", "upstream_error", "upstream_timeout"}


def stream_error(error: Any) -> LLMError:
    """The error object OpenAI sends in place of a chunk when it fails after the stream began, in
    our codes (as map_sdk_error maps the SDK's APIError for it)."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    kind, code, message = error.get("type"), error.get("code"), error.get("message")
    if code == "insufficient_quota":
        return LLMError("rate_limited", "The API key's quota at the model provider is used up.")
    status = _BY_TYPE.get(code if isinstance(code, str) else "") or _BY_TYPE.get(kind if isinstance(kind, str) else "")
    if status in _BY_STATUS:
        code, message = _BY_STATUS[status]
    else:
        code = "upstream_error"
        text = message if isinstance(message, str) and message else "An error occurred during streaming"
        message = f"The model provider reported an error mid-stream: {text}"[:300]
    return LLMError(code, message, retryable=code in _RETRYABLE)


def map_sdk_error(exc: BaseException) -> LLMError:
    """Turn any openai SDK exception into an LLMError with the codes the Anthropic adapter uses."""
    if isinstance(exc, LLMError):
        return exc
    refused = egress_refusal(exc)
    if refused is not None:
        return LLMError("egress_refused", str(refused))
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("upstream_timeout", "The model provider did not answer in time.", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("upstream_unavailable", "The model provider could not be reached.", retryable=True)
    if isinstance(exc, openai.APIError):
        if getattr(exc, "code", None) == "insufficient_quota":
            return LLMError("rate_limited", "The API key's quota at the model provider is used up.")
        status = getattr(exc, "status_code", None)
        if status not in _BY_STATUS:
            status = _BY_TYPE.get(exc.code or "") or _BY_TYPE.get(exc.type or "") or status
        if status in _BY_STATUS:
            code, message = _BY_STATUS[status]
        elif isinstance(exc, openai.APIStatusError):
            code, message = "upstream_error", f"The model provider answered with an error (HTTP {exc.status_code})."
        else:  # an error chunk mid-stream, of a kind we don't know
            code, message = "upstream_error", f"The model provider reported an error mid-stream: {exc.message}"[:300]
        return LLMError(code, message, retryable=code in _RETRYABLE)
    if isinstance(exc, openai.OpenAIError):
        return LLMError("upstream_error", "The model provider's answer could not be read.", retryable=True)
    # A connection cut mid-stream may surface as the HTTP library's own error.
    if from_http_library(exc):
        if "Timeout" in type(exc).__name__:
            return LLMError("upstream_timeout", "The model provider stopped answering in time.", retryable=True)
        return LLMError("upstream_unavailable", "The connection to the model provider was lost.", retryable=True)
    raise exc
