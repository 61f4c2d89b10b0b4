"""Benchmark: local sign-in (`POST /api/v1/auth/login`, one Argon2 verification each) and an
authenticated read (`GET /api/v1/auth/me`, one JWT check and one user query; with a personal API
key, one HMAC and one key+user query instead), in one daphne process. Baselines measured in the same run: `GET /health` (Django's floor: no auth, no query
beyond a `SELECT 1`) and Argon2 verifications/s in the benchmark's own process with the server's
parameters (the floor for logins). Login throttles are lifted for the run.

    .venv/bin/python bench/auth.py [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from config.testing.http import http_json  # noqa: E402

EMAIL = "bench-auth@example.com"


def argon2_floor(env: dict[str, str], seconds: float = 3.0) -> dict:
    """Argon2 verifications per second on one thread, with the server's hasher and parameters."""
    code = (
        "import json, time\n"
        "from django.contrib.auth.hashers import get_hasher\n"
        "h = get_hasher(); encoded = h.encode('pw-bench-123', h.salt()); n = 0; t = time.perf_counter()\n"
        f"while time.perf_counter() - t < {seconds}:\n"
        "    h.verify('pw-bench-123', encoded); n += 1\n"
        "e = time.perf_counter() - t\n"
        "print(json.dumps({'per_s': n / e, 'ms': 1000 * e / n, 'params': encoded.split('$')[3], 'hasher': type(h).__name__}))"
    )
    out = common.manage(env, "shell", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    common.print_machine()
    rows = []
    with common.workdir() as tmp:
        env = common.base_env(tmp, THROTTLE_LOGIN_PER_IP="1000000/min", THROTTLE_LOGIN_PER_EMAIL="1000000/min")
        common.prepare_database(env)
        common.create_user(env, EMAIL)
        floor = argon2_floor(env)
        rows.append(["Argon2 verify, 1 thread (floor)", 1, floor["per_s"], floor["ms"], floor["ms"], 0])
        with common.conduit(env) as (base, _process):
            token = common.login(base, EMAIL)
            status, created = http_json("POST", f"{base}/api/v1/auth/api-keys", {"name": "bench"}, token)
            assert status == 201, created
            api_key = created["key"]
            login_body = json.dumps({"email": EMAIL, "password": common.PASSWORD})
            cases = [
                ("GET /health (floor)", dict(url=f"{base}/health")),
                ("GET /api/v1/auth/me", dict(url=f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})),
                ("GET /api/v1/auth/me (API key)", dict(url=f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {api_key}"})),
                ("GET /v1/models (API key)", dict(url=f"{base}/v1/models", headers={"Authorization": f"Bearer {api_key}"})),
                ("POST /api/v1/auth/login", dict(url=f"{base}/api/v1/auth/login", method="POST", body=login_body,
                                                 headers={"Content-Type": "application/json"})),
            ]  # fmt: skip
            for name, spec in cases:
                for connections in (1, 16):
                    r = common.load(**spec, connections=connections, duration=args.duration)
                    rows.append([name, connections, r["rps"], r["p50_ms"], r["p99_ms"], r["errors"]])
                    print(f"  {name} c={connections}: {r['rps']:.0f} req/s", file=sys.stderr, flush=True)
    print(f"\nArgon2 parameters: {floor['params']} ({floor['hasher']})")
    print(common.table(["request", "conns", "req/s", "p50 ms", "p99 ms", "errors"], rows))


if __name__ == "__main__":
    main()
