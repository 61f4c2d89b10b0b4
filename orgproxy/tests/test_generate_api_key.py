from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from orgproxy.tests.fake_claire import ORG_ID

ROOT = Path(__file__).resolve().parents[2]
USER_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
FUTURE = (datetime.now(timezone.utc) + timedelta(days=90)).replace(microsecond=0)
FUTURE_ISO = FUTURE.isoformat().replace("+00:00", "Z")


class FakeTerminal(io.StringIO):
    """Typed answers, one per line, on something that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def api_claire(claire):
    claire.user_tokens.add(USER_JWT)
    return claire


def run(*args: str, stdin=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_api_key", *args, stdout=out, stderr=err, stdin=stdin or NotATerminal())
    return out.getvalue(), err.getvalue()


def all_flags(base_url: str, **overrides: str) -> list[str]:
    values = {"--org-id": ORG_ID, "--token": USER_JWT, "--label": "production", "--expires-at": FUTURE_ISO,
              "--base-url": base_url, **overrides}
    return [item for pair in values.items() for item in pair]


def test_it_creates_a_key_from_flags_and_prints_the_env_line(api_claire):
    out, _ = run(*all_flags(api_claire.base_url))

    secret = api_claire.created_key["secret"]
    assert out.splitlines()[-1] == f"CLAIRE__API_KEY={secret}"
    assert "shown only this once" in out
    [call] = api_claire.calls()
    assert (call.method, call.path) == ("POST", f"/organizations/{ORG_ID}/api_keys")
    assert call.headers["authorization"] == f"Bearer {USER_JWT}"
    assert call.body == {"label": "production", "scopes": ["session"], "expires_at": FUTURE_ISO}


def test_it_uses_claire_base_url_by_default(api_claire):
    flags = all_flags(api_claire.base_url)
    del flags[-2:]  # no --base-url: the claire fixture set CLAIRE_BASE_URL

    out, _ = run(*flags)

    assert "CLAIRE__API_KEY=ck_" in out


def test_it_asks_for_missing_values_on_a_terminal_with_the_same_checks(api_claire):
    typed = FakeTerminal(f"org-nope\n{ORG_ID}\n{USER_JWT}\n   \nstaging\nyesterday\n2001-01-01\n{FUTURE.date()}\n")

    out, err = run("--base-url", api_claire.base_url, stdin=typed)

    assert "Organization id (org-<uuid>): " in out
    assert err.splitlines() == [
        "The organization id must look like org-<uuid>, e.g. org-0b6f3c9e-1d2a-4c5b-9e8f-123456789abc.",
        "The label must not be empty.",
        "The expiry must be an ISO-8601 date or date-time, e.g. 2027-01-31T00:00:00Z.",
        "The expiry must be in the future.",
    ]
    assert api_claire.calls()[0].body == {
        "label": "staging",
        "scopes": ["session"],
        "expires_at": f"{FUTURE.date()}T00:00:00Z",
    }
    assert out.splitlines()[-1] == f"CLAIRE__API_KEY={api_claire.created_key['secret']}"


def test_it_gives_up_after_three_bad_answers(api_claire):
    with pytest.raises(CommandError, match="No valid value after 3 attempts: Organization id"):
        run("--base-url", api_claire.base_url, stdin=FakeTerminal("a\nb\nc\n"))
    assert api_claire.calls() == []


def test_it_refuses_to_prompt_when_input_is_not_a_terminal(api_claire):
    with pytest.raises(CommandError, match=r"^Missing --token, --expires-at: give them as flags"):
        run("--org-id", ORG_ID, "--label", "x", "--base-url", api_claire.base_url)
    assert api_claire.calls() == []


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--org-id", "org-123", "The organization id must look like org-<uuid>"),
        ("--token", "not a jwt", "The token must be a bearer JWT"),
        ("--label", "  ", "The label must not be empty."),
        ("--expires-at", "31/01/2030", "The expiry must be an ISO-8601 date"),
        ("--expires-at", "2020-01-01T00:00:00Z", "The expiry must be in the future."),
    ],
)
def test_it_rejects_an_invalid_flag_without_calling_claire(api_claire, flag, value, message):
    with pytest.raises(CommandError, match=message):
        run(*all_flags(api_claire.base_url, **{flag: value}))
    assert api_claire.calls() == []


def test_it_explains_a_refused_token_without_printing_it(api_claire):
    other_jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJldmUifQ.c2ln"

    with pytest.raises(CommandError) as caught:
        run(*all_flags(api_claire.base_url, **{"--token": other_jwt}))

    assert str(caught.value).startswith("Claire refused the token (HTTP 401)")
    assert other_jwt not in str(caught.value)


def test_it_reports_an_upstream_error_status(api_claire):
    api_claire.fail("POST", f"/organizations/{ORG_ID}/api_keys", status=500, body={"detail": "boom"})

    with pytest.raises(CommandError, match=r"^Claire could not create the key \(HTTP 500\)\.$"):
        run(*all_flags(api_claire.base_url))


def test_it_reports_an_answer_without_a_secret(api_claire):
    api_claire.fail("POST", f"/organizations/{ORG_ID}/api_keys", status=201, body={"id": "key-1"})

    with pytest.raises(CommandError, match="had no key secret"):
        run(*all_flags(api_claire.base_url))


def test_it_reports_an_unreachable_claire(closed_port_url):
    with pytest.raises(CommandError, match=f"^Could not connect to Claire at {closed_port_url}.$"):
        run(*all_flags(closed_port_url))


def test_it_exits_non_zero_with_one_line_from_the_shell(api_claire):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIRE__")}
    env["SECRET_KEY"] = "x" * 50
    command = [sys.executable, "manage.py", "generate_api_key"]

    ok = subprocess.run(command + all_flags(api_claire.base_url), cwd=ROOT, env=env, capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=60)
    api_claire.fail("POST", f"/organizations/{ORG_ID}/api_keys", status=500, body={})
    failed = subprocess.run(command + all_flags(api_claire.base_url), cwd=ROOT, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("CLAIRE__API_KEY=ck_")
    assert failed.returncode == 1
    assert failed.stderr.strip() == "CommandError: Claire could not create the key (HTTP 500)."
