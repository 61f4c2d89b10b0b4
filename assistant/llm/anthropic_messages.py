"""The adapter for the Anthropic Messages API.

Holds the pooled async clients (one per event loop, API key and base URL: an httpx connection pool
belongs to the loop that opened it), streams one model call as neutral events, and maps every SDK
failure to one of a few error codes a client can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, AsyncIterator

import anthropic
from django.conf import settings

from assistant.llm.answers import (
    READING_ERRORS,
    bounded_name,
    bounded_stop_reason,
    check_event_stream,
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


def content_block_param(block: Any) -> dict[str, Any]:
    """An SDK content block as the plain dict the API takes back in the next request."""
    data = block.model_dump(mode="json", exclude_none=True)
    fields = _BLOCK_FIELDS.get(data.get("type"))
    return {k: v for k, v in data.items() if k in fields} if fields else data


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


async def stream_call(model: ModelSettings, call: ModelCall) -> AsyncIterator[CallEvent]:
    """Stream one Messages API call. The stored block format is this API's own, sent as it is.
    No `temperature`: this API version refuses it (see ModelSettings). Usage: see UsageReported.
    With a response format, the output tool's input arrives as text deltas (see OUTPUT_TOOL)."""
    client = async_client(model)
    params = request_params(model, call)
    structured = call.response_format is not None
    output = output_tool_name(call) if structured else ""
    output_index: int | None = None  # the content block of the output tool's call
    output_json: list[str] = []
    meter = CallMeter(call)
    started = False  # message_start came: the answer is a message
    try:
        async with client.messages.stream(**params) as stream:
            check_event_stream(stream.response)
            yield UsageReported(meter.usage)
            try:
                async for event in stream:
                    kind = event.type
                    if kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            text = delta.text
                            if type(text) is not str:  # a text delta on a block that isn't text
                                raise not_text()
                            meter.received(text)
                            yield TextDelta(text)
                        elif delta.type == "thinking_delta":
                            text = delta.thinking
                            if type(text) is not str:
                                raise not_text()
                            meter.received(text)
                            yield ThinkingDelta(text)
                        elif delta.type == "input_json_delta":
                            meter.received(delta.partial_json)
                            if output_index is not None and event.index == output_index and delta.partial_json:
                                if type(delta.partial_json) is not str:
                                    raise not_text()
                                output_json.append(delta.partial_json)
                                yield TextDelta(delta.partial_json)
                    elif kind == "content_block_start" and structured:
                        block = event.content_block
                        if block.type == "tool_use" and block.name == output:
                            output_index = event.index
                    elif kind == "message_start" or kind == "message_delta":
                        # Input counts come at message_start, the output count at message_delta; the
                        # SDK's snapshot has merged this event's usage the way the API means it.
                        started = started or kind == "message_start"
                        usage = Usage.from_sdk(stream.current_message_snapshot.usage)
                        meter.reported(usage, final=kind == "message_delta")
                        yield UsageReported(meter.usage)
                    elif kind == "content_block_stop" and event.content_block.type == "tool_use":
                        block = event.content_block
                        if structured and block.name == output:
                            continue
                        if not isinstance(block.id, str) or not isinstance(block.name, str):
                            raise malformed("a tool call's id or name is not text")
                        yield ToolUseRequested(ToolCall(block.id, block.name, dict(block.input or {})))
                if not started:
                    raise malformed("it holds no message (no message_start event)")
                final = await stream.get_final_message()
                if final.stop_reason is None:
                    # The SDK accepts a stream that ends without message_delta/message_stop: a cut
                    # connection would pass for a complete answer.
                    raise LLMError("upstream_unavailable", "The model's answer was cut off mid-stream.", retryable=True)
                content = [content_block_param(block) for block in final.content]
                stop_reason = bounded_stop_reason(final.stop_reason)
                if output_index is not None:
                    content = _as_answer(content, output, "".join(output_json))
                    if stop_reason == "tool_use" and not any(b.get("type") == "tool_use" for b in content):
                        stop_reason = "end_turn"
                finished = ModelCallFinished(content, stop_reason, meter.finished(), bounded_name(final.model, model.model))
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
