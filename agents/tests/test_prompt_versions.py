"""A prompt's version history, as other users see it: only the bodies written while the prompt was
shared (the one it had when it was shared, and later ones). Its private past stays its owner's —
a secret pasted into a private draft must not surface once the prompt is shared."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as installed_apps

from agents import services
from agents.models import PromptTemplate, PromptTemplateVersion

SECRET = "ghp_private_token_0123456789"


def _bodies(client, prompt) -> list[str]:
    response = client.get(f"/api/v1/prompts/{prompt.pk}/versions")
    assert response.status_code == 200, response.content
    return [row["body"] for row in response.json()["results"]]


def test_it_hides_a_private_draft_from_other_users_once_the_prompt_is_shared(client_for, user, other_user):
    # The attack of issue 33 through the API: a private prompt with a token, edited and shared.
    owner = client_for(other_user)
    created = owner.post("/api/v1/prompts", {"name": "Deploy", "slug": "deploy", "body": f"Use {SECRET}."}, format="json")
    assert created.status_code == 201, created.content
    prompt = PromptTemplate.objects.get(pk=created.json()["id"])
    shared = owner.patch(
        f"/api/v1/prompts/{prompt.pk}", {"body": "Use the vault.", "visibility": "organization"}, format="json"
    )
    assert shared.status_code == 200, shared.content

    seen = client_for(user).get(f"/api/v1/prompts/{prompt.pk}/versions")

    assert seen.status_code == 200
    assert SECRET not in seen.content.decode()
    assert [row["body"] for row in seen.json()["results"]] == ["Use the vault."]


def test_the_owner_still_sees_every_version(client_for, other_user, make_prompt):
    prompt = make_prompt(other_user, body=f"Use {SECRET}.")
    services.prompt_update(prompt=prompt, user=other_user, body="Use the vault.", visibility="organization")

    assert _bodies(client_for(other_user), prompt) == ["Use the vault.", f"Use {SECRET}."]


def test_sharing_without_an_edit_shows_the_current_body_only(client_for, user, other_user, make_prompt):
    prompt = make_prompt(other_user, body=f"Use {SECRET}.")
    services.prompt_update(prompt=prompt, user=other_user, body="Use the vault.")
    services.prompt_update(prompt=prompt, user=other_user, visibility="organization")

    assert _bodies(client_for(user), prompt) == ["Use the vault."]


def test_versions_written_while_private_again_stay_hidden_after_sharing_again(client_for, user, other_user, make_prompt):
    prompt = make_prompt(other_user, body="One.", visibility="organization")
    services.prompt_update(prompt=prompt, user=other_user, visibility="private")
    services.prompt_update(prompt=prompt, user=other_user, body=f"Two {SECRET}.")
    services.prompt_update(prompt=prompt, user=other_user, body="Three.")
    services.prompt_update(prompt=prompt, user=other_user, visibility="organization")
    services.prompt_update(prompt=prompt, user=other_user, body="Four.")

    assert _bodies(client_for(user), prompt) == ["Four.", "Three.", "One."]
    assert _bodies(client_for(other_user), prompt) == ["Four.", "Three.", f"Two {SECRET}.", "One."]


def test_an_organization_prompt_shows_its_history_to_everyone(client_for, user, make_prompt):
    prompt = make_prompt(None, body="First.")
    services.prompt_update(prompt=prompt, user=None, body="Second.")

    assert _bodies(client_for(user), prompt) == ["Second.", "First."]


def test_the_backfill_shows_others_only_the_latest_version_of_shared_prompts(user, other_user, make_prompt):
    shared = make_prompt(other_user, body="Old.", visibility="organization")
    services.prompt_update(prompt=shared, user=other_user, body="New.")
    private = make_prompt(other_user, body="Draft.")
    PromptTemplateVersion.objects.update(shared=True)  # what the backfill starts from: no knowledge

    migration = importlib.import_module("agents.migrations.0008_prompt_version_shared")
    migration.backfill_shared(installed_apps, None)

    flags = dict(PromptTemplateVersion.objects.values_list("body", "shared"))
    assert flags == {"New.": True, "Old.": False, "Draft.": False}
    assert list(services_visible_versions(shared, user)) == ["New."]
    assert not list(services_visible_versions(private, user))


def services_visible_versions(prompt, user):
    from agents.selectors import prompt_version_list

    return prompt_version_list(prompt=prompt, user=user).values_list("body", flat=True)


@pytest.mark.parametrize("visibility", ["private", "organization"])
def test_staff_see_every_version_in_the_admin(staff_client, other_user, make_prompt, visibility):
    prompt = make_prompt(other_user, body=f"Use {SECRET}.")
    services.prompt_update(prompt=prompt, user=other_user, body="Use the vault.", visibility=visibility)

    page = staff_client.get(f"/admin/agents/prompttemplate/{prompt.pk}/change/")

    assert page.status_code == 200
    assert SECRET in page.content.decode() and "Use the vault." in page.content.decode()
