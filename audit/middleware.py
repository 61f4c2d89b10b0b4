from __future__ import annotations

from auditlog.context import auditlog_value, set_extra_data
from django.contrib.auth import get_user_model
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.utils.functional import SimpleLazyObject

from audit.services import client_ip


def _actor(request):
    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) and user.is_authenticated else None


class AuthenticationMiddleware(DjangoAuthenticationMiddleware):
    """Django's authentication middleware, which also gives django-auditlog its actor (what its own
    AuditlogMiddleware does), as one middleware: each one adds stack frames, and a deeply nested
    JSON body is parsed on that stack (agents/tests/test_schema_safety.py sits near the limit).

    The actor is read when a log entry is written: DRF authenticates tokens in the view, after the
    middleware ran, and then sets the request's user. The address is the one the throttles trust."""

    def process_request(self, request):
        super().process_request(request)
        context = set_extra_data(
            context_data={"actor": SimpleLazyObject(lambda: _actor(request)), "remote_addr": client_ip(request),
                          "remote_port": None}  # fmt: skip
        )
        context.__enter__()
        request._audit_context = context

    def process_response(self, request, response):
        context = getattr(request, "_audit_context", None)
        if context is not None:
            context.__exit__(None, None, None)
            # auditlog leaves its context set: the next code run in this thread (another request, a
            # background job) must not take this request's user for its actor.
            auditlog_value.set({"signal_duid": None})
        return response
