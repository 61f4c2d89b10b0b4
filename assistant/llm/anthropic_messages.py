"""The adapter for the Anthropic Messages API.

Holds the pooled async clients (one per event loop, API key and base URL: an httpx connection pool
belongs to the loop that opened it), streams one model call as neutral events, and maps every SDK
failure to one of a few error codes a client can act on.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, AsyncIterator

import anthropic
from django.conf import settings

from assistant.llm.answers import (
    READING_ERRORS,
    bounded_name,
    bounded_stop_reason,
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
    ToolChoice,
    ToolUseRequested,
    Usage,
    UsageReported,
)
from config.egress import egress_refusal

# Structured output on the Messages API: one tool whose input schema is the requested schema, which
# the model must call; its input, streamed as text, is the answer.
OUTPUT_TOOL = "structured_answer"
_ANY_OBJECT = {"type": "object", "additionalProperties": True}


def async_client(model_settings: ModelSettings) -> anthropic.AsyncAnthropic:
    if not model_settings.api_key:
        raise LLMError(
            "not_configured",
            f"No API key is configured for the model (ANTHROPIC_API_KEY or the LLM config). {NO_KEY_HINT}",
        )
    return _clients.get(model_settings)


def _new_client(model_settings: ModelSettings) -> anthropic.AsyncAnthropic:
    timeout = anthropic.Timeout(settings.ANTHROPIC_READ_TIMEOUT, connect=settings.ANTHROPIC_CONNECT_TIMEOUT)
    guarded = {}
    if model_settings.guard_egress:
        guarded = {"http_client": guarded_sdk_http_client(timeout), "middleware": [_refusals_are_final]}
    return anthropic.AsyncAnthropic(
        api_key=model_settings.api_key,
        base_url=model_settings.base_url or None,
        max_retries=settings.ANTHROPIC_MAX_RETRIES,
        timeout=timeout,
        # The SDK's own OpenTelemetry spans off, and its trace headers: the engine's `chat` span is the model
        # call's (observability/), and its trace context is what the request carries (in extra_headers).
        open_telemetry={"traces": False, "propagation": False},
        **guarded,
    )


_clients = ClientPool(_new_client)


async def _refusals_are_final(request: anthropic.APIRequest, call_next: Callable[..., Awaitable[Any]]) -> Any:
    """The SDK wraps every transport error in APIConnectionError, which it retries with backoff;
    a refusal won't change on retry. An error a middleware raises reaches the caller as it is."""
    try:
        return await call_next(request)
    except anthropic.APIConnectionError as exc:
        refused = egress_refusal(exc)
        if refused is None:
            raise
        raise refused from None


# Error `type`s of the API (HTTP answers and mid-stream `error` events) and what we call them.
_ERROR_TYPES = {
    "authentication_error": ("upstream_auth", "The model provider rejected the API key."),
    "permission_error": ("upstream_auth", "The API key may not use this model."),
    "rate_limit_error": ("rate_limited", "The model provider's rate limit was reached; try again shortly."),
    "overloaded_error": ("overloaded", "The model provider is overloaded; try again shortly."),
    "api_error": ("upstream_error", "The model provider had an internal error."),
    "timeout_error": ("upstream_timeout", "The model provider timed out."),
    "invalid_request_error": ("invalid_request", "The model provider refused the request."),
    "not_found_error": ("invalid_request", "The model or endpoint was not found at the provider."),
    "request_too_large": ("invalid_request", "The request is too large for the model provider."),
}


