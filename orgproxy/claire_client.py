"""The one module that talks to the upstream Claire API.

Nothing else builds Claire URLs or headers. The process has one pooled client for Claire
(orgproxy.upstream_http: kept-alive connections shared by the server's threads, a connect and a
read timeout on every call, retries as that module says: `CLAIRE_RETRIES`; a POST or DELETE is
never re-sent once sent), and failures come out as the typed errors below, which the views turn
into 502/504 JSON answers.

The API key is added to each request here and appears nowhere else: not in log lines, not in
error messages (which name the method, path and status only).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

import observability
from orgproxy.upstream_http import KeepAliveClient, TransportError

logger = logging.getLogger(__name__)


class ClaireError(Exception):
    """Base of every failure talking to Claire. `http_status` is what our client gets."""

    code = "upstream_error"
    http_status = 502

    def __init__(self, description: str, *, upstream_status: int | None = None):
        super().__init__(description)
        self.upstream_status = upstream_status


class ClaireNotConfigured(ClaireError):
    code = "not_configured"
    http_status = 503


class UpstreamUnavailable(ClaireError):
    code = "upstream_unavailable"


class UpstreamTimeout(ClaireError):
    code = "upstream_timeout"
    http_status = 504


class UpstreamBadResponse(ClaireError):
    code = "upstream_bad_response"


class UpstreamStatusError(ClaireError):
    """The upstream answered, with a non-2xx status (`upstream_status`)."""

    code = "upstream_error"


# --- the process's pooled HTTP client ---------------------------------------------------------

_clients: dict[tuple[int, int], KeepAliveClient] = {}
_clients_lock = threading.Lock()
_BASE_HEADERS = {"Accept": "application/json", "User-Agent": "conduit-orgproxy"}


def http_client() -> KeepAliveClient:
    """The process's client, made anew only if the retry or pool settings changed."""
    config = (settings.CLAIRE_RETRIES, settings.CLAIRE_POOL_SIZE)
    client = _clients.get(config)
    if client is None:
        with _clients_lock:
            client = _clients.get(config)
            if client is None:
                for old in _clients.values():
                    old.close()
                _clients.clear()
                client = _clients[config] = KeepAliveClient(retries=config[0], max_idle_per_origin=config[1])
    return client


def _request(
    method: str,
    path: str,
    *,
    bearer: str | None = None,
    base_url: str | None = None,
    params: Any = None,
    json_body: Any = None,
    accept_statuses: frozenset[int] = frozenset(),
    route: str | None = None,
) -> tuple[int, Any]:
    """Send one request; answer (status, parsed JSON or None for an empty body).

    2xx and `accept_statuses` come back; anything else raises a ClaireError. `route`: the path's pattern
    (ids as `{name}`), for the metrics; default the path itself."""
    if bearer is None:
        bearer = settings.CLAIRE_API_KEY
        if not bearer:
            raise ClaireNotConfigured("The organization server is not configured: CLAIRE__API_KEY is not set.")
    url = f"{(base_url or settings.CLAIRE_BASE_URL).rstrip('/')}{path}"
    if params:
        url = f"{url}?{urlencode(params)}"
    headers = {**_BASE_HEADERS, "Authorization": f"Bearer {bearer}"}
    body = None
    if json_body is not None:
        body = json.dumps(json_body, allow_nan=False).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        response = http_client().request(
            method,
            url,
            body=body,
            headers=headers,
            connect_timeout=settings.CLAIRE_CONNECT_TIMEOUT,
            read_timeout=settings.CLAIRE_READ_TIMEOUT,
        )
    except (TransportError, ValueError) as exc:  # ValueError: a URL or header value http.client refuses
        elapsed = time.monotonic() - started
        timed_out = isinstance(exc, TransportError) and exc.timed_out
        observability.orgproxy_upstream_answered(route or path, "timeout" if timed_out else "unreachable")
        if timed_out:
            logger.warning("Claire %s %s timed out after %.2fs", method, path, elapsed)
            raise UpstreamTimeout(f"Claire {method} {path} timed out.") from None
        logger.warning("Claire %s %s unreachable: %s", method, path, type(exc).__name__)
        raise UpstreamUnavailable(f"Claire {method} {path} is unreachable.") from None

    upstream_request_id = response.headers.get("X-Request-ID", "-")
    status = response.status
    observability.orgproxy_upstream_answered(route or path, status)
    if not (200 <= status < 300) and status not in accept_statuses:
        logger.warning(
            "Claire %s %s answered %s (upstream request id %s)", method, path, status, upstream_request_id
        )
        raise UpstreamStatusError(f"Claire {method} {path} answered {status}.", upstream_status=status)
    if not response.data.strip():
        return status, None
    try:
        body = json.loads(response.data)
    except ValueError:  # UnicodeDecodeError included
        logger.warning(
            "Claire %s %s answered %s with a body that is not JSON (upstream request id %s)",
            method,
            path,
            status,
            upstream_request_id,
        )
        raise UpstreamBadResponse(f"Claire {method} {path} answered with a body that is not JSON.") from None
    logger.debug("Claire %s %s answered %s (upstream request id %s)", method, path, status, upstream_request_id)
    return status, body


