"""The turn path's SQL, written out once per database vendor and run with values the models' own fields
adapt.

Every turn runs these: the ORM builds and compiles each statement anew every time, which cost more CPU
than the database's work (a turn's five planning statements ~1.5 ms, the usage counters' F()
expressions ~1 ms, against ~0.03 ms each run as text; issue 26, bench/RESULTS.md). The text is made
from the models' table and column names with the connection's quoting, values go through
`Field.get_db_prep_save` (JSON, dates, decimals as each backend stores them). Rarer paths (an existing
session's history, stale answers, tool results) stay on the ORM. assistant/tests/runs/test_turn_statements.py
counts what a turn runs; the turn tests check what they store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model

from agents.models import Catalog, Message, UserAgentSession
from assistant.models import TurnEvent

_texts: dict[tuple, str] = {}


def _text(key: tuple, build: Callable[[Callable[[str], str]], str]) -> str:
    """The statement `key` for this connection's vendor, built once with its quoting."""
    full_key = (connection.vendor, *key)
    text = _texts.get(full_key)
    if text is None:
        text = _texts[full_key] = build(connection.ops.quote_name)
    return text


def _table(model: type[Model], quote: Callable[[str], str]) -> str:
    return quote(model._meta.db_table)


def _column(model: type[Model], name: str, quote: Callable[[str], str]) -> str:
    return quote(model._meta.get_field(name).column)


