"""Reading a provider's answer as untrusted input: what both adapters check.

A model endpoint may be a user's own server, a proxy, or a wrong URL. Whatever it answers, the call
ends with an LLMError the surfaces map to a 502 (`upstream_error`), never an exception of ours or of
the SDK (a 500): a JSON object or an HTML page instead of an event stream (the anthropic SDK read an
answer without events as complete and failed an assertion), events that aren't JSON or not of the
protocol's shape, events out of order, a stream without its final event (each adapter checks its
own), and counts or names that don't fit what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from assistant.llm.types import LLMError

logger = logging.getLogger(__name__)

# What reading data that doesn't have the expected shape raises, in the SDKs (the anthropic SDK's
# asserts and event-order checks, JSON and pydantic errors) and in the adapters' own reading of it.
READING_ERRORS = (AssertionError, AttributeError, IndexError, KeyError, TypeError, ValueError, RuntimeError)

MAX_NAME = 255  # a model's name, as Message.model stores it
MAX_STOP_REASON = 64  # Message.stop_reason

# Only these are refused by their type: what no streaming endpoint sends (an API's whole answer or an
# error object; a portal's or a wrong URL's page). Others are read as an event stream, as the SDKs
# do (some compatible servers label theirs text/plain); what isn't one fails when it is read.
_NOT_A_STREAM = ("json", "/html")


def check_event_stream(response: Any) -> None:
    """Raise LLMError (upstream_error) if a streamed call's answer is plainly not an event stream."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.endswith(_NOT_A_STREAM):
        raise malformed(f"it answered with {content_type[:80]} instead of an event stream")


async def event_data(response: Any) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event of a streamed answer (an SDK's raw streaming response; its
    lines joined, as the SSE format says), until the stream ends. Both adapters read their answers so,
    as the JSON they are: the SDKs' typed models of every event cost most of a call's CPU (issue 26;
    bench/RESULTS.md, session 11)."""
    data: list[str] = []
    async for line in response.iter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
    if data:
        yield "\n".join(data)


def malformed(why: str) -> LLMError:
    return LLMError(
        "upstream_error",
        f"The model provider's answer could not be read: {why}. Is the config's base URL an endpoint of its API?",
    )


def not_text() -> LLMError:
    return malformed("a part of it that must be text is not")


def from_http_library(exc: BaseException) -> bool:
    """The HTTP library's own errors (a connection cut mid-stream surfaces as one), whose package is
    an implementation detail of the SDKs: recognised by module rather than imported."""
    return type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}


def reading_error(exc: BaseException) -> LLMError | None:
    """The LLMError for `exc`, raised while reading an answer, if it comes from the answer's data
    (None: let the adapter's SDK error mapping have it). Logged: it may also be a bug of ours."""
    if not isinstance(exc, READING_ERRORS) or from_http_library(exc):
        return None
    logger.warning("A model provider's answer could not be read: %r", exc, exc_info=True)
    return malformed("it is not a valid event stream of the provider's API")


def bounded_name(value: Any, fallback: str) -> str:
    """A model name from the answer, as stored: text, at most MAX_NAME characters."""
    return value[:MAX_NAME] if isinstance(value, str) and value else fallback


def bounded_stop_reason(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value[:MAX_STOP_REASON] if value else value
    raise malformed("its stop reason is not text")
