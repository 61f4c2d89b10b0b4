"""The server time a request spends outside model calls (`X-Conduit-Overhead-Ms`): the middleware starts a
clock per request and model calls add their time to it. The clock is a mutable object in a context
variable, so a turn's task, which copies the request's context when it starts, adds to the same clock."""

from __future__ import annotations

import contextvars


class RequestClock:
    __slots__ = ("model_seconds",)

    def __init__(self) -> None:
        self.model_seconds = 0.0


request_clock_var: contextvars.ContextVar[RequestClock | None] = contextvars.ContextVar("request_clock", default=None)


def model_time_add(seconds: float) -> None:
    """Count `seconds` of a model call against the request being served (if any)."""
    clock = request_clock_var.get()
    if clock is not None:
        clock.model_seconds += seconds
