"""Erasure reaches every store: every table that can point at a user, every directory Conduit writes,
the audit logs' copied text, and Claire; and it is refused under legal hold."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import models
from django.test import Client

from accounts.models import User
from agents.models import AIAgent, Message, PromptTemplate, UserAgentSession
from audit.models import AuditEvent
from conftest import TEST_PASSWORD
from lifecycle.erase import ErasureRefused, user_erase
from lifecycle.tests.conftest import SECRET_ACCESS_TOKEN, SECRET_API_KEY
from orgproxy.models import ClientSession
from orgproxy.tests.fake_claire import FakeClaire
from usage.models import UsageCounter
from usage.services import usage_add

pytestmark = pytest.mark.django_db


def user_links() -> list[tuple[type[models.Model], models.Field]]:
    """Every (model, field) that can point at a user: found from the models, so a table added later is
    in this list (and the seed must give it a row) without anyone remembering to add it."""
    links = []
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is User:
                links.append((model, field))
    return links


def rows_naming(needles: list[str]) -> list[str]:
    """Every row of every table whose values contain one of the needles (case-insensitive)."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        for row in model._base_manager.values():
            text = json.dumps(row, default=str).lower()
            found += [f"{model._meta.label} {row.get('id', row.get('pk'))}" for n in needles if n.lower() in text]
    return found


@pytest.fixture
def claire(settings):
    with FakeClaire() as fake:
        settings.CLAIRE_BASE_URL = fake.base_url
        settings.CLAIRE_API_KEY = fake.api_key
        settings.CLAIRE_CONNECT_TIMEOUT = settings.CLAIRE_READ_TIMEOUT = 2.0
        yield fake


def test_erasure_leaves_nothing_that_names_the_user_in_any_table_or_directory(seed, claire, exports_dir, make_user):
    seeded = seed(staff=make_user(email="admin@example.com", name="Admin", is_staff=True))
    user = seeded.user
    claire_session = claire.add_session(user=f"conduit|{user.pk}", session_id=ClientSession.objects.get(user=user).session_id)
    browser = Client()
    browser.force_login(user)
    links = user_links()
    unseeded = [f"{m._meta.label}.{f.name}" for m, f in links if not m._base_manager.filter(**{f.attname: user.pk}).exists()]
    assert unseeded == [], f"the seed must give every table that can point at a user a row of this user: {unseeded}"
    needles = [user.email, user.name]
    assert rows_naming(needles), "the seed names the user somewhere"
    bystander = make_user(email="bystander@example.com", name="Bystander")

    marker = user_erase(user=user)

    left = [f"{m._meta.label}.{f.name}" for m, f in links if m._base_manager.filter(**{f.attname: user.pk}).exists()]
    assert left == []
    assert rows_naming(needles) == []
    assert not seeded.workspace.exists() and not seeded.export_file.exists()
    assert list(exports_dir.iterdir()) == []
    assert not any(s.get_decoded().get("_auth_user_id") == str(user.pk) for s in Session.objects.all())
    assert User.objects.filter(pk=bystander.pk).exists()
    # The numbers stay, under the marker: usage counters and audit rows.
    counter = UsageCounter.objects.get(erased_as=marker)
    assert (counter.input_tokens, counter.output_tokens) == (10, 5)
    assert UsageCounter.objects.get(user__isnull=True, erased_as="").input_tokens == 10  # the organization's
    usage_add(user_id=bystander.pk, usage={"input_tokens": 3}, cost=None)  # the organization's row still counts alone
    assert UsageCounter.objects.get(user__isnull=True, erased_as="").input_tokens == 13
    assert UsageCounter.objects.get(erased_as=marker).input_tokens == 10
    assert AuditEvent.objects.filter(actor_email=marker, kind=AuditEvent.Kind.TOOL_CALL).count() == 1
    assert AuditEvent.objects.filter(actor_email=marker, kind=AuditEvent.Kind.LOGIN_FAILED).count() == 1
    erased = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_ERASED)
    assert erased.input["erased"] == marker and erased.input["sessions"] == 2 and erased.actor is None
    # Claire: the session is deleted there, through the organization server's client.
    assert claire.sessions == {}
    assert [call.path for call in claire.calls("DELETE")] == [f"/m2m/client_sessions/{claire_session}"]


