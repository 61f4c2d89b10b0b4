from __future__ import annotations

import re

import pytest

from orgproxy.models import ClientSession
from orgproxy.tests.fake_claire import API_KEY, BOT_A, BOT_B, ORG_ID, new_id

pytestmark = pytest.mark.django_db

SESSION_TOKEN = re.compile(r"^session-token-[0-9a-f]{32}$")


def local_id(user) -> str:
    return f"conduit|{user.pk}"


def create_session(client, bot_id: str = BOT_A) -> dict:
    response = client.post(f"/session?bot_id={bot_id}")
    assert response.status_code == 200, response.content
    return response.json()


# --- POST /session ---------------------------------------------------------------------------


def test_it_creates_a_session_for_the_user(auth_client, user, claire):
    response = auth_client.post(f"/session?bot_id={BOT_A}")

    assert response.status_code == 200
    body = response.json()
    session_id = body["session"]["session_id"]
    assert body == {
        "session": {"organization_id": ORG_ID, "session_id": session_id, "editable": "all_messages", "meta": {}},
        "token": body["token"],
    }
    assert SESSION_TOKEN.match(body["token"])
    record = ClientSession.objects.get(session_id=session_id)
    assert (record.user, record.upstream_user_id, record.bot_id) == (user, local_id(user), BOT_A)


def test_it_sends_the_reference_create_request_upstream(auth_client, user, claire):
    create_session(auth_client)

    bots_call, create_call = claire.calls()
    assert (bots_call.method, bots_call.path) == ("GET", "/m2m/organizations/bots")
    assert (create_call.method, create_call.path, create_call.query) == ("POST", "/m2m/client_sessions", [])
    assert create_call.headers["authorization"] == f"Bearer {API_KEY}"
    assert create_call.headers["content-type"] == "application/json"
    assert create_call.body == {
        "user": {"organization_user_id": local_id(user)},
        "bot_id": BOT_A,
        "enabled_device_actions": ["open_url", "show_map"],
        "editable": "all_messages",
        "meta": {},
    }


def test_it_matches_the_bot_id_case_insensitively_and_sends_it_lower_case(auth_client, claire):
    create_session(auth_client, BOT_B.upper().replace("BOT-", "Bot-"))

    assert claire.calls("POST", "/m2m/client_sessions")[0].body["bot_id"] == BOT_B


def test_it_accepts_any_2xx_from_upstream(auth_client, claire):
    session_id = new_id("session")
    claire.fail(
        "POST",
        "/m2m/client_sessions",
        status=201,
        body={"session": {"organization_id": ORG_ID, "session_id": session_id, "editable": "none", "meta": None},
              "token": "t"},
    )

    body = create_session(auth_client)

    assert body == {
        "session": {"organization_id": ORG_ID, "session_id": session_id, "editable": "none", "meta": None},
        "token": "t",
    }


@pytest.mark.parametrize(
    "query",
    ["", "?bot_id=", "?bot_id=bot-123", "?bot_id=1a2b3c4d-0000-4000-8000-00000000000a", "?bot_id=bot-zzzzzzzz-0000-4000-8000-00000000000a"],
)
def test_it_rejects_a_malformed_bot_id_before_any_upstream_call(auth_client, claire, query):
    response = auth_client.post(f"/session{query}")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["code"] == "invalid"
    assert list(detail["fields"]) == ["bot_id"]
    assert claire.calls() == []


def test_it_refuses_a_bot_that_is_not_the_organizations(auth_client, claire):
    response = auth_client.post(f"/session?bot_id={new_id('bot')}")

    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "bot_not_found"
    assert claire.calls("POST") == []
    assert not ClientSession.objects.exists()


