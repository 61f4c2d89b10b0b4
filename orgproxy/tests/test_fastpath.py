"""orgproxy.fastpath: the plain `GET /bots` and `POST /session` answered before Django, exactly as
Django's path answers them; everything else handed to Django untouched.

Requests go to the WSGI applications directly (config.wsgi), as the server's bridge calls them.
Each test sees which path answered: the fast path wraps a recorder of what reaches Django."""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
from dataclasses import dataclass

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from accounts.models import User
from config import wsgi
from orgproxy.fastpath import OrgProxyFastPath
from orgproxy.models import ClientSession
from orgproxy.tests.fake_claire import BOT_A, BOT_B

pytestmark = pytest.mark.django_db

SUBJECT = "auth0|fast-path-user"
# Values that differ between any two answers, whichever path gives them.
PER_REQUEST_HEADERS = {"x-request-id", "date"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class DjangoRecorder:
    """Django's WSGI application (without the fast path), counting the requests that reach it."""

    def __init__(self):
        self.reached: list[str] = []

    def __call__(self, environ, start_response):
        self.reached.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        return wsgi.static_files(environ, start_response)


def call(app, method: str, path: str, query: str = "", **headers: str) -> Answer:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }  # fmt: skip
    started = []
    iterable = app(environ, lambda status, response_headers, exc_info=None: started.append((status, response_headers)))
    try:
        body = b"".join(iterable)
    finally:
        iterable.close()
    status, response_headers = started[0]
    return Answer(int(status.split()[0]), {name.lower(): value for name, value in response_headers}, body)


@pytest.fixture
def keep_test_connection():
    """Django's request signals would close the test's database connection (it is inside the test's
    transaction); Django's own test client unhooks them too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def django_app() -> DjangoRecorder:
    return DjangoRecorder()


@pytest.fixture
def fast(django_app, keep_test_connection) -> OrgProxyFastPath:
    return OrgProxyFastPath(django_app)


@pytest.fixture
def bearer(oidc_provider, claire, django_app, keep_test_connection) -> str:
    """A provider token whose user exists (made by a first request, which Django answers)."""
    token = f"Bearer {oidc_provider.mint(sub=SUBJECT)}"
    assert call(django_app, "GET", "/bots", authorization=token).status == 200
    assert User.objects.filter(provider=User.Provider.OIDC, external_id=SUBJECT).exists()
    django_app.reached.clear()
    return token


def comparable(answer: Answer) -> dict[str, str]:
    return {name: value for name, value in answer.headers.items() if name not in PER_REQUEST_HEADERS}


def comparable_body(answer: Answer):
    """The body without what differs between any two requests: an error's request id, a new
    session's id and token (Claire hands out new ones each time)."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return answer.body
    if isinstance(body, dict) and isinstance(body.get("detail"), dict):
        body["detail"].pop("request_id", None)
    if isinstance(body, dict) and "token" in body:
        body = {**body, "token": "…", "session": {**body["session"], "session_id": "…"}}
    return body


def test_the_bots_list_is_answered_before_django_as_django_answers_it(fast, django_app, bearer, claire):
    quick = call(fast, "GET", "/bots", authorization=bearer)
    assert django_app.reached == []
    full = call(django_app, "GET", "/bots", authorization=bearer)

    assert quick.status == full.status == 200
    assert quick.body == full.body
    assert [bot["bot_id"] for bot in json.loads(quick.body)] == [BOT_A, BOT_B]
    assert comparable(quick) == comparable(full)
    assert quick.headers["x-request-id"]
    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 1  # cached, by both paths


def test_the_alias_under_api_v1_org_is_answered_too(fast, django_app, bearer, claire):
    assert call(fast, "GET", "/api/v1/org/bots", authorization=bearer).status == 200
    assert call(fast, "POST", "/api/v1/org/session", f"bot_id={BOT_A}", authorization=bearer).status == 200
    assert django_app.reached == []


def test_a_session_is_created_and_recorded_as_the_users_as_django_does(fast, django_app, bearer, claire):
    quick = call(fast, "POST", "/session", f"bot_id={BOT_A.upper()}", authorization=bearer)
    assert django_app.reached == []
    full = call(django_app, "POST", "/session", f"bot_id={BOT_A}", authorization=bearer)

    assert quick.status == full.status == 200
    assert comparable(quick) == comparable(full)
    created, other = json.loads(quick.body), json.loads(full.body)
    assert created.keys() == other.keys() == {"session", "token"}
    user = User.objects.get(external_id=SUBJECT)
    record = ClientSession.objects.get(session_id=created["session"]["session_id"])
    assert (record.user, record.upstream_user_id, record.bot_id) == (user, SUBJECT, BOT_A)
    assert abs((timezone.now() - record.created_at).total_seconds()) < 60
    [create, _] = claire.calls("POST", "/m2m/client_sessions")
    assert create.body["bot_id"] == BOT_A  # sent in lower case, as the view sends it
    assert create.body["user"]["organization_user_id"] == SUBJECT


