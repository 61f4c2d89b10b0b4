from __future__ import annotations

from auditlog.middleware import AuditlogMiddleware
from django.utils.functional import SimpleLazyObject

from audit.services import client_ip


class AuditActorMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, for token-authenticated API calls too: the actor is read when a
    log entry is written (DRF authenticates in the view, after middleware ran), and the address is
    the one the throttles trust."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: AuditlogMiddleware._get_actor(request))

    @staticmethod
    def _get_remote_addr(request):
        return client_ip(request)
