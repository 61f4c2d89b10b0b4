from __future__ import annotations

import logging

import pytest

from config.http.request_ids import RequestIdLogFilter
from orgproxy.models import ClientSession
from orgproxy.tests.fake_claire import API_KEY, BOT_A, new_id

pytestmark = pytest.mark.django_db

BOTS = "/m2m/organizations/bots"
CREATE = "/m2m/client_sessions"
LIST = "/m2m/client_sessions/"


def assert_error(response, status: int, message: str, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": {"message": message, "code": code, "request_id": response["X-Request-ID"]}
    }


def owned_session(user) -> str:
    session_id = new_id("session")
    ClientSession.objects.create(session_id=session_id, user=user, upstream_user_id=f"conduit|{user.pk}")
    return session_id


# Each endpoint, the upstream call to break, and the reference's message.
def endpoints(user):
    session_id = owned_session(user)
    return [
        ("get", "/bots", ("GET", BOTS), "Could not get bots."),
        ("post", f"/session?bot_id={BOT_A}", ("POST", CREATE), "Could not create chat session."),
        ("get", "/session", ("GET", LIST), "Could not list chat sessions."),
        ("post", f"/session/{session_id}/renew", ("POST", f"{CREATE}/{session_id}/renew"), "Could not renew chat session."),
        ("delete", f"/session/{session_id}", ("DELETE", f"{CREATE}/{session_id}"), "Could not delete chat session."),
    ]


def test_every_endpoint_answers_502_when_upstream_answers_500(auth_client, user, claire):
    for method, path, (up_method, up_path), message in endpoints(user):
        claire.fail(up_method, up_path, status=500, body={"detail": "boom"})
        assert_error(getattr(auth_client, method)(path), 502, message, "upstream_error")


def test_every_endpoint_answers_502_when_upstream_answers_a_4xx(auth_client, user, claire):
    for method, path, (up_method, up_path), message in endpoints(user):
        claire.fail(up_method, up_path, status=403, body={"detail": "forbidden"})
        assert_error(getattr(auth_client, method)(path), 502, message, "upstream_error")


def test_every_endpoint_answers_502_when_upstream_answers_html(auth_client, user, claire):
    for method, path, (up_method, up_path), message in endpoints(user):
        claire.fail(up_method, up_path, status=200, raw=b"<html>maintenance</html>")
        assert_error(getattr(auth_client, method)(path), 502, message, "upstream_bad_response")


def test_every_endpoint_answers_502_when_upstream_answers_json_of_the_wrong_shape(auth_client, user, claire):
    for method, path, (up_method, up_path), message in endpoints(user):
        if up_method == "DELETE":
            continue  # any 2xx body is a successful delete
        claire.fail(up_method, up_path, status=200, body={"unexpected": True} if up_method == "GET" and up_path == BOTS else [1])
        assert_error(getattr(auth_client, method)(path), 502, message, "upstream_bad_response")


def test_every_endpoint_answers_502_when_upstream_refuses_connections(auth_client, user, settings, closed_port_url):
    settings.CLAIRE_API_KEY = API_KEY
    settings.CLAIRE_BASE_URL = closed_port_url
    for method, path, _, message in endpoints(user):
        if "bot_id" in path:
            message = "Could not create chat session."
        assert_error(getattr(auth_client, method)(path), 502, message, "upstream_unavailable")


def test_every_endpoint_answers_504_when_upstream_is_too_slow(auth_client, user, claire, settings):
    settings.CLAIRE_READ_TIMEOUT = 0.2
    settings.CLAIRE_RETRIES = 0
    for method, path, (up_method, up_path), message in endpoints(user):
        claire.fail(up_method, up_path, body=[], delay=2)
        assert_error(getattr(auth_client, method)(path), 504, message, "upstream_timeout")


def test_a_connect_timeout_answers_504(auth_client, user, settings, unresponsive_url):
    settings.CLAIRE_API_KEY = API_KEY
    settings.CLAIRE_BASE_URL = unresponsive_url
    settings.CLAIRE_CONNECT_TIMEOUT = 0.2
    settings.CLAIRE_READ_TIMEOUT = 0.5  # bounds the test should a kernel accept the connection after all
    settings.CLAIRE_RETRIES = 0
    session_id = owned_session(user)

    assert_error(auth_client.get("/bots"), 504, "Could not get bots.", "upstream_timeout")
    assert_error(auth_client.delete(f"/session/{session_id}"), 504, "Could not delete chat session.", "upstream_timeout")