def _error_type_of(exc: anthropic.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return error.get("type") if isinstance(error, dict) else None


def map_sdk_error(exc: BaseException) -> LLMError:
    """Turn any SDK exception into an LLMError with a stable code."""
    if isinstance(exc, LLMError):
        return exc
    refused = egress_refusal(exc)
    if refused is not None:
        return LLMError("egress_refused", str(refused))
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMError("upstream_timeout", "The model provider did not answer in time.", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMError("upstream_unavailable", "The model provider could not be reached.", retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        error_type = _error_type_of(exc)
        if error_type in _ERROR_TYPES:
            code, message = _ERROR_TYPES[error_type]
        elif exc.status_code == 401:
            code, message = _ERROR_TYPES["authentication_error"]
        elif exc.status_code == 429:
            code, message = _ERROR_TYPES["rate_limit_error"]
        elif exc.status_code == 529:
            code, message = _ERROR_TYPES["overloaded_error"]
        else:
            code, message = "upstream_error", f"The model provider answered with an error (HTTP {exc.status_code})."
        return LLMError(code, message, retryable=code in {"rate_limited", "overloaded", "upstream_error"})
    if isinstance(exc, anthropic.APIError):
        return LLMError("upstream_error", "The model provider's answer could not be read.", retryable=True)
    # A connection cut mid-stream surfaces as the HTTP library's own error.
    if from_http_library(exc):
        if "Timeout" in type(exc).__name__:
            return LLMError("upstream_timeout", "The model provider stopped answering in time.", retryable=True)
        return LLMError("upstream_unavailable", "The connection to the model provider was lost.", retryable=True)
    raise exc


# --- one call ---------------------------------------------------------------------------------

_BLOCK_FIELDS = {
    "text": ("type", "text", "citations"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
    "tool_use": ("type", "id", "name", "input"),
}


def content_block_param(block: dict[str, Any]) -> dict[str, Any]:
    """A content block of an answer as the plain dict the API takes back in the next request: the
    fields the request's block has, none of them null."""
    data = _without_nulls(block)
    fields = _BLOCK_FIELDS.get(data.get("type"))
    return {k: v for k, v in data.items() if k in fields} if fields else data


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    """The Messages API's tool_choice: auto | any (required) | tool (one named) | none."""
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice is not None else "auto"
    if mode == "none":
        return {"type": "none"}
    param: dict[str, Any] = {"type": {"required": "any", "tool": "tool"}.get(mode, "auto")}
    if mode == "tool":
        param["name"] = choice.name
    if parallel is False:
        param["disable_parallel_tool_use"] = True
    return param


def output_tool_name(call: ModelCall) -> str:
    """OUTPUT_TOOL, or a variant of it no other tool of the call has (a client may name one so)."""
    names = {tool.get("name") for tool in call.tools}
    name = OUTPUT_TOOL
    while name in names:
        name += "_"
    return name


def request_params(model: ModelSettings, call: ModelCall) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model.model,
        "max_tokens": model.max_tokens,
        "messages": call.messages,
        **call.extra,
    }
    if call.system:
        params["system"] = call.system
    tools = list(call.tools)
    choice = _tool_choice(call.tool_choice, call.parallel_tool_calls) if tools else None
    wanted = call.response_format
    if wanted is not None:
        schema = wanted.schema if wanted.kind == "json_schema" and wanted.schema else _ANY_OBJECT
        description = wanted.description or "Give your final answer: its input is the answer, as the schema says."
        output = output_tool_name(call)
        tools.append({"name": output, "description": description, "input_schema": schema})
        # The answer must come through the output tool; other tools (the agent's) may be called first.
        choice = {"type": "any"} if len(tools) > 1 else {"type": "tool", "name": output}
        choice["disable_parallel_tool_use"] = True
    if tools:
        params["tools"] = tools
    if choice is not None:
        params["tool_choice"] = choice
    if call.stop_sequences:
        params["stop_sequences"] = list(call.stop_sequences)
    return params


def _as_answer(content: list[dict[str, Any]], output: str, output_json: str) -> list[dict[str, Any]]:
    """The final content with the output tool's call replaced by its input as text (the answer)."""
    out = []
    for block in content:
        if block.get("type") == "tool_use" and block.get("name") == output:
            block = {"type": "text", "text": output_json or "{}"}
        out.append(block)
    return out


_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking"}


class _Answer:
    """A streamed message put together from its events' JSON, as the SDK's snapshot would be: the
    content blocks as they started, their deltas added (text, thinking and its signature, citations, a
    tool call's input JSON), the usage merged (counts at message_start, final ones at message_delta)."""

    def __init__(self) -> None:
        self.started = False  # message_start came: the answer is a message
        self.model: Any = None
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.blocks: list[dict[str, Any]] = []
        self.inputs: dict[int, list[str]] = {}  # a tool call's input JSON, in pieces

    def start(self, message: dict[str, Any]) -> None:
        self.started = True
        self.model = message.get("model")
        self.usage = dict(message.get("usage") or {})

    def delta(self, index: int, delta: dict[str, Any]) -> str | None:
        """Add a content_block_delta; its text if it is some (text, thinking, a tool's input JSON)."""
        block = self.blocks[index]
        kind = delta.get("type")
        if kind in _TEXT_DELTAS:
            field = _TEXT_DELTAS[kind]  # the delta's field and its block's: both named as the block's type
            text = delta.get(field)
            if type(text) is not str or block.get("type") != field:
                raise not_text()
            block[field] = block.get(field, "") + text
            return text
        if kind == "input_json_delta":
            text = delta.get("partial_json")
            if type(text) is not str:
                raise not_text()
            self.inputs.setdefault(index, []).append(text)
            return text
        if kind == "signature_delta" and block.get("type") == "thinking":
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta" and block.get("type") == "text":
            citations = block.get("citations") or []  # appended in place: a long answer's many citations
            citations.append(delta.get("citation"))
            block["citations"] = citations
        return None

    def stop_block(self, index: int) -> dict[str, Any]:
        """The block at content_block_stop, a tool call's input parsed."""
        block = self.blocks[index]
        if index in self.inputs:
            text = "".join(self.inputs.pop(index))
            try:
                block["input"] = json.loads(text) if text else {}
            except ValueError:
                raise malformed("a tool call's input is not JSON") from None
        return block

    def message_delta(self, event: dict[str, Any]) -> None:
        self.stop_reason = (event.get("delta") or {}).get("stop_reason")
        # Counts on a message_delta are totals so far: they replace; one left out keeps its value.
        for name, value in (event.get("usage") or {}).items():
            if value is not None:
                self.usage[name] = value

    def content(self) -> list[dict[str, Any]]:
        return [content_block_param(block) for block in self.blocks]


async def stream_call(model: ModelSettings, call: ModelCall) -> AsyncIterator[CallEvent]:
    """Stream one Messages API call. The stored block format is this API's own, sent as it is.
    No `temperature`: this API version refuses it (see ModelSettings). Usage: see UsageReported.
    With a response format, the output tool's input arrives as text deltas (see OUTPUT_TOOL).

    The SDK sends the request (its retries, timeouts, errors); the events are read as the JSON they are,
    through its raw streaming response, rather than built into its typed models and snapshot: those
    took ~85 % of a call's CPU (67 µs a text delta against 25 for the same answer read so from the
    Chat Completions API; bench/RESULTS.md, session 11)."""
    client = async_client(model)
    params = request_params(model, call)
    structured = call.response_format is not None
    output = output_tool_name(call) if structured else ""
    output_index: int | None = None  # the content block of the output tool's call
    output_json: list[str] = []
    meter = CallMeter(call)
    answer = _Answer()
    try:
        async with client.messages.with_streaming_response.create(**params, stream=True) as response:
            check_event_stream(response.http_response)
            yield UsageReported(meter.usage)
            try:
                async for data in event_data(response):
                    event = json.loads(data)
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        index = event["index"]
                        text = answer.delta(index, event["delta"])
                        if not text:
                            continue
                        meter.received(text)
                        delta_kind = event["delta"]["type"]
                        if delta_kind == "text_delta":
                            yield TextDelta(text)
                        elif delta_kind == "thinking_delta":
                            yield ThinkingDelta(text)
                        elif output_index is not None and index == output_index:
                            output_json.append(text)
                            yield TextDelta(text)
                    elif kind == "content_block_start":
                        if not answer.started:
                            raise malformed("a content block came before its message")
                        block = dict(event["content_block"])
                        if event.get("index") != len(answer.blocks):
                            raise malformed("its content blocks are out of order")
                        answer.blocks.append(block)
                        if structured and block.get("type") == "tool_use" and block.get("name") == output:
                            output_index = event["index"]
                    elif kind == "content_block_stop":
                        block = answer.stop_block(event["index"])
                        if block.get("type") != "tool_use" or (structured and block.get("name") == output):
                            continue
                        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                            raise malformed("a tool call's id or name is not text")
                        if not isinstance(block.get("input", {}), dict):
                            raise malformed("a tool call's input is not an object")
                        yield ToolUseRequested(ToolCall(block["id"], block["name"], dict(block.get("input") or {})))
                    elif kind == "message_start" or kind == "message_delta":
                        if kind == "message_start":
                            answer.start(event["message"])
                        elif not answer.started:
                            raise malformed("its message ended before it started")
                        else:
                            answer.message_delta(event)
                        meter.reported(Usage.from_api(answer.usage), final=kind == "message_delta")
                        yield UsageReported(meter.usage)
                    elif kind == "error":
                        raise stream_error(event.get("error"))
                if not answer.started:
                    raise malformed("it holds no message (no message_start event)")
                if answer.stop_reason is None:
                    # A stream that ends without message_delta/message_stop: a cut connection, which
                    # would otherwise pass for a complete answer.
                    raise LLMError("upstream_unavailable", "The model's answer was cut off mid-stream.", retryable=True)
                content = answer.content()
                stop_reason = bounded_stop_reason(answer.stop_reason)
                if output_index is not None:
                    content = _as_answer(content, output, "".join(output_json))
                    if stop_reason == "tool_use" and not any(b.get("type") == "tool_use" for b in content):
                        stop_reason = "end_turn"
                answered_by = bounded_name(answer.model, model.model)
                finished = ModelCallFinished(content, stop_reason, meter.finished(), answered_by)
            except READING_ERRORS as exc:
                error = reading_error(exc)
                if error is None:
                    raise
                raise error from exc
    except LLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's
        raise map_sdk_error(exc) from exc
    yield finished


def stream_error(error: Any) -> LLMError:
    """An `error` event (the API failing after the stream began), in the codes of map_sdk_error."""
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in _ERROR_TYPES:
        code, message = _ERROR_TYPES[kind]
    else:
        code, message = "upstream_error", "The model provider reported an error mid-stream."
    return LLMError(code, message, retryable=code in {"rate_limited", "overloaded", "upstream_error"})


PROBE_TIMEOUT = 20.0  # seconds: a person waits for the answer


async def probe(model: ModelSettings) -> str:
    """One tiny call (the admin's "Test connection"): the answer's text, or an LLMError."""
    try:
        client = async_client(model).with_options(timeout=PROBE_TIMEOUT, max_retries=0)
        answer = await client.messages.create(
            model=model.model, max_tokens=16, messages=[{"role": "user", "content": "Say OK."}]
        )
    except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's
        raise map_sdk_error(exc) from exc
    return "".join(getattr(block, "text", "") for block in answer.content)