def test_the_callers_request_id_is_echoed(fast, bearer, claire):
    assert call(fast, "GET", "/bots", authorization=bearer, x_request_id="claire-client-42").headers[
        "x-request-id"
    ] == "claire-client-42"


@pytest.mark.parametrize(
    "method, path, query, headers",
    [
        pytest.param("GET", "/bots", "", {"origin": "https://app.example.com"}, id="cors-origin"),
        pytest.param("GET", "/bots", "", {"accept": "text/html"}, id="accept-not-json"),
        pytest.param("GET", "/bots", "page=2", {}, id="bots-with-a-query"),
        pytest.param("GET", "/bots/", "", {}, id="trailing-slash"),
        pytest.param("HEAD", "/bots", "", {}, id="head"),
        pytest.param("GET", "/session", "", {}, id="session-list"),
        pytest.param("POST", "/session", "bot_id=bot-nope", {}, id="malformed-bot-id"),
        pytest.param("POST", "/session", f"bot_id={BOT_A}&x=1", {}, id="extra-parameter"),
        pytest.param("POST", "/session", f"bot_id={BOT_A}%00", {}, id="nul-in-query"),
        pytest.param("POST", "/session", "", {}, id="no-bot-id"),
        pytest.param("GET", "/bots", "", {"host": "evil.example.com"}, id="disallowed-host"),
    ],
)
def test_what_is_not_the_plain_case_is_answered_by_django(fast, django_app, bearer, claire, method, path, query, headers):
    headers = {"authorization": bearer, **headers}
    quick = call(fast, method, path, query, **headers)

    assert django_app.reached == [f"{method} {path}"]
    full = call(django_app, method, path, query, **headers)
    assert (quick.status, comparable(quick)) == (full.status, comparable(full))
    if method != "HEAD":
        assert comparable_body(quick) == comparable_body(full)


def test_other_credentials_are_left_to_drf(fast, django_app, oidc_provider, claire, user, make_user):
    from accounts.services import token_pair_issue

    local = f"Bearer {token_pair_issue(user=user)['access_token']}"
    inactive_subject = "auth0|inactive"
    make_user(email="gone@example.com", provider=User.Provider.OIDC, external_id=inactive_subject, is_active=False)
    expired = oidc_provider.mint(sub=SUBJECT, exp=1_000_000_000)
    cases = {
        local: 200,  # a local token: DRF's classes after the provider's
        f"Bearer {oidc_provider.mint(sub='auth0|first-time')}": 200,  # a new subject's user is made by Django
        f"Bearer {oidc_provider.mint(sub=inactive_subject)}": 401,
        f"Bearer {expired}": 401,
        "Bearer not-a-token": 401,
        f"Token {oidc_provider.mint(sub=SUBJECT)}": 401,
        "": 401,
    }
    for authorization, status in cases.items():
        django_app.reached.clear()
        answer = call(fast, "GET", "/bots", authorization=authorization)
        assert (answer.status, django_app.reached) == (status, ["GET /bots"]), authorization


def test_a_forged_provider_token_never_gets_a_fast_answer(fast, django_app, bearer, oidc_provider, claire):
    """The attack: another key's signature under the provider's key id, or a valid token whose
    subject was changed to someone else's, to create a Claire session as them. Django's path
    refuses both (401), nothing reaches Claire, nothing is recorded."""
    victim = User.objects.get(external_id=SUBJECT)
    other_key = oidc_provider.mint(sub=SUBJECT, key=oidc_provider.stray_key, kid=oidc_provider.key.kid)
    header, payload, signature = oidc_provider.mint(sub="auth0|attacker").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    swapped = base64.urlsafe_b64encode(json.dumps({**claims, "sub": SUBJECT}).encode()).rstrip(b"=").decode()
    for token in (other_key, f"{header}.{swapped}.{signature}"):
        django_app.reached.clear()
        answer = call(fast, "POST", "/session", f"bot_id={BOT_A}", authorization=f"Bearer {token}")
        assert (answer.status, django_app.reached) == (401, ["POST /session"])
    assert not claire.calls("POST", "/m2m/client_sessions")
    assert not ClientSession.objects.filter(user=victim).exists()


def test_an_unconfigured_organization_server_is_left_to_django(fast, django_app, bearer, settings):
    settings.CLAIRE_API_KEY = ""
    answer = call(fast, "GET", "/bots", authorization=bearer)
    assert (answer.status, django_app.reached) == (503, ["GET /bots"])


