"""Every endpoint, two users: each sees their own plus organization-wide objects and changes only
their own; anything else answers 404."""

from __future__ import annotations

import pytest

from agents import services

RESOURCES = {
    # url, factory, a valid PATCH body
    "llm-configs": ("make_llm_config", {"name": "renamed"}),
    "integrations": ("make_integration", {"name": "renamed"}),
    "prompts": ("make_prompt", {"name": "renamed"}),
    "agents": ("make_agent", {"name": "renamed"}),
}
ALL = [*RESOURCES, "sessions"]


@pytest.fixture
def objects(request, user, other_user, make_session):
    """factory(resource) -> (alice's object, bob's object, an organization-wide object or None)."""

    def make(resource: str):
        if resource == "sessions":
            return make_session(user), make_session(other_user), None
        factory = request.getfixturevalue(RESOURCES[resource][0])
        return factory(user), factory(other_user), factory(None)

    return make


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize("resource", ALL)
def test_it_lists_own_and_organization_objects_only(resource, objects, client_for, user):
    mine, theirs, org = objects(resource)

    ids = _ids(client_for(user).get(f"/api/v1/{resource}"))

    assert mine.pk in ids
    assert theirs.pk not in ids
    if org is not None:
        assert org.pk in ids


@pytest.mark.parametrize("resource", ALL)
def test_it_answers_404_for_another_users_object(resource, objects, client_for, user):
    _, theirs, _ = objects(resource)
    client = client_for(user)
    url = f"/api/v1/{resource}/{theirs.pk}"
    patch = RESOURCES.get(resource, (None, {"title": "renamed"}))[1]

    assert client.get(url).status_code == 404
    assert client.patch(url, patch, format="json").status_code == 404
    assert client.put(url, patch, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    theirs.refresh_from_db()  # still there, unchanged
    assert getattr(theirs, "name", getattr(theirs, "title", None)) != "renamed"


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_it_shows_organization_objects_but_answers_404_to_changing_them(resource, objects, client_for, user):
    _, _, org = objects(resource)
    client = client_for(user)
    url = f"/api/v1/{resource}/{org.pk}"

    assert client.get(url).status_code == 200
    assert client.patch(url, RESOURCES[resource][1], format="json").status_code == 404
    assert client.delete(url).status_code == 404
    org.refresh_from_db()
    assert org.name != "renamed"


@pytest.mark.parametrize("resource", ALL)
def test_it_lets_the_owner_read_change_and_delete(resource, objects, client_for, user):
    mine, _, _ = objects(resource)
    client = client_for(user)
    url = f"/api/v1/{resource}/{mine.pk}"
    patch = RESOURCES.get(resource, (None, {"title": "renamed"}))[1]

    assert client.get(url).status_code == 200
    response = client.patch(url, patch, format="json")
    assert response.status_code == 200, response.content
    assert response.json()[next(iter(patch))] == "renamed"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_it_creates_objects_owned_by_the_caller(auth_client, user):
    response = auth_client.post("/api/v1/prompts", {"name": "Mine", "slug": "mine", "body": "x"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["owner"] == user.pk


def test_it_hides_another_users_private_prompt_from_render_and_versions(client_for, user, other_user, make_prompt):
    theirs = make_prompt(other_user)
    client = client_for(user)

    render = client.post(f"/api/v1/prompts/{theirs.pk}/render", {"variables": {"name": "x"}}, format="json")
    assert render.status_code == 404
    assert client.get(f"/api/v1/prompts/{theirs.pk}/versions").status_code == 404


def test_it_shares_organization_visible_prompts_read_only(client_for, user, other_user, make_prompt):
    shared = make_prompt(other_user, visibility="organization")
    client = client_for(user)

    assert client.get(f"/api/v1/prompts/{shared.pk}").status_code == 200
    rendered = client.post(f"/api/v1/prompts/{shared.pk}/render", {"variables": {"name": "Ann"}}, format="json")
    assert rendered.status_code == 200
    assert rendered.json()["rendered"] == "Hello Ann."
    assert client.patch(f"/api/v1/prompts/{shared.pk}", {"name": "renamed"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/prompts/{shared.pk}").status_code == 404


def test_it_hides_another_users_session_messages(client_for, user, other_user, make_session):
    theirs = make_session(other_user)
    services.message_append(session=theirs, role="user", content="secret plans")

    response = client_for(user).get(f"/api/v1/sessions/{theirs.pk}/messages")

    assert response.status_code == 404
    assert "secret plans" not in response.content.decode()


def test_it_refuses_to_start_a_session_with_another_users_agent(client_for, user, other_user, make_agent):
    theirs = make_agent(other_user)

    response = client_for(user).post("/api/v1/sessions", {"agent": theirs.pk}, format="json")

    assert response.status_code == 400
    assert "agent" in response.json()["detail"]["fields"]


@pytest.mark.parametrize(
    "field, factory",
    [("system_prompt", "make_prompt"), ("llm_config", "make_llm_config")],
)
def test_it_refuses_an_agent_referencing_another_users_objects(field, factory, request, client_for, user, other_user):
    theirs = request.getfixturevalue(factory)(other_user)

    response = client_for(user).post(
        "/api/v1/agents", {"name": "A", "slug": "a-new-agent", field: theirs.pk}, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["detail"]["fields"]


def test_it_refuses_an_agent_using_another_users_integration(client_for, user, other_user, make_integration):
    theirs = make_integration(other_user)

    response = client_for(user).post(
        "/api/v1/agents", {"name": "A", "slug": "a-new-agent", "integrations": [theirs.pk]}, format="json"
    )

    assert response.status_code == 400
    assert "integrations" in response.json()["detail"]["fields"]


@pytest.mark.parametrize("resource", ALL)
def test_it_requires_authentication(resource, api_client, db):
    assert api_client.get(f"/api/v1/{resource}").status_code == 401
