"""Channel-layer group names of a session: its events (clients listen) and its control (runners listen)."""

from __future__ import annotations


def session_group(session_id: int) -> str:
    return f"assistant.session.{session_id}"


def control_group(session_id: int) -> str:
    return f"assistant.control.{session_id}"
