"""What the server's edge (config/http/edge.py) knows of paths, told by the apps that own them (from
`AppConfig.ready`: config knows no app).

- How large a request body may be. The edge reads the limit of a request's path when its headers are
  in: a declared `Content-Length` above it is answered 413 before any byte of the body is read, and a
  body sent without a length (chunked) is counted as it arrives and cut at the limit. Every path has
  Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MiB by default), the limit Django itself applies to the
  bodies it reads; a path that takes larger bodies (an upload) gets its own with `allow_larger_bodies`.
- In which shape the edge's own error answers are written: the API's (config/errors.py) unless the
  path's clients expect another (the OpenAI-compatible API's), set with `answer_errors_as`. Django's
  400/404/500 answers (config/views.py) follow it too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings

from config.errors import error_body

# (HTTP status, message, our error code) -> the JSON body of the answer
ErrorBody = Callable[[int, str, str], dict[str, Any]]

_larger: list[tuple[re.Pattern[str], int]] = []
_error_shapes: list[tuple[re.Pattern[str], ErrorBody]] = []


def allow_larger_bodies(path_pattern: str, limit: int) -> None:
    """Let requests whose (decoded) path fully matches `path_pattern` carry bodies of up to `limit` bytes."""
    _larger.append((re.compile(path_pattern), limit))


def body_limit(path: str) -> int | None:
    """The largest body, in bytes, a request to `path` may carry (None: no limit)."""
    for pattern, limit in _larger:
        if pattern.fullmatch(path):
            return limit
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def answer_errors_as(path_pattern: str, body: ErrorBody) -> None:
    """Write the edge's errors to requests whose path fully matches `path_pattern` with `body`."""
    _error_shapes.append((re.compile(path_pattern), body))


def error_shape_for(path: str | None) -> ErrorBody | None:
    """The error shape set for `path` with `answer_errors_as` (None: the API's own)."""
    for pattern, body in _error_shapes if path is not None else ():
        if pattern.fullmatch(path):
            return body
    return None


def edge_error_body(path: str | None, status: int, message: str, code: str, *, request_id: str) -> dict[str, Any]:
    """The body of an error the edge answers to a request for `path` (None: not known yet)."""
    body = error_shape_for(path)
    return body(status, message, code) if body is not None else error_body(message, code, request_id=request_id)
