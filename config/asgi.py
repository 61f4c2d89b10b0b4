"""ASGI entry point, served by daphne (`manage.py run`).

Django's ASGI request path costs several thread hand-offs per request (~4 ms here against
~0.34 ms under WSGI; see PITFALLS "Serving"). So one process serves three ways:
- websockets go to Channels;
- the few streaming HTTP paths (Server-Sent Events, the OpenAI-compatible chat completions) go to
  Django's ASGI handler, which streams an async iterator without a thread per response;
- every other HTTP request goes to Django's WSGI handler in a thread pool (one hop per request).
"""

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup(set_prefix=False)  # before the imports below (as get_asgi_application does)

from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from assistant.routing import websocket_urlpatterns  # noqa: E402
from config.wsgi import application as wsgi_application  # noqa: E402
from config.http.middleware import api_path_without_slash  # noqa: E402
from config.startup import freeze_startup_heap, start_serving_duties  # noqa: E402
from config.threads import async_threads  # noqa: E402
from config.http.wsgi_bridge import BufferedWSGIMiddleware  # noqa: E402
from accounts.websocket import WebsocketAuthMiddleware  # noqa: E402
from config.http.websocket_origin import OriginValidator  # noqa: E402

# Paths that stream, or wait on a provider with the pooled async clients, and so need the ASGI handler
# (also with a trailing slash: see RequestEdgeMiddleware).
STREAMING_HTTP_PATHS = frozenset(
    {"/api/v1/claude-code/code-assistance", "/v1/chat/completions", "/v1/responses", "/v1/embeddings"}
)
# …and those with an id in them: the run API and a session's event stream, its stop and its approvals'
# decisions (which must reach the turn runners of this process's event loop, or start one there:
# assistant/surfaces/run_api).
STREAMING_HTTP_PATTERN = re.compile(
    r"/api/v1/(?:agents/[^/]+/run|sessions/[^/]+/(?:events|stop|approvals/[^/]+))"
)


class LaneASGIHandler(ASGIHandler):
    """Django's ASGI handler, running each request's sync parts (signals, sync middleware and views) on
    one of the process's lanes (config/threads.py) instead of a thread made for the request."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with async_threads().request_context():
            await self.handle(scope, receive, send)


django_asgi_application = LaneASGIHandler()


class HttpRouter:
    def __init__(self, *, wsgi, asgi, streaming_paths, streaming_pattern=None):
        self.wsgi = wsgi
        self.asgi = asgi
        self.streaming_paths = streaming_paths
        self.streaming_pattern = streaming_pattern

    def streams(self, path: str) -> bool:
        path = api_path_without_slash(path)
        return path in self.streaming_paths or bool(self.streaming_pattern and self.streaming_pattern.fullmatch(path))

    async def __call__(self, scope, receive, send):
        app = self.asgi if self.streams(scope["path"]) else self.wsgi
        await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": HttpRouter(
            wsgi=BufferedWSGIMiddleware(wsgi_application, workers=settings.WSGI_THREADS),
            asgi=django_asgi_application,
            streaming_paths=STREAMING_HTTP_PATHS,
            streaming_pattern=STREAMING_HTTP_PATTERN,
        ),
        "websocket": OriginValidator(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

freeze_startup_heap()
start_serving_duties()