def _bad_shape(method: str, path: str, what: str) -> UpstreamBadResponse:
    logger.warning("Claire %s %s answered an unexpected shape: %s", method, path, what)
    return UpstreamBadResponse(f"Claire {method} {path} answered an unexpected shape: {what}.")


# --- shapes ------------------------------------------------------------------------------------
# The documented fields only, as the reference's response models do: extra upstream fields are
# dropped, missing or mistyped ones make the answer a bad response.


def _bot(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("bot_id"), str) or not isinstance(item.get("name"), str):
        return None
    return {"name": item["name"], "bot_id": item["bot_id"], "meta": item.get("meta")}


def _client_session_response(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get("token"), str):
        return None
    session = body.get("session")
    if not isinstance(session, dict) or not isinstance(session.get("session_id"), str):
        return None
    return {
        "session": {
            "organization_id": session.get("organization_id"),
            "session_id": session["session_id"],
            "editable": session.get("editable"),
            "meta": session.get("meta"),
        },
        "token": body["token"],
    }


def _chat_session(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict) or not isinstance(item.get("session_id"), str):
        return None
    messages = item.get("messages", [])
    if not isinstance(messages, list):
        return None
    return {
        "organization_id": item.get("organization_id"),
        "session_id": item["session_id"],
        "messages": messages,
        "bot_configuration": item.get("bot_configuration"),
        "meta": item.get("meta"),
    }


# --- the calls ---------------------------------------------------------------------------------


def bots_list() -> list[dict[str, Any]]:
    path = "/m2m/organizations/bots"
    _, body = _request("GET", path)
    if not isinstance(body, list):
        raise _bad_shape("GET", path, "not a list")
    bots = [_bot(item) for item in body]
    if any(bot is None for bot in bots):
        raise _bad_shape("GET", path, "a bot without a string name and bot_id")
    return bots  # type: ignore[return-value]


def session_create(*, user_id: str, bot_id: str, enabled_device_actions: list[str]) -> dict[str, Any]:
    path = "/m2m/client_sessions"
    _, body = _request(
        "POST",
        path,
        json_body={
            "user": {"organization_user_id": user_id},
            "bot_id": bot_id,
            "enabled_device_actions": list(enabled_device_actions),
            "editable": "all_messages",
            "meta": {},
        },
    )
    shaped = _client_session_response(body)
    if shaped is None:
        raise _bad_shape("POST", path, "not a client session response")
    return shaped


def sessions_list(*, user_id: str, bot_ids: list[str], cursor: str | None = None) -> dict[str, Any]:
    """The user's sessions with these bots; an upstream 404 means there are none."""
    path = "/m2m/client_sessions/"
    params: list[tuple[str, str]] = [("external_user_id", user_id)]
    params.extend(("bot_ids", bot_id) for bot_id in bot_ids)
    if cursor is not None:
        params.append(("cursor", cursor))
    status, body = _request("GET", path, params=params, accept_statuses=frozenset({404}))
    if status == 404:
        return {"cursor": None, "results": []}
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise _bad_shape("GET", path, "no results list")
    next_cursor = body.get("cursor")
    if next_cursor is not None and not (isinstance(next_cursor, dict) and isinstance(next_cursor.get("cursor_id"), str)):
        raise _bad_shape("GET", path, "a cursor that is neither null nor {cursor_id}")
    results = [_chat_session(item) for item in body["results"]]
    if any(result is None for result in results):
        raise _bad_shape("GET", path, "a session without a string session_id")
    return {
        "cursor": None if next_cursor is None else {"cursor_id": next_cursor["cursor_id"]},
        "results": results,
    }


def session_renew(*, session_id: str, user_id: str) -> dict[str, Any]:
    path = f"/m2m/client_sessions/{session_id}/renew"
    _, body = _request(
        "POST", path, json_body={"external_user_id": user_id}, route="/m2m/client_sessions/{session_id}/renew"
    )
    shaped = _client_session_response(body)
    if shaped is None:
        raise _bad_shape("POST", path, "not a client session response")
    return shaped


def session_delete(*, session_id: str) -> None:
    _request("DELETE", f"/m2m/client_sessions/{session_id}", route="/m2m/client_sessions/{session_id}")


def api_key_create(
    *, base_url: str, org_id: str, token: str, label: str, expires_at: str
) -> dict[str, Any]:
    """Create an organization API key (the user's own bearer token, not the organization key)."""
    path = f"/organizations/{org_id}/api_keys"
    _, body = _request(
        "POST",
        path,
        bearer=token,
        base_url=base_url,
        json_body={"label": label, "scopes": ["session"], "expires_at": expires_at},
        route="/organizations/{org_id}/api_keys",
    )
    if not isinstance(body, dict) or not isinstance(body.get("secret"), str) or not body["secret"]:
        raise _bad_shape("POST", path, "no secret in the answer")
    return body
