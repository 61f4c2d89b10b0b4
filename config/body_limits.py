"""How large a request body may be, by path.

The server's edge (config/edge.py) reads the limit of a request's path when its headers are in:
a declared `Content-Length` above it is answered 413 before any byte of the body is read, and a
body sent without a length (chunked) is counted as it arrives and cut at the limit.

Every path has Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` (2.5 MiB by default), the limit Django itself
applies to the bodies it reads. A path that takes larger bodies (an upload) is given its own limit
by the app that owns it, from `AppConfig.ready`, with `allow_larger_bodies`: this module knows no app.
"""

from __future__ import annotations

import re

from django.conf import settings

_larger: list[tuple[re.Pattern[str], int]] = []


def allow_larger_bodies(path_pattern: str, limit: int) -> None:
    """Let requests whose (decoded) path fully matches `path_pattern` carry bodies of up to `limit` bytes."""
    _larger.append((re.compile(path_pattern), limit))


def body_limit(path: str) -> int | None:
    """The largest body, in bytes, a request to `path` may carry (None: no limit)."""
    for pattern, limit in _larger:
        if pattern.fullmatch(path):
            return limit
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
