"""Every HTTP request Django answers: counted and timed (conduit_http_requests_total,
conduit_http_request_duration_seconds) by its URL pattern, a server span when tracing is on, and
`X-Conduit-Overhead-Ms` on the `/v1` and run API answers. Outermost in MIDDLEWARE."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from observability import metrics, tracing
from observability.timing import RequestClock, request_clock_var

UNMATCHED = "unmatched"  # the route label of requests no URL pattern matched (404s)
OVERHEAD_HEADER = "X-Conduit-Overhead-Ms"


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return UNMATCHED
    return "/" + match.route.lstrip("^").rstrip("$")


def _wants_overhead(route: str) -> bool:
    return route.startswith("/v1/") or route.endswith("/run")


def _finish(request, response, started: float, clock: RequestClock, span) -> None:
    elapsed = time.perf_counter() - started
    route = route_of(request)
    status = response.status_code
    if _wants_overhead(route):
        # The time before the response began, less the model's: for a streamed answer that is the
        # server's work before the stream started (the model's time comes later).
        response[OVERHEAD_HEADER] = str(max(0, round((elapsed - clock.model_seconds) * 1000)))
    metrics.http_request_finished(request.method, route, status, elapsed)
    if span is not tracing.NO_SPAN:
        span.set("http.route", route)
        span.set("http.response.status_code", status)
        span.span.update_name(f"{request.method} {route}")
        if status >= 500:
            from opentelemetry.trace import Status, StatusCode

            span.span.set_status(Status(StatusCode.ERROR))


class ObservabilityMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started = time.perf_counter()
        clock = RequestClock()
        request_clock_var.set(clock)  # each request sets its own (a WSGI thread serves one at a time)
        with self._span(request) as span:
            response = self.get_response(request)
            _finish(request, response, started, clock, span)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        clock = RequestClock()
        request_clock_var.set(clock)
        with self._span(request) as span:
            response = await self.get_response(request)
            _finish(request, response, started, clock, span)
        return response

    @staticmethod
    def _span(request):
        if not tracing.ENABLED:
            return tracing.NO_SPAN
        return tracing.span(
            request.method,
            {"http.request.method": request.method, "url.path": request.path, "url.scheme": request.scheme},
            server=True,
            headers=request.headers,
        )
