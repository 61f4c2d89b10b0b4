"""accounts 0002 carries the blacklist app's records over without their token text, then drops its tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0001_initial")]
AFTER = [("accounts", "0002_refreshtokenrecord")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture(autouse=True)
def _back_to_the_latest_schema():
    # Later tests need every migration: the accounts app's later ones (API keys, legal hold) included.
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_stored_tokens_are_carried_over_as_jti_and_expiry_and_their_tables_dropped(user):
    migrate(BEFORE)
    expires = timezone.now() + timedelta(days=1)
    with connection.cursor() as cursor:
        # The two tables of simplejwt's token_blacklist app, as its migrations left them.
        cursor.execute(
            "CREATE TABLE token_blacklist_outstandingtoken (id integer PRIMARY KEY, jti varchar(255) UNIQUE,"
            " token text, created_at timestamp with time zone NULL, expires_at timestamp with time zone, user_id bigint NULL)"
            if connection.vendor == "postgresql" else
            "CREATE TABLE token_blacklist_outstandingtoken (id integer PRIMARY KEY, jti varchar(255) UNIQUE,"
            " token text, created_at datetime NULL, expires_at datetime, user_id bigint NULL)"
        )  # fmt: skip
        cursor.execute("CREATE TABLE token_blacklist_blacklistedtoken (id integer PRIMARY KEY, blacklisted_at timestamp, token_id integer)")
        insert = "INSERT INTO token_blacklist_outstandingtoken VALUES (%s, %s, %s, %s, %s, %s)"
        cursor.execute(insert, [1, "live-jti", "eyJ.the-live-token.sig", timezone.now(), expires, user.pk])
        cursor.execute(insert, [2, "used-jti", "eyJ.the-used-token.sig", timezone.now(), expires, user.pk])
        cursor.execute("INSERT INTO token_blacklist_blacklistedtoken VALUES (1, %s, 2)", [timezone.now()])

    migrate(AFTER)

    from accounts.models import RefreshTokenRecord

    records = {r.jti: r for r in RefreshTokenRecord.objects.all()}
    assert set(records) == {"live-jti", "used-jti"}
    assert records["live-jti"].revoked_at is None and records["live-jti"].user_id == user.pk
    assert records["used-jti"].revoked_at is not None
    assert abs(records["live-jti"].expires_at - expires) < timedelta(seconds=1)
    tables = set(connection.introspection.table_names())
    assert not {"token_blacklist_outstandingtoken", "token_blacklist_blacklistedtoken"} & tables
