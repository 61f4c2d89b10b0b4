"""Who and what a log line is about: the user and session a piece of work serves, kept in context
variables (an asyncio task or a request's thread has its own) and read by the JSON log formatter."""

from __future__ import annotations

import contextvars

user_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("log_user_id", default=None)
session_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("log_session_id", default=None)


def bind_log_context(*, user_id: int | None = None, session_id: int | None = None) -> None:
    """Name the user and/or session of the work going on in this context (a turn's task, a request)."""
    if user_id is not None:
        user_id_var.set(user_id)
    if session_id is not None:
        session_id_var.set(session_id)