def test_an_unknown_bot_is_a_404_with_the_views_body(fast, django_app, bearer, claire):
    unknown = "bot-00000000-0000-4000-8000-000000000000"
    quick = call(fast, "POST", "/session", f"bot_id={unknown}", authorization=bearer)
    full = call(django_app, "POST", "/session", f"bot_id={unknown}", authorization=bearer)

    assert django_app.reached == ["POST /session"]  # only the second call
    assert quick.status == full.status == 404
    assert comparable(quick) == comparable(full)
    assert b'"code":"bot_not_found"' in quick.body
    assert not claire.calls("POST", "/m2m/client_sessions")


@pytest.mark.parametrize("upstream_status, delay, status", [(500, 0, 502), (404, 0, 404), (200, 2, 504)])
def test_a_claire_failure_on_create_is_answered_as_the_view_answers_it(
    fast, django_app, bearer, claire, upstream_status, delay, status, caplog
):
    # (The claire fixture gives Claire one second to answer: a two-second delay is a timeout.)
    claire.fail("POST", "/m2m/client_sessions", status=upstream_status, body={"detail": "no"}, delay=delay)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        quick = call(fast, "POST", "/session", f"bot_id={BOT_A}", authorization=bearer)
    assert django_app.reached == []
    assert len(claire.calls("POST", "/m2m/client_sessions")) == 1  # not repeated by Django
    reason = {502: "Bad Gateway", 404: "Not Found", 504: "Gateway Timeout"}[status]
    logged = [record.getMessage() for record in caplog.records if record.name == "django.request"]
    assert logged == [f"{reason}: /session"]  # as Django's handler logs it
    full = call(django_app, "POST", "/session", f"bot_id={BOT_A}", authorization=bearer)

    assert quick.status == full.status == status
    assert comparable(quick) == comparable(full)
    assert json.loads(quick.body)["detail"]["message"] == json.loads(full.body)["detail"]["message"]
    assert json.loads(quick.body)["detail"]["request_id"] == quick.headers["x-request-id"]
    assert not ClientSession.objects.exists()


def test_claire_down_while_listing_bots_is_a_502_in_the_views_words(fast, django_app, bearer, claire):
    from orgproxy.selectors import bots_forget

    bots_forget()
    claire.fail("GET", "/m2m/organizations/bots", status=503)
    answer = call(fast, "GET", "/bots", authorization=bearer)

    assert (answer.status, django_app.reached) == (502, [])
    assert b'"message":"Could not get bots."' in answer.body


def test_an_unexpected_error_is_djangos_json_500_with_the_request_id(fast, django_app, bearer, claire, monkeypatch):
    from orgproxy import services

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "session_create", broken)
    answer = call(fast, "POST", "/session", f"bot_id={BOT_A}", authorization=bearer, x_request_id="req-500")
    assert (answer.status, django_app.reached) == (500, [])
    full = call(django_app, "POST", "/session", f"bot_id={BOT_A}", authorization=bearer, x_request_id="req-500")

    assert (answer.status, comparable(answer), answer.body) == (full.status, comparable(full), full.body)
    assert answer.headers["content-type"] == "application/json"
    assert b"a bug" not in answer.body and b"Traceback" not in answer.body
    assert json.loads(answer.body)["detail"]["request_id"] == "req-500"


def test_it_sends_djangos_request_signals(fast, bearer, claire):
    seen = []

    def started(sender, **kwargs):
        seen.append("started")

    def finished(sender, **kwargs):
        seen.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        call(fast, "GET", "/bots", authorization=bearer)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert seen == ["started", "finished"]


def test_the_model_these_requests_save_is_not_audited_and_has_no_receivers():
    """The fast path sets no audit actor (Django's AuthenticationMiddleware does, on its path), and
    the services insert ClientSession rows without the model's signals."""
    from auditlog.registry import auditlog
    from django.db.models.signals import post_save, pre_save

    assert not auditlog.contains(ClientSession)
    assert not pre_save.has_listeners(ClientSession) and not post_save.has_listeners(ClientSession)


def test_a_database_fault_before_the_call_is_answered_by_django(fast, django_app, bearer, claire, monkeypatch):
    from django.db import OperationalError

    from accounts import authentication

    def unreachable(sub):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(authentication, "_provider_user_identity", unreachable)  # the fast path's read
    monkeypatch.setattr(authentication, "provider_user", unreachable)  # DRF's
    answer = call(fast, "GET", "/bots", authorization=bearer)
    assert django_app.reached == ["GET /bots"]
    assert answer.status == 500 and json.loads(answer.body)["detail"]["code"] == "server_error"


def test_the_server_entry_point_has_it_in_front_of_django():
    assert isinstance(wsgi.application, OrgProxyFastPath)
    assert wsgi.application.application is wsgi.static_files
