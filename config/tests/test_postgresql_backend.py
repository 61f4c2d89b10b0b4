"""config.postgresql: the per-request health check of a kept connection, answered by its socket when
the socket shows nothing wrong, and by Django's `SELECT 1` otherwise (a dropped connection is replaced).
Only PostgreSQL has this backend; on SQLite these tests are not defined (nothing reported as skipped)."""

from __future__ import annotations

import time

import pytest
from django.db import connection, connections

if connection.vendor == "postgresql":
    pytestmark = pytest.mark.django_db

    @pytest.fixture
    def kept():
        """A second connection to the test database, as a server thread keeps one between requests;
        `kept.full_checks` counts Django's `SELECT 1` checks."""
        wrapper = connections.create_connection("default")
        wrapper.ensure_connection()
        wrapper.full_checks = 0
        original = wrapper.is_usable

        def counting_is_usable():
            wrapper.full_checks += 1
            return original()

        wrapper.is_usable = counting_is_usable
        yield wrapper
        wrapper.close()

    def next_request(wrapper) -> None:
        """What Django does at a request's start (close_old_connections), then the first query's check."""
        wrapper.health_check_done = False
        wrapper.close_if_health_check_failed()

    def test_a_healthy_idle_connection_is_checked_without_a_round_trip(kept):
        for _ in range(3):
            next_request(kept)

        assert kept.full_checks == 0
        assert kept.connection is not None and kept.health_check_done
        with kept.cursor() as cursor:
            cursor.execute("SELECT 2")
            assert cursor.fetchone() == (2,)

    def test_a_connection_the_server_dropped_is_noticed_and_replaced(kept):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [kept.connection.info.backend_pid])
            assert cursor.fetchone() == (True,)
        time.sleep(0.2)  # the server's goodbye reaches the kept connection's socket

        next_request(kept)

        assert kept.full_checks == 1  # the socket had something to say: Django's check ran, and failed
        assert kept.connection is None  # closed, so the request's first query opens a new one
        with kept.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)

    def test_a_connection_inside_a_transaction_gets_the_full_check(kept):
        kept.set_autocommit(False)
        with kept.cursor() as cursor:
            cursor.execute("SELECT 1")  # a transaction is open now

        next_request(kept)

        assert kept.full_checks == 1 and kept.connection is not None
        kept.rollback()
        kept.set_autocommit(True)
