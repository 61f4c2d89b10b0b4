"""Exports: started over the API, built on a thread of their own into a zip on disk, downloaded by their
owner only, holding every kind of the user's data and never a secret; deleted when they expire."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from lifecycle.export import exports_wait
from lifecycle.models import Export
from lifecycle.tests.conftest import SECRET_ACCESS_TOKEN, SECRET_API_KEY, SECRET_CREDENTIAL

pytestmark = pytest.mark.django_db(transaction=True)


def start_and_wait(client) -> dict:
    answer = client.post("/api/v1/me/export", format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["state"] == "pending"
    exports_wait()
    return answer.json()


def download(client, url: str) -> zipfile.ZipFile:
    answer = client.get(url)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert "attachment" in answer["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content)))


def test_an_export_holds_everything_of_the_user_and_no_secret(seed, client_for):
    seeded = seed()
    (seeded.workspace / "link").symlink_to("/etc/hostname")  # never followed
    client = client_for(seeded.user)
    started = start_and_wait(client)
    state = client.get(started["url"])
    archive = download(client, started["url"])
    names = set(archive.namelist())
    session_id = seeded.session.pk
    assert {"README.txt", "profile.json", f"sessions/{session_id}.json", f"sessions/{session_id}.md",
            f"files/{session_id}/notes.txt", f"files/{session_id}/sub/deep.txt", "prompts.json", "agents.json",
            "llm_configs.json", "integrations.json", "connections.json", "claire_sessions.json", "usage.json",
            "api_keys.json", "audit.json"} <= names  # fmt: skip
    assert f"files/{session_id}/link" not in names
    profile = json.loads(archive.read("profile.json"))
    assert profile["email"] == seeded.user.email and "password" not in profile
    conversation = json.loads(archive.read(f"sessions/{session_id}.json"))
    assert conversation["title"] == "About my holiday" and [m["seq"] for m in conversation["messages"]] == [1, 2]
    markdown = archive.read(f"sessions/{session_id}.md").decode()
    assert "# About my holiday" in markdown and "Hello, I am Erin Erasable" in markdown and "read_file" in markdown
    assert archive.read(f"files/{session_id}/notes.txt") == b"notes of Erin Erasable"
    prompts = json.loads(archive.read("prompts.json"))
    assert prompts[0]["name"] == "My prompt" and prompts[0]["versions"][0]["body"] == "Answer as Erin Erasable."
    assert json.loads(archive.read("usage.json"))[0]["input_tokens"] == 10
    keys = json.loads(archive.read("api_keys.json"))
    assert [k["name"] for k in keys] == ["laptop"] and "prefix" not in keys[0] and "key_hash" not in keys[0]
    audit = json.loads(archive.read("audit.json"))
    assert {row["log"] for row in audit} == {"audit_event", "model_change"}
    everything = b"".join(archive.read(name) for name in names)
    for secret in (SECRET_API_KEY, SECRET_CREDENTIAL, SECRET_ACCESS_TOKEN):
        assert secret.encode() not in everything
    assert Export.objects.get(pk=started["id"]).state == "ready" and state["Content-Type"] == "application/zip"


def test_the_state_is_shown_until_the_export_is_ready(user, auth_client):
    export = Export.objects.create(user=user, expires_at=timezone.now() + timedelta(hours=1))
    answer = auth_client.get(f"/api/v1/me/export/{export.pk}")
    assert answer.status_code == 200 and answer.json()["state"] == "pending"


def test_only_the_owner_sees_an_export(seed, client_for, other_user, api_client):
    seeded = seed()
    started = start_and_wait(client_for(seeded.user))
    assert client_for(other_user).get(started["url"]).status_code == 404
    assert api_client.get(started["url"]).status_code == 401
    assert client_for(other_user).get("/api/v1/me/export/not-a-uuid").status_code == 404


def test_one_export_at_a_time_and_a_few_a_day(user, auth_client, settings):
    settings.EXPORTS_PER_DAY = 2
    Export.objects.create(user=user, expires_at=timezone.now() + timedelta(hours=1))  # pending
    busy = auth_client.post("/api/v1/me/export", format="json")
    assert busy.status_code == 409 and busy.json()["detail"]["code"] == "export_running"
    Export.objects.update(state="ready")
    start_and_wait(auth_client)
    limited = auth_client.post("/api/v1/me/export", format="json")
    assert limited.status_code == 429 and limited.json()["detail"]["code"] == "export_limit"


def test_an_export_left_pending_by_a_dead_process_does_not_block_a_new_one(user, auth_client):
    Export.objects.create(user=user, expires_at=timezone.now() + timedelta(hours=1))
    Export.objects.update(created_at=timezone.now() - timedelta(hours=2))
    start_and_wait(auth_client)
    assert sorted(Export.objects.values_list("state", flat=True)) == ["failed", "ready"]


def test_an_expired_export_is_gone(user, auth_client, exports_dir):
    started = start_and_wait(auth_client)
    export = Export.objects.get(pk=started["id"])
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert auth_client.get(started["url"]).status_code == 404
    from lifecycle.purge import purge_expired

    assert purge_expired()["exports"] == 1
    assert os.listdir(exports_dir) == []


def test_staff_export_any_user_from_the_admin_and_download_it(seed, staff_client):
    seeded = seed()
    answer = staff_client.post("/admin/accounts/user/", {"action": "export_data", "_selected_action": [seeded.user.pk]})
    assert answer.status_code == 302
    exports_wait()
    export = Export.objects.get(user=seeded.user, requested_by=staff_client.staff)
    assert export.state == "ready" and export.requested_by == staff_client.staff
    listing = staff_client.get("/admin/lifecycle/export/")
    assert f"/admin/lifecycle/export/{export.pk}/download/".encode() in listing.content
    zipped = staff_client.get(f"/admin/lifecycle/export/{export.pk}/download/")
    assert zipped.status_code == 200
    assert "profile.json" in zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))).namelist()
    # Staff reading a user's data leaves a trace that outlives the export (it expires, its row goes).
    trail = AuditEvent.objects.filter(kind=AuditEvent.Kind.DATA_EXPORT).order_by("pk")
    assert [(e.actor_id, e.source, e.input["step"], e.input["user_id"], e.input["export_id"]) for e in trail] == [
        (staff_client.staff.pk, "admin", "started", seeded.user.pk, str(export.pk)),
        (staff_client.staff.pk, "admin", "downloaded", seeded.user.pk, str(export.pk)),
    ]


def test_an_export_deleted_while_it_was_built_leaves_no_file(user, exports_dir, monkeypatch):
    from lifecycle import export as export_module

    export = Export.objects.create(user=user, expires_at=timezone.now() + timedelta(hours=1))
    real = export_module._write_all

    def erased_meanwhile(archive, owner):
        real(archive, owner)
        Export.objects.filter(pk=export.pk).delete()

    monkeypatch.setattr(export_module, "_write_all", erased_meanwhile)
    assert export_module.export_build(export.pk) is None
    assert os.listdir(exports_dir) == []


def test_a_half_written_export_is_removed_with_its_row(user, exports_dir):
    from lifecycle.export import export_delete

    export = Export.objects.create(user=user, state="running", expires_at=timezone.now() + timedelta(hours=1))
    (exports_dir / f"{export.pk}.zip.part").write_bytes(b"PK")
    export_delete(export)
    assert os.listdir(exports_dir) == [] and not Export.objects.exists()
