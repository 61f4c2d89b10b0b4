"""Benchmark: CPU per request and per piece of the organization server with a provider (RS256)
token, inside one process with no server around it (like bench/breakdown.py, whose tokens are
local HS256 ones). Starts the fake Claire API (own process) and the fake OpenID provider, a fresh
SQLite database, then calls Django's WSGI application and the pieces directly; CPU per call
(`time.process_time`, best of 3 rounds), so less sensitive to other load than req/s.

    .venv/bin/python bench/orgproxy_cpu.py [--calls 300]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.breakdown import best_cpu_ms  # noqa: E402
from config.testing.fake_oidc import FakeOIDCProvider  # noqa: E402
from orgproxy.tests.fake_claire import API_KEY, BOT_A  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    common.print_machine()
    print(f"loadavg before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    with common.workdir() as tmp, common.fake("claire") as claire, FakeOIDCProvider() as provider:
        env = common.base_env(tmp, CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY, AUTH0__ISSUER=provider.issuer,
                              AUTH0__AUDIENCE=provider.audience, AUTH0__JWKS_URL=provider.jwks_url)  # fmt: skip
        common.prepare_database(env)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        os.chdir(common.ROOT)
        rows = measure(provider, args.calls)
    print(common.table(["what", "CPU ms per call"], rows))


def measure(provider: FakeOIDCProvider, calls: int) -> list[list]:
    import django

    django.setup()
    from accounts import authentication
    from config.wsgi import application
    from orgproxy import claire_client, services
    from orgproxy.models import ClientSession

    token = provider.mint(sub="auth0|cpu", exp=int(time.time()) + 3600)

    def wsgi(method: str, path: str, query: str = ""):
        def call():
            environ = {
                "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}",
                "CONTENT_LENGTH": "0", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            }  # fmt: skip
            status = []
            b"".join(application(environ, lambda s, h, e=None: status.append(s)))
            assert status[0].startswith("200"), status
        return call

    wsgi("GET", "/bots")()  # creates the provider user, fills the bots cache
    claims = authentication.provider_claims(token)
    user = authentication.provider_user_for_claims(claims)
    # The full check, whatever caches the code has (main's code has no _verify_provider_token).
    verify = getattr(authentication, "_verify_provider_token", authentication.provider_claims)

    def cpu(call) -> float:
        return best_cpu_ms(call, rounds=3, calls=calls)

    def insert() -> None:
        ClientSession(session_id=f"session-{uuid.uuid4()}", user=user, upstream_user_id="x", bot_id=BOT_A).save()

    return [
        ["GET /health (WSGI app)", cpu(wsgi("GET", "/health"))],
        ["GET /bots (WSGI app)", cpu(wsgi("GET", "/bots"))],
        ["POST /session (WSGI app)", cpu(wsgi("POST", "/session", f"bot_id={BOT_A}"))],
        ["  provider token check, as a request does it", cpu(lambda: authentication.provider_claims(token))],
        ["  provider token check, full RS256 verification", cpu(lambda: verify(token))],
        ["  provider user read", cpu(lambda: authentication.provider_user_for_claims(claims))],
        ["  Claire POST /m2m/client_sessions (claire_client)",
         cpu(lambda: claire_client.session_create(user_id="x", bot_id=BOT_A, enabled_device_actions=[]))],
        ["  session_create service (bots, Claire, INSERT)", cpu(lambda: services.session_create(user=user, bot_id=BOT_A))],
        ["  ownership INSERT", cpu(insert)],
    ]  # fmt: skip


if __name__ == "__main__":
    main()
