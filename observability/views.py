"""`GET /metrics`: the Prometheus text format, to the holder of METRICS_TOKEN, or (with no token set) to
clients on this machine talking to us directly."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from config import errors


def _loopback_client(request) -> bool:
    # Behind a proxy every client looks local: a forwarded request is not a local one.
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return _loopback_client(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type: every process's series in multiprocess mode, else this one's."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if settings.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


@require_GET
def metrics(request):
    if not settings.METRICS_ENABLED:
        raise Http404
    if not _allowed(request):
        if settings.METRICS_TOKEN:
            response = JsonResponse(
                errors.error_body("A valid metrics token is required.", "not_authenticated"), status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return JsonResponse(
            errors.error_body("Metrics are served to this machine only (set METRICS_TOKEN).", "permission_denied"),
            status=403,
        )
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
