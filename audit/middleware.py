from __future__ import annotations

from auditlog.context import auditlog_value
from django.contrib.auth import get_user_model
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.utils.functional import SimpleLazyObject

from audit.services import client_ip
from config.http.loop_middleware import OnTheLoop

# Marks the auditlog context this middleware sets (auditlog's own contexts carry ("set_actor", time)).
REQUEST_CONTEXT = "audit.request"


def _actor(request):
    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) and user.is_authenticated else None


class AuthenticationMiddleware(OnTheLoop, DjangoAuthenticationMiddleware):
    """Django's authentication middleware, which also gives django-auditlog its actor (what its own
    AuditlogMiddleware does), as one middleware: each one adds stack frames, and a deeply nested
    JSON body is parsed on that stack (agents/tests/test_schema_safety.py sits near the limit).

    The actor is read when a log entry is written: DRF authenticates tokens in the view, after the
    middleware ran, and then sets the request's user. The address is the one the throttles trust.

    Only the context variable is set per request; the one receiver that copies it onto log entries
    is connected once (`log_entry_from_request`). auditlog's own context manager connects and
    disconnects a receiver on every request, which takes the signal's lock and empties its cache
    for every model's saves, and keys it by `time.time()`, which two threads can share.

    Its hooks run on the event loop on the ASGI path (config/http/loop_middleware.py): the user is lazy."""

    def process_request(self, request):
        super().process_request(request)
        auditlog_value.set(
            {"signal_duid": REQUEST_CONTEXT, "actor": SimpleLazyObject(lambda: _actor(request)),
             "remote_addr": client_ip(request), "remote_port": None}  # fmt: skip
        )

    def process_response(self, request, response):
        # The next code run in this thread (another request, a background job) must not take this
        # request's user for its actor.
        auditlog_value.set({"signal_duid": None})
        return response


def log_entry_from_request(sender, instance, **kwargs) -> None:
    """pre_save of auditlog's LogEntry: the request's actor and address, when a request set them."""
    context = auditlog_value.get(None)
    if not context or context.get("signal_duid") != REQUEST_CONTEXT:
        return
    actor = context["actor"]
    if instance.actor is None and isinstance(actor, get_user_model()):
        instance.actor = actor
        instance.actor_email = getattr(actor, "email", None)
    instance.remote_addr = context["remote_addr"]
