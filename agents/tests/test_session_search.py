"""`GET /api/v1/sessions?search=…`: the chat page's search across sessions, in titles and in the text of
their messages, the user's own sessions only, with a bounded pattern."""

from __future__ import annotations

import pytest

from agents.models import Message

pytestmark = pytest.mark.django_db


def add_message(session, seq: int, role: str, text: str) -> None:
    Message.objects.create(session=session, seq=seq, role=role, content=[{"type": "text", "text": text}])


def found(client, search: str) -> list[int]:
    response = client.get("/api/v1/sessions", {"search": search})
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


def test_it_finds_sessions_by_title_and_by_message_text(auth_client, user, make_session):
    by_title = make_session(user, title="Quarterly numbers")
    by_text = make_session(user, title="Other")
    add_message(by_text, 1, "user", 'Where is the "Café Noir" invoice?')
    add_message(by_text, 2, "assistant", "In the QUARTERLY folder, with a back\\slash.")
    neither = make_session(user, title="Lunch")
    add_message(neither, 1, "user", "Nothing to see")

    assert found(auth_client, "quarterly") == sorted([by_title.pk, by_text.pk])
    assert found(auth_client, "café noir") == [by_text.pk]
    assert found(auth_client, '"Café Noir"') == [by_text.pk]  # quotes and non-ASCII as typed
    assert found(auth_client, "back\\slash") == [by_text.pk]
    assert found(auth_client, "  invoice ") == [by_text.pk]
    assert found(auth_client, "absent words") == []
    # Each session once, however many of its messages match; the agent's name and the date come along.
    rows = auth_client.get("/api/v1/sessions", {"search": "quarterly"}).json()["results"]
    assert len(rows) == 2 and all(row["agent_detail"]["name"] and row["updated_at"] for row in rows)


def test_it_searches_only_the_users_own_sessions(auth_client, user, other_user, make_session):
    theirs = make_session(other_user, title="Secret plan")
    add_message(theirs, 1, "user", "the secret plan in detail")
    assert found(auth_client, "secret") == []


def test_it_refuses_a_search_too_long_with_a_field_message(auth_client):
    response = auth_client.get("/api/v1/sessions", {"search": "x" * 101})
    assert response.status_code == 400
    assert response.json()["detail"]["fields"] == {"search": ["At most 100 characters."]}
