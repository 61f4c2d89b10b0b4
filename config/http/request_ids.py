"""The id of the request being served: set by RequestIdMiddleware (and orgproxy's fast path), read
by error bodies and log lines."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    return request_id_var.get()


def request_id_for(given: str) -> str:
    """The id of a request whose `X-Request-ID` header is `given` ("" if none): that if sane, else a new one."""
    return given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