def test_it_requires_a_signed_in_user(api_client, claire):
    response = api_client.post(f"/session?bot_id={BOT_A}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()["detail"]) == {"message", "code", "request_id"}
    assert claire.calls() == []


# --- GET /session ----------------------------------------------------------------------------


def test_it_lists_the_users_sessions(auth_client, user, claire):
    session_id = create_session(auth_client)["session"]["session_id"]

    response = auth_client.get("/session")

    assert response.status_code == 200
    assert response.json() == {
        "cursor": None,
        "results": [
            {
                "organization_id": ORG_ID,
                "session_id": session_id,
                "messages": [{"role": "user", "text": "hi"}],
                "bot_configuration": {"bot_id": BOT_A},
                "meta": {},
            }
        ],
    }


def test_it_sends_the_reference_list_request_upstream(auth_client, user, claire):
    auth_client.get("/session?cursor=abc%3D%3D")

    list_call = claire.calls("GET", "/m2m/client_sessions/")[0]
    assert list_call.query == [
        ("external_user_id", local_id(user)),
        ("bot_ids", BOT_A),
        ("bot_ids", BOT_B),
        ("cursor", "abc=="),
    ]
    assert list_call.headers["authorization"] == f"Bearer {API_KEY}"


def test_a_hostile_cursor_reaches_claire_as_one_value_and_never_as_another_users_id(auth_client, user, claire):
    # URL syntax in the cursor must not end the query (#), start another parameter (&) or another
    # request (CRLF), nor change whose sessions are listed: it is sent percent-encoded, as one value.
    hostile = "x#frag&external_user_id=victim&bot_ids=bot-other?/../../organizations/bots\r\nX-Evil: 1 é"

    auth_client.get("/session", {"cursor": hostile})

    [list_call] = claire.calls("GET", "/m2m/client_sessions/")
    assert list_call.path == "/m2m/client_sessions/"
    assert list_call.query == [
        ("external_user_id", local_id(user)),
        ("bot_ids", BOT_A),
        ("bot_ids", BOT_B),
        ("cursor", hostile),
    ]
    assert "x-evil" not in list_call.headers


def test_it_passes_the_upstream_cursor_on(auth_client, user, claire):
    claire.fail("GET", "/m2m/client_sessions/", body={"cursor": {"cursor_id": "next-1"}, "results": []})

    response = auth_client.get("/session")

    assert response.json() == {"cursor": {"cursor_id": "next-1"}, "results": []}


def test_it_answers_an_empty_list_when_upstream_says_404(auth_client, claire):
    response = auth_client.get("/session")

    assert claire.calls("GET", "/m2m/client_sessions/")  # the fake answers 404 for no sessions
    assert response.status_code == 200
    assert response.json() == {"cursor": None, "results": []}


def test_it_never_lists_a_session_recorded_as_another_users(auth_client, user, other_user, claire):
    mine = claire.add_session(user=local_id(user))
    theirs = claire.add_session(user=local_id(user))  # upstream wrongly lists it for this user
    ClientSession.objects.create(session_id=theirs, user=other_user, upstream_user_id=local_id(other_user))

    response = auth_client.get("/session")

    assert [item["session_id"] for item in response.json()["results"]] == [mine]


def test_it_adopts_listed_sessions_made_for_the_user_before_records_were_kept(auth_client, user, claire):
    earlier = claire.add_session(user=local_id(user))

    auth_client.get("/session")
    response = auth_client.delete(f"/session/{earlier}")

    assert response.status_code == 200
    assert ClientSession.objects.filter(session_id=earlier).exists() is False


def test_it_does_not_ask_upstream_for_sessions_when_there_are_no_bots(auth_client, claire):
    claire.bots = []

    response = auth_client.get("/session")

    assert response.json() == {"cursor": None, "results": []}
    assert claire.calls("GET", "/m2m/client_sessions/") == []


# --- POST /session/{id}/renew ----------------------------------------------------------------


def test_it_renews_the_users_session(auth_client, user, claire):
    created = create_session(auth_client)
    session_id = created["session"]["session_id"]

    response = auth_client.post(f"/session/{session_id}/renew")

    assert response.status_code == 200
    body = response.json()
    assert body["session"] == created["session"]
    assert SESSION_TOKEN.match(body["token"]) and body["token"] != created["token"]
    renew_call = claire.calls("POST", f"/m2m/client_sessions/{session_id}/renew")[0]
    assert renew_call.body == {"external_user_id": local_id(user)}
    assert renew_call.headers["authorization"] == f"Bearer {API_KEY}"


def test_it_rejects_renewing_a_foreign_session_without_calling_upstream(client_for, user, other_user, claire):
    session_id = create_session(client_for(other_user))["session"]["session_id"]
    calls_before = len(claire.calls())

    response = client_for(user).post(f"/session/{session_id}/renew")

    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "session_not_found"
    assert len(claire.calls()) == calls_before


def test_it_answers_404_for_an_unknown_session(auth_client, claire):
    response = auth_client.post(f"/session/{new_id('session')}/renew")

    assert response.status_code == 404
    assert claire.calls() == []


@pytest.mark.parametrize("session_id", ["session-123", "bot-1a2b3c4d-0000-4000-8000-00000000000a", "x" * 80])
def test_it_rejects_a_malformed_session_id(auth_client, claire, session_id):
    renew = auth_client.post(f"/session/{session_id}/renew")
    delete = auth_client.delete(f"/session/{session_id}")

    for response in (renew, delete):
        assert response.status_code == 400
        assert list(response.json()["detail"]["fields"]) == ["session_id"]
    assert claire.calls() == []


def test_it_forgets_a_session_that_upstream_no_longer_has(auth_client, claire):
    session_id = create_session(auth_client)["session"]["session_id"]
    claire.sessions.clear()

    response = auth_client.post(f"/session/{session_id}/renew")

    assert response.status_code == 404
    assert not ClientSession.objects.filter(session_id=session_id).exists()


# --- DELETE /session/{id} --------------------------------------------------------------------


def test_it_deletes_the_users_session(auth_client, claire):
    session_id = create_session(auth_client)["session"]["session_id"]

    response = auth_client.delete(f"/session/{session_id}")

    assert response.status_code == 200
    assert response.json() == {}
    delete_call = claire.calls("DELETE")[0]
    assert (delete_call.path, delete_call.body) == (f"/m2m/client_sessions/{session_id}", None)
    assert delete_call.headers["authorization"] == f"Bearer {API_KEY}"
    assert not ClientSession.objects.filter(session_id=session_id).exists()
    assert session_id not in claire.sessions


def test_it_rejects_deleting_a_foreign_session_without_calling_upstream(client_for, user, other_user, claire):
    session_id = create_session(client_for(other_user))["session"]["session_id"]

    response = client_for(user).delete(f"/session/{session_id}")

    assert response.status_code == 404
    assert claire.calls("DELETE") == []
    assert ClientSession.objects.filter(session_id=session_id, user=other_user).exists()
    assert session_id in claire.sessions


def test_it_does_not_show_a_foreign_session_in_the_list(client_for, user, other_user, claire):
    create_session(client_for(other_user))

    response = client_for(user).get("/session")

    assert response.json() == {"cursor": None, "results": []}


# --- the alias and the schema ----------------------------------------------------------------


def test_it_serves_the_same_endpoints_under_api_v1_org(auth_client, claire):
    session_id = create_session(auth_client)["session"]["session_id"]

    assert auth_client.get("/api/v1/org/bots").status_code == 200
    assert auth_client.get("/api/v1/org/session").json()["results"][0]["session_id"] == session_id
    assert auth_client.post(f"/api/v1/org/session/{session_id}/renew").status_code == 200
    assert auth_client.delete(f"/api/v1/org/session/{session_id}").json() == {}


def test_the_schema_documents_the_root_endpoints(client):

    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    paths = response.json()["paths"]
    assert {"/session", "/session/{session_id}", "/session/{session_id}/renew", "/bots"} <= set(paths)
    assert set(paths["/session"]) == {"get", "post"}
    assert not any(path.startswith("/api/v1/org/") for path in paths)


# --- a session id Claire hands out twice -------------------------------------------------------


def _claire_hands_out(claire, session_id: str) -> None:
    claire.fail("POST", "/m2m/client_sessions", body={
        "session": {"organization_id": ORG_ID, "session_id": session_id, "editable": "all_messages", "meta": {}},
        "token": "session-token-" + "0" * 32,
    })  # fmt: skip


def _assert_the_session_stays_its_owners(auth_client, other_user, claire) -> None:
    taken = new_id("session")
    ClientSession.objects.create(session_id=taken, user=other_user, upstream_user_id=local_id(other_user))
    _claire_hands_out(claire, taken)

    response = auth_client.post(f"/session?bot_id={BOT_A}")

    assert response.status_code == 502, response.content
    assert response.json()["detail"]["code"] == "upstream_bad_response"
    assert list(ClientSession.objects.filter(session_id=taken).values_list("user_id", flat=True)) == [other_user.pk]
    claire.scripts.clear()
    assert auth_client.post(f"/session?bot_id={BOT_A}").status_code == 200  # the connection is still usable


def test_a_session_id_already_recorded_never_changes_hands(auth_client, other_user, claire):
    _assert_the_session_stays_its_owners(auth_client, other_user, claire)  # inside the test's transaction


@pytest.mark.django_db(transaction=True)
def test_a_session_id_already_recorded_never_changes_hands_in_autocommit(auth_client, other_user, claire):
    _assert_the_session_stays_its_owners(auth_client, other_user, claire)  # as served: no outer transaction
