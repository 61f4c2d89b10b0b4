"""The organization server's operations: each checks ownership and input before calling Claire,
and records who owns which session."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from accounts.models import User
from orgproxy import claire_client, selectors
from orgproxy.models import ClientSession

logger = logging.getLogger(__name__)


class BotNotFound(Exception):
    pass


class SessionNotFound(Exception):
    pass


def session_create(*, user: User, bot_id: str) -> dict[str, Any]:
    """Create a Claire session for the user with one of the organization's bots and record it."""
    if bot_id not in {bot["bot_id"].lower() for bot in selectors.bots_list()}:
        raise BotNotFound(bot_id)
    user_id = selectors.claire_user_id(user=user)
    try:
        created = claire_client.session_create(
            user_id=user_id, bot_id=bot_id, enabled_device_actions=settings.CLAIRE_ENABLED_DEVICE_ACTION_IDS
        )
    except claire_client.UpstreamStatusError as exc:
        if exc.upstream_status == 404:  # the bot went away since the list was cached
            selectors.bots_forget()
            raise BotNotFound(bot_id) from None
        raise
    session_id = created["session"]["session_id"]
    record = ClientSession(session_id=session_id, user=user, upstream_user_id=user_id, bot_id=bot_id)
    try:
        if connection.in_atomic_block:  # a caller's transaction: a savepoint keeps it usable after a conflict
            with transaction.atomic():
                _insert(record)
        else:
            # One autocommit INSERT, no BEGIN…COMMIT around it: on SQLite an explicit transaction
            # holds the database's one write lock while Python runs between its statements, and
            # concurrent requests then sleep in SQLite's busy handler (bench/RESULTS.md, issue 18).
            _insert(record)
    except IntegrityError:
        # Claire handed out an id we already have: never let it change hands.
        logger.error("Claire returned session id %s, which is already recorded", session_id)
        raise claire_client.UpstreamBadResponse("Claire returned a session id that is already in use.") from None
    return created


_insert_statements: dict[str, tuple[str, list]] = {}


def _insert(record: ClientSession) -> None:
    """`record.save(force_insert=True)`, without what the ORM does besides the INSERT on every call:
    compiling the statement, model signals (ClientSession has no receivers and is not audited:
    orgproxy/tests/test_fastpath.py checks), returning the new primary key (not used): 0.17–0.27 ms
    of CPU in one process against 0.30–0.40 for save() (bench/RESULTS.md, issue 18)."""
    statement = _insert_statements.get(connection.vendor)
    if statement is None:
        fields = [field for field in ClientSession._meta.concrete_fields if not field.primary_key]
        quote = connection.ops.quote_name
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(ClientSession._meta.db_table),
            ", ".join(quote(field.column) for field in fields),
            ", ".join(["%s"] * len(fields)),
        )
        statement = _insert_statements[connection.vendor] = (sql, fields)
    sql, fields = statement
    params = [field.get_db_prep_save(field.pre_save(record, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def session_list(*, user: User, cursor: str | None) -> dict[str, Any]:
    """The user's sessions with the organization's bots, as Claire lists them for the user's id.

    Claire filters by our user id; on top of that, a session recorded here as someone else's is
    never shown, and a listed session not recorded yet (made for this user id before this
    server kept records, e.g. through the reference server) is recorded as the user's, so they
    can renew and delete what they can see."""
    bot_ids = [bot["bot_id"] for bot in selectors.bots_list()]
    if not bot_ids:
        return {"cursor": None, "results": []}
    user_id = selectors.claire_user_id(user=user)
    page = claire_client.sessions_list(user_id=user_id, bot_ids=bot_ids, cursor=cursor)
    if not page["results"]:
        return page
    owners = selectors.session_owners(session_ids=[item["session_id"] for item in page["results"]])
    foreign = {sid for sid, owner in owners.items() if owner != user.pk}
    if foreign:
        logger.warning("Claire listed %d session(s) of other users for one user; not shown", len(foreign))
    unrecorded = [item["session_id"] for item in page["results"] if item["session_id"] not in owners]
    if unrecorded:
        ClientSession.objects.bulk_create(
            [ClientSession(session_id=sid, user=user, upstream_user_id=user_id) for sid in unrecorded],
            ignore_conflicts=True,
        )
    return {**page, "results": [item for item in page["results"] if item["session_id"] not in foreign]}


def session_renew(*, user: User, session_id: str) -> dict[str, Any]:
    record = selectors.client_session_for_user(user=user, session_id=session_id)
    if record is None:
        raise SessionNotFound(session_id)
    try:
        return claire_client.session_renew(session_id=session_id, user_id=selectors.claire_user_id(user=user))
    except claire_client.UpstreamStatusError as exc:
        if exc.upstream_status == 404:  # gone upstream: forget it here too
            record.delete()
            raise SessionNotFound(session_id) from None
        raise


def session_delete(*, user: User, session_id: str) -> None:
    record = selectors.client_session_for_user(user=user, session_id=session_id)
    if record is None:
        raise SessionNotFound(session_id)
    try:
        claire_client.session_delete(session_id=session_id)
    except claire_client.UpstreamStatusError as exc:
        if exc.upstream_status == 404:
            record.delete()
            raise SessionNotFound(session_id) from None
        raise
    record.delete()