def test_sessions_claire_lists_but_this_server_never_recorded_are_deleted_there_too(make_user, claire):
    user = make_user()
    unrecorded = claire.add_session(user=f"conduit|{user.pk}")
    someone_elses = claire.add_session(user="conduit|999999")
    user_erase(user=user)
    assert unrecorded not in claire.sessions and someone_elses in claire.sessions


def test_a_claire_failure_stops_the_erasure_before_anything_changes(seed, claire):
    seeded = seed()
    session_id = ClientSession.objects.get(user=seeded.user).session_id
    claire.add_session(user=f"conduit|{seeded.user.pk}", session_id=session_id)
    claire.fail("DELETE", f"/m2m/client_sessions/{session_id}", status=500)
    with pytest.raises(ErasureRefused) as refused:
        user_erase(user=seeded.user)
    assert refused.value.status == 502
    seeded.user.refresh_from_db()
    assert seeded.user.is_active and UserAgentSession.objects.filter(owner=seeded.user).count() == 2
    assert seeded.workspace.exists()


def test_claire_sessions_without_claire_configured_refuse_the_erasure(seed, settings):
    settings.CLAIRE_API_KEY = ""
    seeded = seed()
    with pytest.raises(ErasureRefused):
        user_erase(user=seeded.user)
    assert User.objects.filter(pk=seeded.user.pk, is_active=True).exists()


def test_a_user_on_legal_hold_is_refused_with_409_and_nothing_changes(seed, client_for):
    seeded = seed(legal_hold=True)
    answer = client_for(seeded.user).delete("/api/v1/auth/me", {"current_password": TEST_PASSWORD}, format="json")
    assert answer.status_code == 409 and answer.json()["detail"]["code"] == "legal_hold"
    assert User.objects.filter(pk=seeded.user.pk, is_active=True).exists()
    assert Message.objects.filter(session__owner=seeded.user).count() == 3


def test_delete_me_needs_the_current_password(make_user, client_for):
    user = make_user()
    client = client_for(user)
    wrong = client.delete("/api/v1/auth/me", {"current_password": "not it"}, format="json")
    assert wrong.status_code == 400 and "current_password" in wrong.json()["detail"]["fields"]
    missing = client.delete("/api/v1/auth/me", {}, format="json")
    assert missing.status_code == 400
    assert User.objects.filter(pk=user.pk).exists()
    assert client.delete("/api/v1/auth/me", {"current_password": TEST_PASSWORD}, format="json").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_user_without_a_password_confirms_with_their_email(make_user, client_for):
    user = make_user(password=None, provider=User.Provider.OIDC, external_id="sub-1")
    client = client_for(user)
    assert client.delete("/api/v1/auth/me", {"email": "someone@else.example"}, format="json").status_code == 400
    assert client.delete("/api/v1/auth/me", {"email": user.email.upper()}, format="json").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()


def test_delete_me_needs_authentication(api_client):
    assert api_client.delete("/api/v1/auth/me", {}, format="json").status_code == 401


def test_others_agents_using_a_shared_prompt_of_theirs_are_told_it_is_gone(seed, make_user, claire):
    seeded = seed()
    prompt = PromptTemplate.objects.get(owner=seeded.user)
    other = make_user()
    theirs = AIAgent.objects.create(name="Theirs", slug="theirs", owner=other, system_prompt=prompt)
    user_erase(user=seeded.user)
    theirs.refresh_from_db()
    assert theirs.system_prompt_id is None and theirs.system_prompt_lost == "My prompt"
    assert not AIAgent.objects.filter(owner__isnull=True).exclude(pk=seeded.org_agent.pk).exists()


def test_nothing_secret_or_personal_is_left_in_the_audit_logs_own_copies(seed, claire):
    # django-auditlog copies fields into `changes` and `object_repr` (the user's email as the owner of
    # their objects, the prompt's text): after erasure they say what changed, not what it was.
    seeded = seed()
    from auditlog.models import LogEntry

    assert LogEntry.objects.filter(object_repr__icontains="my prompt").exists()
    user_erase(user=seeded.user)
    dump = json.dumps(list(LogEntry.objects.values()), default=str)
    for needle in ("Erin Erasable", "erin.erasable@example.com", "Answer as", SECRET_API_KEY, SECRET_ACCESS_TOKEN):
        assert needle.lower() not in dump.lower()


