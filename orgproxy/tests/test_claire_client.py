from __future__ import annotations

import threading

import pytest

from orgproxy import claire_client

pytestmark = pytest.mark.django_db


def test_calls_reuse_one_kept_alive_connection(auth_client, claire, settings):
    settings.CLAIRE_BOTS_CACHE_TTL = 0

    for _ in range(3):
        assert auth_client.get("/bots").status_code == 200

    assert len({call.client_port for call in claire.calls()}) == 1


def test_each_thread_has_its_own_pooled_session(claire):
    sessions = []

    def remember():
        sessions.append(claire_client.http_session())
        sessions.append(claire_client.http_session())

    workers = [threading.Thread(target=remember) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sessions[0] is sessions[1] and sessions[2] is sessions[3]
    assert sessions[0] is not sessions[2]


def test_concurrent_calls_from_many_threads_all_succeed(claire, settings):
    settings.CLAIRE_BOTS_CACHE_TTL = 0
    results, errors = [], []

    def call():
        try:
            results.append(claire_client.bots_list())
        except claire_client.ClaireError as exc:
            errors.append(exc)

    workers = [threading.Thread(target=call) for _ in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == [] and len(results) == 16
    assert all(result == results[0] for result in results)
