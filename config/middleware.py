"""Request ids: every request gets one (the caller's `X-Request-ID` if sane), every log line and
error body carries it, and the response echoes it, so a user's report can be found in the logs.
And the request's edge: trailing slashes on API paths, NUL characters in the query string."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import JsonResponse

from config import errors, untrusted
from config.request_ids import request_id_for, request_id_var


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


# --- Paths and query strings ---------------------------------------------------------------------

API_PREFIX = "/api/v1/"
API_PREFIXES = (API_PREFIX, "/v1/")  # ours, and the OpenAI-compatible API's (assistant/surfaces/openai/api.py)


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
        request.path_info = api_path_without_slash(request.path_info)
        problem = untrusted.query_problem(request.GET)
        if problem is None:
            return None
        name, message = problem
        return JsonResponse(errors.error_body("Invalid input.", "invalid", fields={name: [message]}), status=400)
