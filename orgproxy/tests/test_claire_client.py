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


def test_threads_share_the_process_pooled_client(auth_client, claire, settings):
    settings.CLAIRE_BOTS_CACHE_TTL = 0
    clients = []

    def call_twice():
        clients.append(claire_client.http_client())
        claire_client.bots_list()
        claire_client.bots_list()

    workers = [threading.Thread(target=call_twice) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert clients[0] is clients[1]  # one client (and pool) per process, not one per thread
    assert len(claire.calls()) == 4
    assert len({call.client_port for call in claire.calls()}) <= 2  # connections kept and reused


def test_no_proxy_from_the_environment_is_used(claire, settings, monkeypatch):
    settings.CLAIRE_BOTS_CACHE_TTL = 0
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")

    assert [bot["bot_id"] for bot in claire_client.bots_list()] == [bot["bot_id"] for bot in claire.bots]


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
