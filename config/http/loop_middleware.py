"""Django's own middleware, run on the event loop on the ASGI path (the streaming requests: turns).

Django's MiddlewareMixin runs a middleware's `process_request` and `process_response` in a thread
under its ASGI handler, and the handler does the same with `process_view`: with the seven such
middleware of MIDDLEWARE, about a dozen thread hops a request, each a GIL hand-over and a wake-up of
the request's thread (issue 26: a turn's first content waited ~50 ms, a third of it here). Their
hooks do no I/O but in two cases, so here they run on the loop, and those two cases hop as before:
a session to save (SessionMiddleware) and messages to store (MessageMiddleware, in the session).
Under WSGI nothing changes: these are Django's classes with `__acall__` replaced.

This needs CSRF_USE_SESSIONS off (the CSRF token in its cookie, Django's default): with it on, the
CSRF middleware would read the session on the loop.
"""

from __future__ import annotations

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware as DjangoXFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrfViewMiddleware
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware


class OnTheLoop:
    """Mixin for a MiddlewareMixin subclass whose hooks do no I/O, but for the responses named by
    `response_needs_thread`."""

    def __init__(self, get_response) -> None:
        super().__init__(get_response)
        if self.async_mode and hasattr(self, "process_view"):
            # An instance attribute that is a coroutine function: the handler awaits it, no hop.
            process_view = self.process_view

            async def process_view_on_the_loop(request, view, args, kwargs):
                return process_view(request, view, args, kwargs)

            self.process_view = markcoroutinefunction(process_view_on_the_loop)

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request, response) -> bool:
        return False


class SecurityMiddleware(OnTheLoop, DjangoSecurityMiddleware):
    pass


class SessionMiddleware(OnTheLoop, DjangoSessionMiddleware):
    # process_request only makes the (lazy) session object; the response saves it when changed.
    def response_needs_thread(self, request, response) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(OnTheLoop, DjangoCommonMiddleware):
    pass


class CsrfViewMiddleware(OnTheLoop, DjangoCsrfViewMiddleware):
    pass


class MessageMiddleware(OnTheLoop, DjangoMessageMiddleware):
    # Messages used or added are stored in the session, which may have to be read first.
    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnTheLoop, DjangoXFrameOptionsMiddleware):
    pass