def test_a_bots_timeout_during_create_reports_the_create_failure(auth_client, claire, settings):
    settings.CLAIRE_READ_TIMEOUT = 0.2
    settings.CLAIRE_RETRIES = 0
    claire.fail("GET", BOTS, body=[], delay=2)

    assert_error(auth_client.post(f"/session?bot_id={BOT_A}"), 504, "Could not create chat session.", "upstream_timeout")


def test_a_timed_out_get_is_retried_a_bounded_number_of_times(auth_client, claire, settings):
    settings.CLAIRE_READ_TIMEOUT = 0.2
    settings.CLAIRE_RETRIES = 2
    claire.fail("GET", BOTS, body=[], delay=2)

    assert_error(auth_client.get("/bots"), 504, "Could not get bots.", "upstream_timeout")
    assert len(claire.calls("GET", BOTS)) == 3


def test_a_get_is_retried_after_a_503(auth_client, claire, settings):
    settings.CLAIRE_RETRIES = 2
    claire.fail("GET", BOTS, status=503, body={"detail": "busy"})

    response = auth_client.get("/bots")

    assert response.status_code == 502
    assert len(claire.calls("GET", BOTS)) == 3


def test_a_post_is_never_resent(auth_client, claire, settings):
    settings.CLAIRE_RETRIES = 2
    claire.fail("POST", CREATE, status=503, body={"detail": "busy"})

    auth_client.post(f"/session?bot_id={BOT_A}")

    assert len(claire.calls("POST", CREATE)) == 1
    assert not ClientSession.objects.exists()


def test_a_delete_is_never_resent(auth_client, user, claire, settings):
    settings.CLAIRE_RETRIES = 2
    session_id = owned_session(user)
    claire.fail("DELETE", f"{CREATE}/{session_id}", status=503, body={"detail": "busy"})

    response = auth_client.delete(f"/session/{session_id}")

    assert response.status_code == 502
    assert len(claire.calls("DELETE")) == 1
    assert ClientSession.objects.filter(session_id=session_id).exists()  # still the user's, still there upstream


def test_it_answers_503_while_the_api_key_is_not_set(auth_client, claire, settings):
    settings.CLAIRE_API_KEY = ""

    for method, path in (("get", "/bots"), ("get", "/session"), ("post", f"/session?bot_id={BOT_A}")):
        assert_error(
            getattr(auth_client, method)(path),
            503,
            "The organization server is not configured: CLAIRE__API_KEY is not set.",
            "not_configured",
        )
    assert claire.calls() == []


def test_the_api_key_is_in_no_log_line_and_no_answer(auth_client, user, claire, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.CLAIRE_READ_TIMEOUT = 0.2
    settings.CLAIRE_RETRIES = 0
    bodies = []
    for status, raw, delay in ((500, None, 0), (200, b"not json", 0), (401, None, 0), (200, None, 2)):
        for method, path, (up_method, up_path), _ in endpoints(user):
            claire.fail(up_method, up_path, status=status, raw=raw, body={"detail": "x"}, delay=delay)
            response = getattr(auth_client, method)(path)
            assert response.status_code in (502, 504)
            bodies.append(response.content.decode())
            bodies.append(str(response.headers))

    assert caplog.records, "upstream failures are logged"
    assert any("answered 500" in record.getMessage() for record in caplog.records)
    logged = "\n".join(record.getMessage() + str(record.args) + str(record.exc_info) for record in caplog.records)
    assert API_KEY not in logged
    assert all(API_KEY not in body for body in bodies)


def test_failures_are_logged_with_the_upstream_status_and_request_id(auth_client, claire, caplog):
    claire.fail("GET", BOTS, status=500, body={"detail": "boom"})
    caplog.handler.addFilter(RequestIdLogFilter())

    with caplog.at_level(logging.WARNING, logger="orgproxy.claire_client"):
        auth_client.get("/bots", HTTP_X_REQUEST_ID="req-42")

    [record] = [r for r in caplog.records if r.name == "orgproxy.claire_client"]
    assert "answered 500" in record.getMessage()
    assert "(upstream request id claire-" in record.getMessage()
    assert record.request_id == "req-42"
