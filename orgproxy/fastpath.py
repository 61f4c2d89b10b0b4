"""The two requests Claire clients make most, `GET /bots` and `POST /session?bot_id=…`, answered
without Django's middleware chain, URL resolver and DRF when they are the plain case; every other
request, and any of these that isn't plain, goes to Django unchanged.

Served, that stack cost more CPU than the work itself (bench/RESULTS.md, issue 18). The plain case:
a provider token verified before (or verifiable now) of an existing, active user; no `Origin`
header (CORS is corsheaders' business); an allowed host; `Accept` absent, `*/*` or JSON; no query
string for `GET /bots`, exactly one well-formed `bot_id` for `POST /session`. What decides the
answer is the views' own code (the services, `orgproxy.api.failure`, the API's exception handler,
DRF's JSON renderer, the views' `Allow`), and the headers are added by the same Django middleware
that adds them on Django's path (orgproxy/tests/test_fastpath.py compares both paths' answers).
Until Claire is called, anything else falls through to Django, which answers it as always; after,
a failure is answered here as the view answers it (the call is not made twice). These two requests
save no audited model, so no audit actor is set (the test checks the models).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable

from django.conf import settings
from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix
from django.utils.cache import patch_vary_headers
from django.utils.log import log_response
from rest_framework.renderers import JSONRenderer

import observability
from accounts.authentication import known_provider_user
from config.errors import api_exception_handler
from config.http.request_ids import request_id_for, request_id_var
from orgproxy import api, selectors, services
from orgproxy.serializers import UUID_PATTERN

logger = logging.getLogger(__name__)

# `bot_id` alone in the query string (any letter case, as the view accepts); anything else: Django.
_SESSION_QUERY = re.compile(rf"bot_id=(bot-{UUID_PATTERN})", re.IGNORECASE)
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})


def _bots(request: WSGIRequest, user) -> Any:
    return selectors.bots_list()


def _session_create(request: WSGIRequest, user) -> Any:
    return services.session_create(user=user, bot_id=request.bot_id)


class _Route:
    def __init__(self, view: type[api._OrgProxyApi], operation: Callable):
        self.operation = operation
        self.failure_messages = view.failure_messages
        self.view = view()  # named in the log of an unexpected error, as the view's handler names it
        self.view.setup(None)  # Django's View.setup() gives a view with get() its head()
        self.allow = ", ".join(self.view.allowed_methods)  # DRF's `Allow` header for the view


_BOTS = _Route(api.BotsApi, _bots)
_SESSION_CREATE = _Route(api.SessionApi, _session_create)
ROUTES = {
    ("GET", "/bots"): _BOTS,
    ("GET", "/api/v1/org/bots"): _BOTS,
    ("POST", "/session"): _SESSION_CREATE,
    ("POST", "/api/v1/org/session"): _SESSION_CREATE,
}


def _unused_get_response(request):
    raise AssertionError("only the middleware's process_response is used here")


class OrgProxyFastPath:
    """WSGI middleware: the plain case of the routes above, else `application` (Django)."""

    def __init__(self, application):
        self.application = application
        # The response side of the middleware that adds headers to these answers (settings.MIDDLEWARE).
        self._security = SecurityMiddleware(_unused_get_response)
        self._frame_options = XFrameOptionsMiddleware(_unused_get_response)
        self._renderer = JSONRenderer()

    def __call__(self, environ, start_response):
        route = ROUTES.get((environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")))
        if route is None:
            return self.application(environ, start_response)
        started = time.perf_counter()
        # One id for the request, whichever path answers it (RequestIdMiddleware keeps a sane one).
        request_id = environ["HTTP_X_REQUEST_ID"] = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        request_id_var.set(request_id)
        # What Django's handler does first (database connections are checked here).
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            request = self._plain_request(route, environ)
        except Exception:  # e.g. the database unreachable: Django meets it again and answers it its way
            logger.debug("Organization server fast path: handing the request to Django", exc_info=True)
            request = None
        if request is None:
            return self.application(environ, start_response)
        response = self._respond(route, request)
        response["X-Request-ID"] = request_id
        # Counted as Django's path counts it (observability.middleware), by the same URL pattern.
        observability.http_request_finished(
            request.method, environ["PATH_INFO"], response.status_code, time.perf_counter() - started
        )
        # As Django's handler: the server's close() of the response closes the request and sends
        # request_finished (database connections are checked again).
        response._handler_class = self.__class__
        response._resource_closers.append(request.close)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return response

    def _plain_request(self, route: _Route, environ) -> WSGIRequest | None:
        """The request if it is the plain case of its route, else None (then Django answers it)."""
        if "HTTP_ORIGIN" in environ or environ.get("HTTP_ACCEPT", "").strip().lower() not in _PLAIN_ACCEPT:
            return None
        if not settings.CLAIRE_API_KEY:
            return None
        request = WSGIRequest(environ)
        try:
            request.get_host()  # ALLOWED_HOSTS
        except DisallowedHost:
            return None
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return None
        query = environ.get("QUERY_STRING", "")
        if route is _SESSION_CREATE:
            bot_query = _SESSION_QUERY.fullmatch(query)
            if bot_query is None:
                return None
            request.bot_id = bot_query[1].lower()
        elif query:  # ignored by the view, but checked by RequestEdgeMiddleware (NUL characters)
            return None
        user = known_provider_user(environ.get("HTTP_AUTHORIZATION", ""))
        if user is None:
            return None
        request.user = user
        return request

    def _respond(self, route: _Route, request: WSGIRequest) -> HttpResponse:
        try:
            response = self._json(route.operation(request, request.user), 200)
        except Exception as exc:
            answer = api.failure(exc, method=request.method, failure_messages=route.failure_messages)
            if answer is None:  # the view's exception handler: logged, and a 500 without the details
                answer = api_exception_handler(exc, {"view": route.view, "request": request})
            response = self._json(answer.data, answer.status_code)
        response["Allow"] = route.allow
        if response.status_code >= 400:  # as Django's handler logs them
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return self._with_middleware_headers(request, response)

    def _json(self, data: Any, status: int) -> HttpResponse:
        return HttpResponse(self._renderer.render(data), content_type="application/json", status=status)

    def _with_middleware_headers(self, request: WSGIRequest, response: HttpResponse) -> HttpResponse:
        if not response.has_header("Content-Length"):  # CommonMiddleware's
            response.headers["Content-Length"] = str(len(response.content))
        response = self._frame_options.process_response(request, response)
        patch_vary_headers(response, ("origin",))  # corsheaders', for a request without Origin
        return self._security.process_response(request, response)
