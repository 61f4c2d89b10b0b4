"""Benchmark: where a request's CPU goes, measured inside one process with no server around it.

Starts the fake Claire API (own process) and a fresh SQLite database, then, in this process, calls
Django's WSGI application directly (`config.wsgi.application`, no sockets on our side) and the
pieces a request is made of, timing CPU per call (`time.process_time`, best of several rounds):

- whole requests: `GET /health`, `GET /bots`, `GET /session`, and the same through the ASGI
  application (`config.asgi.application`: the HTTP router and the WSGI bridge's thread hand-off);
- pieces: the JWT check (`perform_authentication`), the Claire call through our client
  (`claire_client.sessions_list`), the same call with bare `requests` and bare `urllib3`, the
  ownership query, the user query;
- `GET /session` from 1, 2, 4 and 16 threads at once: CPU per request as threads contend for the GIL.

    .venv/bin/python bench/breakdown.py [--rounds 5] [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.orgproxy import API_KEY, BOT, EMAIL  # noqa: E402


def best_cpu_ms(call, *, rounds: int, calls: int) -> float:
    for _ in range(min(200, calls)):
        call()
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            call()
        best = min(best, (time.process_time() - started) / calls * 1000)
    return best


def threaded_cpu_ms(call, *, threads: int, calls: int) -> tuple[float, float]:
    """(CPU ms per call, calls/s) with `threads` threads calling at once."""
    per_thread = max(1, calls // threads)

    def work():
        for _ in range(per_thread):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    total = per_thread * threads
    return (time.process_time() - cpu) / total * 1000, total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    common.print_machine()

    with common.workdir() as tmp, common.fake("claire") as claire:
        env = common.base_env(tmp, CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY)
        common.prepare_database(env)
        user_id = common.create_user(env, EMAIL)
        upstream = {"Authorization": f"Bearer {API_KEY}"}
        upstream_user = f"conduit|{user_id}"
        for _ in range(3):
            common.http_json("POST", f"{claire}/m2m/client_sessions",
                             {"bot_id": BOT, "user": {"organization_user_id": upstream_user}}, headers=upstream)  # fmt: skip
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        os.chdir(common.ROOT)
        rows = measure(claire, upstream, upstream_user, user_id, args)
    print(common.table(["what", "CPU ms per call", "notes"], rows))


def measure(claire: str, upstream: dict, upstream_user: str, user_id: int, args) -> list[list]:
    import django
    import requests
    import urllib3

    django.setup()
    from django.db import connection

    from accounts.models import User
    from accounts.services import token_pair_issue
    from config.asgi import application as asgi_application
    from config.wsgi import application as wsgi_application
    from orgproxy import claire_client, selectors, services
    from orgproxy.serializers import SessionListInputSerializer

    user = User.objects.get(pk=user_id)
    token = token_pair_issue(user=user)["access_token"]
    bearer = f"Bearer {token}"

    def wsgi_get(path: str):
        def call():
            environ = {
                "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": bearer,
                "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            }  # fmt: skip
            status = []
            b"".join(wsgi_application(environ, lambda s, h, e=None: status.append(s)))
            assert status[0].startswith("200"), status
        return call

    loop = asyncio.new_event_loop()

    def asgi_get(path: str):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"authorization", bearer.encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip

        async def one():
            sent = []

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                sent.append(message)

            await asgi_application(dict(scope), receive, send)
            assert sent[0]["status"] == 200, sent

        return lambda: loop.run_until_complete(one())

    bot_ids = [bot["bot_id"] for bot in selectors.bots_list()]
    page = claire_client.sessions_list(user_id=upstream_user, bot_ids=bot_ids)
    session_ids = [item["session_id"] for item in page["results"]]
    list_url = f"{claire}/m2m/client_sessions/"
    list_params = [("external_user_id", upstream_user), *(("bot_ids", b) for b in bot_ids)]
    bare_requests = requests.Session()
    bare_requests.trust_env = False
    bare_urllib3 = urllib3.PoolManager()
    query = "&".join(f"{k}={v}" for k, v in list_params).replace("|", "%7C")

    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from orgproxy.api import SessionApi

    def authenticate():
        request = Request(APIRequestFactory().get("/session", HTTP_AUTHORIZATION=bearer),
                          authenticators=SessionApi().get_authenticators())  # fmt: skip
        assert request.user.pk == user_id

    def cpu(call):
        return best_cpu_ms(call, rounds=args.rounds, calls=args.calls)

    rows = [
        ["GET /health (WSGI app)", cpu(wsgi_get("/health")), "no auth; one SELECT 1"],
        ["GET /bots (WSGI app)", cpu(wsgi_get("/bots")), "JWT check + user query; bots cached"],
        ["GET /session (WSGI app)", cpu(wsgi_get("/session")), "+ Claire call + ownership query"],
        ["GET /health (ASGI app)", cpu(asgi_get("/health")), "+ router and WSGI bridge (thread hand-off)"],
        ["GET /session (ASGI app)", cpu(asgi_get("/session")), ""],
        ["  JWT check (DRF authenticators)", cpu(authenticate), "simplejwt decode + user query"],
        ["  session_list service", cpu(lambda: services.session_list(user=user, cursor=None)),
         "Claire call + ownership query"],
        ["  query parameters serializer", cpu(lambda: SessionListInputSerializer(data={}).is_valid(raise_exception=True)), ""],
        ["  user query", cpu(lambda: User.objects.get(pk=user_id)), ""],
        ["  ownership query", cpu(lambda: selectors.session_owners(session_ids=session_ids)), ""],
        ["  Claire call (claire_client)", cpu(lambda: claire_client.sessions_list(user_id=upstream_user, bot_ids=bot_ids)),
         "kept-alive http.client (orgproxy.upstream_http) + checks of the answer's shape"],
        ["  same call, bare requests", cpu(lambda: bare_requests.get(list_url, params=list_params, headers=upstream).json()), ""],
        ["  same call, bare urllib3", cpu(lambda: bare_urllib3.request("GET", f"{list_url}?{query}", headers=upstream).json()), ""],
    ]  # fmt: skip
    session = wsgi_get("/session")
    for threads in (1, 2, 4, 16):
        per_call, rate = min(threaded_cpu_ms(session, threads=threads, calls=args.calls * 2) for _ in range(args.rounds))
        rows.append([f"GET /session (WSGI app), {threads} threads", per_call, f"{rate:,.0f} calls/s"])
    connection.close()
    loop.close()
    return rows


if __name__ == "__main__":
    main()
