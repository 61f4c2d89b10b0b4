"""Two OS processes racing turns of one user stay within the stated bound: the budget plus the calls
already in flight when it was reached (one per process here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.processes import database_url_for_children

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 200
CALL_TOKENS = 12 + 2  # the fake's 12 input tokens, 2 output tokens (two chunks)


def _child(role: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", "from usage.tests.race_child import main; main()"],
        cwd=settings.BASE_DIR, env={**os.environ, **env, "RACE_ROLE": role},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_two_processes_racing_stay_within_the_budget_plus_the_calls_in_flight(tmp_path):
    with fake_anthropic_server() as fake:
        # Slow answers, so the two processes' calls overlap.
        fake.default = Reply(text=["a", "b"], delay=0.02)
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
               "RACE_FAKE_URL": fake.base_url, "RACE_LIMIT": str(LIMIT), "DEBUG": "1",
               "ASSISTANT_FLUSH_INTERVAL": "0.01"}  # fmt: skip
        _result(_child("setup", env))
        racers = [_child("run", env), _child("run", env)]
        results = [_result(racer) for racer in racers]
        report = _result(_child("report", env))

    print(f"race: limit {LIMIT}, spent {report['counter_tokens']} in {report['calls']} calls; per process: {results}")
    assert all(r["turns"] >= 1 for r in results), results  # both really raced
    assert report["counter_tokens"] == report["message_tokens"]  # every call counted exactly once
    assert report["counter_tokens"] >= LIMIT  # the budget was reached …
    # … and overspent by at most the calls in flight when it was: one per process.
    assert report["counter_tokens"] < LIMIT + 2 * CALL_TOKENS, (report, results)
    assert report["calls"] * CALL_TOKENS == report["counter_tokens"]