def _value(model: type[Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _insert(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]], returning: Sequence[str] = ()):
    """INSERT of `rows` (values in the order of `names`); the `returning` columns of each row, in order."""
    def build(quote) -> str:
        columns = ", ".join(_column(model, name, quote) for name in names)
        values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(rows))
        text = f"INSERT INTO {_table(model, quote)} ({columns}) VALUES {values}"
        if returning:
            text += " RETURNING " + ", ".join(_column(model, name, quote) for name in returning)
        return text

    sql = _text(("insert", model, tuple(names), len(rows), tuple(returning)), build)
    params = [_value(model, name, value) for row in rows for name, value in zip(names, row)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else None


# --- planning -------------------------------------------------------------------------------------


def user_turn_row(user_id: int) -> tuple[bool, int | None] | None:
    """(is_active, the catalog's version) of the user, whose row is locked for the transaction where
    the database locks rows (PostgreSQL; SQLite's IMMEDIATE transactions exclude each other anyway)."""
    user = get_user_model()

    def build(quote) -> str:
        catalog = f"(SELECT {_column(Catalog, 'version', quote)} FROM {_table(Catalog, quote)} WHERE {quote('id')} = %s)"
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        return (
            f"SELECT {_column(user, 'is_active', quote)}, {catalog} FROM {_table(user, quote)} "
            f"WHERE {quote(user._meta.pk.column)} = %s{lock}"
        )

    with connection.cursor() as cursor:
        cursor.execute(_text(("user_turn_row",), build), [Catalog.ROW, user_id])
        row = cursor.fetchone()
    return (bool(row[0]), row[1]) if row is not None else None


def running_turns(user_id: int, fresh_after: datetime) -> int:
    """The user's sessions with an answer `streaming` and written to since `fresh_after`."""

    def build(quote) -> str:
        message, session = _table(Message, quote), _table(UserAgentSession, quote)
        return (
            f"SELECT COUNT(DISTINCT m.{_column(Message, 'session', quote)}) FROM {message} m "
            f"JOIN {session} s ON s.{quote('id')} = m.{_column(Message, 'session', quote)} "
            f"WHERE s.{_column(UserAgentSession, 'owner', quote)} = %s AND m.{_column(Message, 'status', quote)} = %s "
            f"AND m.{_column(Message, 'updated_at', quote)} >= %s"
        )

    params = [user_id, Message.Status.STREAMING, _value(Message, "updated_at", fresh_after)]
    with connection.cursor() as cursor:
        cursor.execute(_text(("running_turns",), build), params)
        return cursor.fetchone()[0]


def session_turn_row(user_id: int, session_id: int, *, streaming: str, awaiting: str) -> tuple | None:
    """The user's session, locked where the database locks rows, with what a next turn needs of it: (id,
    agent id, title, custom properties, agent version id, its last message's seq, its last event's seq,
    a `streaming` answer's id, an `awaiting` message's id) — each of the last four None when there is none.
    Every next turn reads it: the ORM's query with its four subqueries cost ~2 ms of CPU to build."""
    session, message, event = UserAgentSession, Message, TurnEvent

    def build(quote) -> str:
        of_session = lambda model: f"{_column(model, 'session', quote)} = s.{quote('id')}"  # noqa: E731
        last = lambda model: (  # noqa: E731
            f"(SELECT {_column(model, 'seq', quote)} FROM {_table(model, quote)} WHERE {of_session(model)} "
            f"ORDER BY {_column(model, 'seq', quote)} DESC LIMIT 1)"
        )
        with_status = (
            f"(SELECT {quote('id')} FROM {_table(message, quote)} WHERE {of_session(message)} "
            f"AND {_column(message, 'status', quote)} = %s LIMIT 1)"
        )
        columns = ", ".join(f"s.{_column(session, name, quote)}" for name in
                            ("id", "agent", "title", "custom_properties", "agent_version"))  # fmt: skip
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        return (
            f"SELECT {columns}, {last(message)}, {last(event)}, {with_status}, {with_status} "
            f"FROM {_table(session, quote)} s WHERE s.{quote('id')} = %s AND s.{_column(session, 'owner', quote)} = %s"
            f"{lock}"
        )

    with connection.cursor() as cursor:
        cursor.execute(_text(("session_turn_row",), build), [streaming, awaiting, session_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    properties = session._meta.get_field("custom_properties").from_db_value(row[3], None, connection)
    return (*row[:3], properties, *row[4:])


# In the model's field order, as Model.from_db takes a subset of them.
_HISTORY_FIELDS = tuple(f.attname for f in Message._meta.concrete_fields if f.attname in {"id", "seq", "role", "status", "content"})
_HISTORY_CONTENT = _HISTORY_FIELDS.index("content")


def session_messages(session_id: int) -> list[Message]:
    """The session's messages in order, with what a next turn reads of them (the fields above; the others
    load when read, as the ORM's `only()` makes them). The ORM's query and instances cost ~40 µs a
    message more than this."""

    def build(quote) -> str:
        columns = ", ".join(_column(Message, name, quote) for name in _HISTORY_FIELDS)
        return (
            f"SELECT {columns} FROM {_table(Message, quote)} WHERE {_column(Message, 'session', quote)} = %s "
            f"ORDER BY {_column(Message, 'seq', quote)}"
        )

    with connection.cursor() as cursor:
        cursor.execute(_text(("session_messages",), build), [session_id])
        rows = cursor.fetchall()
    content = Message._meta.get_field("content")
    messages = []
    for row in rows:
        values = list(row)
        values[_HISTORY_CONTENT] = content.from_db_value(values[_HISTORY_CONTENT], None, connection)
        messages.append(Message.from_db(connection.alias, _HISTORY_FIELDS, values))
    return messages


SESSION_FIELDS = ("owner", "agent", "title", "custom_properties", "is_active", "created_at", "updated_at", "agent_version")


def session_insert(*, owner_id: int, agent_id: int, title: str, custom_properties: dict, version_id: int | None,
                   now: datetime) -> int:  # fmt: skip
    rows = _insert(UserAgentSession, SESSION_FIELDS,
                   [(owner_id, agent_id, title, custom_properties, True, now, now, version_id)], returning=("id",))  # fmt: skip
    return rows[0][0]


MESSAGE_FIELDS = ("session", "seq", "role", "content", "status", "model", "stop_reason", "input_tokens",
                  "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "error_code",
                  "error_message", "created_at", "updated_at")  # fmt: skip


def messages_insert(messages: Sequence[Message]) -> None:
    """Insert new Message objects (not saved before), setting their primary keys."""
    rows = [[getattr(m, "session_id" if name == "session" else name) for name in MESSAGE_FIELDS] for m in messages]
    returned = dict((seq, pk) for pk, seq in _insert(Message, MESSAGE_FIELDS, rows, returning=("id", "seq")))
    for message in messages:
        message.pk = returned[message.seq]


def events_insert(events: Iterable[tuple[int, int, str, dict[str, Any]]], now: datetime) -> None:
    """Insert TurnEvents: (session id, seq, type, data)."""
    rows = [(session_id, seq, kind, data, now) for session_id, seq, kind, data in events]
    if rows:
        _insert(TurnEvent, ("session", "seq", "type", "data", "created_at"), rows)


def message_update(message_id: int, fields: dict[str, Any], now: datetime) -> None:
    names = tuple(sorted(fields))

    def build(quote) -> str:
        assignments = ", ".join(f"{_column(Message, name, quote)} = %s" for name in (*names, "updated_at"))
        return f"UPDATE {_table(Message, quote)} SET {assignments} WHERE {quote('id')} = %s"

    params = [_value(Message, name, fields[name]) for name in names]
    params += [_value(Message, "updated_at", now), message_id]
    with connection.cursor() as cursor:
        cursor.execute(_text(("message_update", names), build), params)
