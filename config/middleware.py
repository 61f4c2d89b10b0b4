"""Request ids: every request gets one (the caller's `X-Request-ID` if sane), every log line and
error body carries it, and the response echoes it, so a user's report can be found in the logs."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    return request_id_var.get()


def _request_id_from(request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    # Both sync and async capable: no thread hop on either of Django's handlers.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request.request_id = _request_id_from(request)
        # Not reset afterwards: Django logs 4xx/5xx after the middleware returns. Each request
        # sets it anew, and under ASGI each request has a context of its own anyway.
        request_id_var.set(request.request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response

    async def __acall__(self, request):
        request.request_id = _request_id_from(request)
        request_id_var.set(request.request_id)
        response = await self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