def test_staff_erase_a_user_from_the_admin_after_confirming(seed, staff_client):
    seeded = seed()
    seeded.user.claire_sessions.all().delete()
    form = {"action": "erase_users", "_selected_action": [seeded.user.pk]}
    confirm = staff_client.post("/admin/accounts/user/", form)
    assert confirm.status_code == 200 and b"Yes, erase them" in confirm.content
    assert User.objects.filter(pk=seeded.user.pk).exists()
    done = staff_client.post("/admin/accounts/user/", {**form, "erase_confirmed": "yes"}, follow=True)
    assert done.status_code == 200 and b"Erased a user" in done.content
    assert not User.objects.filter(pk=seeded.user.pk).exists()
    erased = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_ERASED)
    assert erased.actor_id == staff_client.staff.pk and erased.source == "admin"


def test_the_admin_refuses_to_erase_a_user_on_hold(seed, staff_client):
    seeded = seed(legal_hold=True)
    form = {"action": "erase_users", "_selected_action": [seeded.user.pk], "erase_confirmed": "yes"}
    answer = staff_client.post("/admin/accounts/user/", form, follow=True)
    assert b"legal hold" in answer.content
    assert User.objects.filter(pk=seeded.user.pk, is_active=True).exists()


def test_the_user_pages_delete_button_erases_after_the_same_confirmation(seed, staff_client):
    seeded = seed()
    seeded.user.claire_sessions.all().delete()
    url = f"/admin/accounts/user/{seeded.user.pk}/delete/"
    confirm = staff_client.get(url)
    assert confirm.status_code == 200 and b"Yes, erase them" in confirm.content
    assert f'action="{url}"'.encode() in confirm.content
    assert User.objects.filter(pk=seeded.user.pk).exists()
    done = staff_client.post(url, {"erase_confirmed": "yes"}, follow=True)
    assert done.status_code == 200 and b"Erased a user" in done.content
    assert not User.objects.filter(pk=seeded.user.pk).exists()
    assert not seeded.export_file.exists()  # what a plain delete would have left on disk
    erased = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_ERASED)
    assert erased.actor_id == staff_client.staff.pk and erased.source == "admin"


def test_django_admins_own_delete_cant_remove_a_user_on_legal_hold(seed, staff_client):
    # Attack: staff sidestepping erasure's checks with Django's Delete (the user's page, or the list's
    # "Delete selected" action), which deleted the row and cascaded, legal hold or not.
    seeded = seed(legal_hold=True)
    answer = staff_client.post(f"/admin/accounts/user/{seeded.user.pk}/delete/", {"post": "yes"}, follow=True)
    assert answer.status_code == 200
    bulk = staff_client.post(
        "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [seeded.user.pk], "post": "yes"}, follow=True
    )  # fmt: skip
    assert bulk.status_code == 200
    assert b"delete_selected" not in staff_client.get("/admin/accounts/user/").content
    confirmed = staff_client.post(f"/admin/accounts/user/{seeded.user.pk}/delete/", {"erase_confirmed": "yes"}, follow=True)
    assert b"legal hold" in confirmed.content
    assert User.objects.filter(pk=seeded.user.pk, is_active=True).exists()
    assert seeded.session.__class__.objects.filter(pk=seeded.session.pk).exists()


def test_guesses_at_the_password_to_erase_are_throttled_like_logins(make_user, client_for):
    # Attack: a stolen access token guessing the password to erase the account (and its evidence).
    user = make_user()
    client = client_for(user)
    guesses = [
        client.delete("/api/v1/auth/me", {"current_password": f"guess {n}"}, format="json", REMOTE_ADDR=f"10.0.5.{n}")
        for n in range(5)
    ]
    assert [g.status_code for g in guesses] == [400] * 5
    blocked = client.delete("/api/v1/auth/me", {"current_password": TEST_PASSWORD}, format="json", REMOTE_ADDR="10.0.6.1")
    assert blocked.status_code == 429 and blocked.json()["detail"]["code"] == "throttled"
    assert User.objects.filter(pk=user.pk, is_active=True).exists()
    assert client.get("/api/v1/auth/me").status_code == 200  # reading the account is not throttled with it


def test_an_agent_of_theirs_in_another_users_session_refuses_the_erasure_before_anything_changes(seed, make_user, claire):
    seeded = seed()
    other = make_user()
    UserAgentSession.objects.create(owner=other, agent=seeded.agent, title="made by staff")
    with pytest.raises(ErasureRefused) as refused:
        user_erase(user=seeded.user)
    assert (refused.value.status, refused.value.code) == (409, "agent_in_use")
    assert User.objects.filter(pk=seeded.user.pk, is_active=True).exists() and claire.calls("DELETE") == []
