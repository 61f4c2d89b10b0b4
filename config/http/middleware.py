"""Request ids: every request gets one (the caller's `X-Request-ID` if sane), every log line and
error body carries it, and the response echoes it, so a user's report can be found in the logs.
The request's edge: trailing slashes on API paths, NUL characters in the query string. And the
Content-Security-Policy of every page."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse

from config import errors, untrusted
from config.http.request_ids import request_id_for, request_id_var


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


# --- Content-Security-Policy ----------------------------------------------------------------------


class ContentSecurityPolicyMiddleware:
    """Every HTML page carries CONTENT_SECURITY_POLICY: by default scripts, styles, fonts, images and
    connections (websockets included: Chromium counts same-origin ws:/wss: as 'self') from the site
    only, no inline script or style, no plugins, no <base>, forms posting to the site, no framing. So
    a script or an image that got into a page (a model's answer rendered by the chat page) can neither
    run nor carry the page's content elsewhere.

    Ours rather than django-csp: one fixed header needs no nonces, and these few lines add no
    dependency whose settings change between versions (django-csp 4 renamed them all); Django 6.0
    has its own, to move to then. Outermost, so that pages answered by other middleware (the CSRF
    failure page) have it too. In DEBUG, Django's error pages (inline scripts and styles) go without."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._protect(self.get_response(request))

    async def __acall__(self, request):
        return self._protect(await self.get_response(request))

    def _protect(self, response):
        if (
            self.policy
            and response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
            and not (settings.DEBUG and response.status_code >= 400)
        ):
            response["Content-Security-Policy"] = self.policy
        return response
