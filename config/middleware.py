"""Request ids: every request gets one (the caller's `X-Request-ID` if sane), every log line and
error body carries it, and the response echoes it, so a user's report can be found in the logs.
And the request's edge: trailing slashes on API paths, NUL characters in the query string."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import JsonResponse

from config import untrusted

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    return request_id_var.get()


def request_id_for(given: str) -> str:
    """The id of a request whose `X-Request-ID` header is `given` ("" if none): that if sane, else a new one."""
    return given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex


def _request_id_from(request) -> str:
    return request_id_for(request.headers.get("X-Request-ID", ""))


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


# --- Paths and query strings ---------------------------------------------------------------------

API_PREFIX = "/api/v1/"
API_PREFIXES = (API_PREFIX, "/v1/")  # ours, and the OpenAI-compatible API's (assistant/openai_api.py)


def api_path_without_slash(path: str) -> str:
    """`/api/v1/agents/` → `/api/v1/agents`: API routes have no trailing slash and clients type both.
    Routed, not redirected: a redirected POST loses its body in most clients."""
    for prefix in API_PREFIXES:
        if path.startswith(prefix) and path.endswith("/") and len(path) > len(prefix):
            return path[:-1]
    return path


class RequestEdgeMiddleware:
    """Before URL resolution: `/api/v1/…` paths answer the same with a trailing slash (the OpenAPI
    schema documents the form without), and a NUL character in the query string is a 400 naming
    the parameter, everywhere (PostgreSQL refuses NUL in text: a filter on it would be a 500)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._refusal(request) or await self.get_response(request)

    @staticmethod
    def _refusal(request):
        from config import errors  # config.errors imports this module

        request.path_info = api_path_without_slash(request.path_info)
        problem = untrusted.query_problem(request.GET)
        if problem is None:
            return None
        name, message = problem
        return JsonResponse(errors.error_body("Invalid input.", "invalid", fields={name: [message]}), status=400)
