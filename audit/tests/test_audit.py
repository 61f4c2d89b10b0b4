"""The audit log: model changes by REST and admin (django-auditlog, secrets masked) and failed logins —
append-only, read-only in admin. Tool calls: test_tool_calls_record.py."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry

from agents.models import AIAgent, LLMProviderConfig
from assistant.tests.conftest import token_for
from audit.models import AuditEvent

SECRET_KEY_VALUE = "sk-ant-api03-very-secret-audit-test-key-0000"


def all_audit_text() -> str:
    entries = [json.dumps([e.changes, e.changes_text, e.serialized_data, e.object_repr, e.additional_data], default=str)
               for e in LogEntry.objects.all()]  # fmt: skip
    events = [json.dumps(list(AuditEvent.objects.values()), default=str)]
    return "\n".join(entries + events)


@pytest.mark.django_db
def test_an_api_edit_is_audited_with_its_actor_and_never_the_key(api_client, user):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    created = api_client.post("/api/v1/llm-configs", {"name": "Mine", "model": "claude-x", "api_key": SECRET_KEY_VALUE},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    config_id = created.json()["id"]
    changed = api_client.patch(f"/api/v1/llm-configs/{config_id}", {"api_key": SECRET_KEY_VALUE + "-2", "name": "Renamed"},
                               format="json")  # fmt: skip
    assert changed.status_code == 200, changed.content

    entries = LogEntry.objects.get_for_objects(LLMProviderConfig.objects.filter(pk=config_id)).order_by("timestamp")
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert all(e.actor == user for e in entries)
    update = entries[1].changes_dict
    assert update["name"] == ["Mine", "Renamed"]
    assert update["api_key"] == ["[secret]", "[secret]"]  # that it changed, not what to
    assert SECRET_KEY_VALUE not in all_audit_text() and SECRET_KEY_VALUE[-12:] not in all_audit_text()


@pytest.mark.django_db
def test_an_admin_edit_is_audited_with_its_actor(client, make_user):
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    agent = AIAgent.objects.create(name="Old", slug="old", system_prompt_text="Be brief.")
    response = client.post(f"/admin/agents/aiagent/{agent.pk}/change/", {
        "name": "New name", "slug": "old", "description": "", "category": "", "tags": "[]", "is_active": "on",
        "system_prompt": "", "system_prompt_text": "Be brief.", "llm_config": "", "max_turns": "20",
        "custom_properties_schema": "{}",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = LogEntry.objects.get_for_object(agent).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == staff and entry.changes_dict["name"] == ["Old", "New name"]
    # Staff read it in admin, and can't change or delete it.
    assert client.get("/admin/auditlog/logentry/").status_code == 200
    assert client.get(f"/admin/auditlog/logentry/{entry.pk}/delete/").status_code == 403
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403


@pytest.mark.django_db
def test_failed_logins_are_recorded_with_the_ip_never_the_password(api_client, user):
    for _ in range(3):
        response = api_client.post("/api/v1/auth/login", {"email": user.email, "password": "wrong-guess-123456"},
                                   format="json", REMOTE_ADDR="203.0.113.9")  # fmt: skip
        assert response.status_code == 401
    events = list(AuditEvent.objects.filter(kind="login_failed"))
    assert len(events) == 3
    assert {(e.actor_email, e.ip, e.source) for e in events} == {(user.email, "203.0.113.9", "api")}
    assert "wrong-guess-123456" not in all_audit_text()
    with pytest.raises(ValueError):
        events[0].save()  # append-only


@pytest.mark.django_db
def test_api_keys_created_and_revoked_are_audited_never_their_secret(api_client, user):
    from accounts.models import ApiKey

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    created = api_client.post("/api/v1/auth/api-keys", {"name": "laptop"}, format="json")
    assert created.status_code == 201, created.content
    key, key_id = created.json()["key"], created.json()["id"]
    assert api_client.delete(f"/api/v1/auth/api-keys/{key_id}").status_code == 204

    entries = LogEntry.objects.get_for_objects(ApiKey.objects.filter(pk=key_id)).order_by("timestamp", "pk")
    assert [(e.action, e.actor_id) for e in entries] == [(LogEntry.Action.CREATE, user.pk), (LogEntry.Action.UPDATE, user.pk)]
    assert set(entries[1].changes_dict) == {"revoked_at"}
    stored_hash = ApiKey.objects.get(pk=key_id).key_hash
    text = all_audit_text()
    assert key not in text and key[4:] not in text and stored_hash not in text


@pytest.mark.django_db
def test_a_request_gives_its_actor_and_address_without_reconnecting_signal_receivers(api_client, user):
    from django.db.models.signals import pre_save

    # auditlog's own context manager connected a receiver per request and disconnected it after:
    # each time taking the signal's lock and emptying its receiver cache for every model's saves.
    pre_save.has_listeners(AIAgent)  # fills the cache for AIAgent
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}", REMOTE_ADDR="198.51.100.7")
    created = api_client.post("/api/v1/llm-configs", {"name": "Mine", "model": "claude-x", "api_key": SECRET_KEY_VALUE},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content

    assert AIAgent in pre_save.sender_receivers_cache
    entry = LogEntry.objects.get_for_objects(LLMProviderConfig.objects.filter(pk=created.json()["id"])).get()
    assert (entry.actor, entry.actor_email, entry.remote_addr) == (user, user.email, "198.51.100.7")
    # and after the request, a change made outside any request has no actor
    LLMProviderConfig.objects.filter(pk=created.json()["id"]).get().delete()
    deleted = LogEntry.objects.filter(action=LogEntry.Action.DELETE).get()
    assert (deleted.actor, deleted.remote_addr) == (None, None)


@pytest.mark.django_db
def test_a_new_users_entry_lists_their_own_fields_not_reverse_relations_nor_secrets(make_user):
    from accounts.models import User

    user = make_user(email="claire@example.com", name="Claire")
    entry = LogEntry.objects.get_for_object(user).get(action=LogEntry.Action.CREATE)
    concrete = {field.name for field in User._meta.concrete_fields}
    assert set(entry.changes_dict) <= concrete - {"password", "last_login"}
    assert {"email", "name"} <= set(entry.changes_dict)
    reverse = {field.name for field in User._meta.get_fields() if field.auto_created and not field.concrete}
    assert reverse and not reverse & set(entry.changes_dict)  # sessions, prompts, agents … are not "changes"
    # Every audited model: a created object's entry names only its own columns.
    from auditlog.registry import auditlog as registry

    for model in registry.get_models():
        include = registry.get_model_fields(model)["include_fields"]
        assert set(include) <= {field.name for field in model._meta.concrete_fields}, model
