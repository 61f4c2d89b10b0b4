"""A session's workspace files over REST: upload (limits, names), list, delete, ownership; the
workspace goes with its session; only staff give agents workspace tools."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents import services
from agents.models import AIAgent, UserAgentSession
from agents.workspaces import file_name_clean, workspace_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def files_agent(db) -> AIAgent:
    return services.agent_create(
        owner=None, name="Files", slug="files", system_prompt_text="You work with files.",
        workspace_tools=AIAgent.WorkspaceTools.FILES,
    )  # fmt: skip


@pytest.fixture
def session(user, files_agent) -> UserAgentSession:
    return services.session_create(owner=user, agent=files_agent, title="Files")


def url(session_id, name: str | None = None) -> str:
    return f"/api/v1/sessions/{session_id}/files" + (f"/{name}" if name is not None else "")


def upload(client, session_id, name: str, content: bytes):
    return client.post(url(session_id), {"file": SimpleUploadedFile(name, content)}, format="multipart")


def test_upload_list_and_delete(auth_client, session):
    created = upload(auth_client, session.pk, "report.csv", b"a,b\n1,2\n")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "report.csv" and created.json()["size"] == 8
    assert (workspace_path(session.pk) / "report.csv").read_bytes() == b"a,b\n1,2\n"

    listed = auth_client.get(url(session.pk))
    assert listed.status_code == 200
    assert [(f["name"], f["size"]) for f in listed.json()] == [("report.csv", 8)]
    assert listed.json()[0]["modified"]

    assert auth_client.delete(url(session.pk, "report.csv")).status_code == 204
    assert auth_client.get(url(session.pk)).json() == []
    missing = auth_client.delete(url(session.pk, "report.csv"))
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"


def test_a_second_upload_of_a_name_gets_a_unique_name(auth_client, session):
    names = [upload(auth_client, session.pk, "data.txt", b"x").json()["name"] for _ in range(3)]
    assert names == ["data.txt", "data (1).txt", "data (2).txt"]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.bat", "evil.bat"),
        (".bashrc", "bashrc"),
        ("...", None),
        ("..", None),
        ("a\x01b\x7f.txt", "ab.txt"),
        ("x" * 300 + ".txt", "x" * 116 + ".txt"),
    ],
)
def test_names_are_sanitized(sent, stored):
    from django.core.exceptions import ValidationError

    if stored is None:
        with pytest.raises(ValidationError):
            file_name_clean(sent)
    else:
        assert file_name_clean(sent) == stored


def test_a_nul_in_a_name_is_refused():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="NUL"):
        file_name_clean("a\x00.txt")


def test_an_upload_with_a_path_lands_in_the_workspace_under_its_last_part(auth_client, session, tmp_path):
    response = upload(auth_client, session.pk, "../../escape.txt", b"hi")
    assert response.status_code == 201 and response.json()["name"] == "escape.txt"
    assert (workspace_path(session.pk) / "escape.txt").exists()
    assert not (workspace_path(session.pk).parent / "escape.txt").exists()


def test_an_upload_with_only_dots_as_name_is_a_400_on_the_field(auth_client, session):
    # Sent raw: Django's multipart parser keeps only the name's last part; "..." leaves nothing usable.
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="..."\r\n'
            b"Content-Type: application/octet-stream\r\n\r\nx\r\n--B--\r\n")  # fmt: skip
    response = auth_client.generic("POST", url(session.pk), data=body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400, response.content
    body = response.json()["detail"]
    assert body["code"] == "invalid" and "file" in body["fields"]


def test_a_file_over_the_size_limit_is_a_413(auth_client, session, settings):
    settings.WORKSPACE_MAX_FILE_BYTES = 1000
    response = upload(auth_client, session.pk, "big.bin", b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["detail"]["code"] == "too_large" and "1000 bytes" in response.json()["detail"]["message"]
    assert auth_client.get(url(session.pk)).json() == []
    assert upload(auth_client, session.pk, "ok.bin", b"x" * 1000).status_code == 201


def test_a_body_announcing_more_than_the_limit_is_refused_before_it_is_read(auth_client, session, settings):
    settings.WORKSPACE_MAX_FILE_BYTES = 1000
    response = auth_client.generic(
        "POST", url(session.pk), data=b"", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 * 1024 * 1024),
    )  # fmt: skip
    assert response.status_code == 413 and response.json()["detail"]["code"] == "too_large"


def test_the_session_quota_is_a_413_with_what_is_left(auth_client, session, settings):
    settings.WORKSPACE_QUOTA_BYTES = 2500
    assert upload(auth_client, session.pk, "one.bin", b"x" * 1000).status_code == 201
    assert upload(auth_client, session.pk, "two.bin", b"x" * 1000).status_code == 201
    response = upload(auth_client, session.pk, "three.bin", b"x" * 1000)
    assert response.status_code == 413
    assert "quota of 2500 bytes" in response.json()["detail"]["message"]
    assert "500 bytes left" in response.json()["detail"]["message"]
    assert sorted(f["name"] for f in auth_client.get(url(session.pk)).json()) == ["one.bin", "two.bin"]


def test_too_many_files_is_a_400(auth_client, session, settings):
    settings.WORKSPACE_MAX_FILES = 2
    for name in ("a", "b"):
        assert upload(auth_client, session.pk, name, b"x").status_code == 201
    response = upload(auth_client, session.pk, "c", b"x")
    assert response.status_code == 400 and "file" in response.json()["detail"]["fields"]


def test_a_request_without_a_file_part_is_a_400_on_the_field(auth_client, session):
    response = auth_client.post(url(session.pk), {"other": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["detail"]["fields"]


def test_a_session_of_an_agent_without_workspace_tools_takes_no_uploads(auth_client, user):
    plain = services.agent_create(owner=None, name="Plain", slug="plain", system_prompt_text="Hi.")
    session = services.session_create(owner=user, agent=plain)
    response = upload(auth_client, session.pk, "a.txt", b"x")
    assert response.status_code == 400 and response.json()["detail"]["code"] == "no_workspace"
    assert not workspace_path(session.pk).exists()


def test_only_the_sessions_owner_reaches_its_files(auth_client, client_for, other_user, session):
    assert upload(auth_client, session.pk, "mine.txt", b"secret").status_code == 201
    intruder = client_for(other_user)
    for response in (
        intruder.get(url(session.pk)),
        upload(intruder, session.pk, "theirs.txt", b"x"),
        intruder.delete(url(session.pk, "mine.txt")),
    ):
        assert response.status_code == 404
    assert (workspace_path(session.pk) / "mine.txt").read_bytes() == b"secret"
    assert not (workspace_path(session.pk) / "theirs.txt").exists()


def test_anonymous_requests_are_a_401(api_client, session):
    assert api_client.get(url(session.pk)).status_code == 401


def test_delete_takes_plain_names_only(auth_client, session, user):
    other = services.session_create(owner=user, agent=session.agent, title="Other")
    assert upload(auth_client, other.pk, "keep.txt", b"x").status_code == 201
    for name in ("..", ".", "%2e%2e", f"..%2F{other.pk}%2Fkeep.txt"):
        assert auth_client.delete(url(session.pk, name)).status_code == 404
    assert (workspace_path(other.pk) / "keep.txt").exists()


def test_deleting_a_session_removes_its_workspace(auth_client, session):
    assert upload(auth_client, session.pk, "a.txt", b"x").status_code == 201
    assert workspace_path(session.pk).is_dir()
    assert auth_client.delete(f"/api/v1/sessions/{session.pk}").status_code == 204
    assert not workspace_path(session.pk).exists()


def test_deleting_the_user_removes_their_sessions_workspaces(auth_client, session, user):
    assert upload(auth_client, session.pk, "a.txt", b"x").status_code == 201
    user.delete()
    assert not workspace_path(session.pk).exists()


# --- who may give an agent workspace tools ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["files", "files_and_shell"])
def test_a_user_cannot_give_their_agent_workspace_tools_over_rest(auth_client, mode):
    response = auth_client.post(
        "/api/v1/agents", {"name": "Mine", "slug": "mine", "system_prompt_text": "Hi.", "workspace_tools": mode},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "Only staff" in response.json()["detail"]["fields"]["workspace_tools"][0]
    assert not AIAgent.objects.filter(slug="mine").exists()


def test_a_users_agent_shows_none_and_may_say_none(auth_client):
    response = auth_client.post(
        "/api/v1/agents", {"name": "Mine", "slug": "mine", "system_prompt_text": "Hi.", "workspace_tools": "none"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201 and response.json()["workspace_tools"] == "none"
    agent_id = response.json()["id"]
    patched = auth_client.patch(f"/api/v1/agents/{agent_id}", {"workspace_tools": "files_and_shell"}, format="json")
    assert patched.status_code == 400 and "workspace_tools" in patched.json()["detail"]["fields"]
    assert AIAgent.objects.get(pk=agent_id).workspace_tools == "none"


def test_staff_set_workspace_tools_on_an_organization_agent_in_admin(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get("/admin/agents/aiagent/add/")
    assert page.status_code == 200 and b'name="workspace_tools"' in page.content
    assert b"sandboxed shell" in page.content and b"bubblewrap" in page.content  # the help text
    response = client.post(
        "/admin/agents/aiagent/add/",
        {"name": "Shell", "slug": "shell", "system_prompt_text": "Hi.", "max_turns": 5, "tags": "[]",
         "custom_properties_schema": "{}", "is_active": "on",
         "workspace_tools": "files_and_shell"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:2000]
    assert AIAgent.objects.get(slug="shell").workspace_tools == "files_and_shell"


def test_the_files_endpoints_are_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    if schema.status_code != 200:
        schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/sessions/{id}/files" in text and "/api/v1/sessions/{id}/files/{name}" in text


def test_workspace_size_counts_files_not_links(tmp_path):
    from agents.workspaces import workspace_size

    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert workspace_size(tmp_path) == 10


def test_file_save_leaves_nothing_behind_when_over_the_limit(settings, session):
    from agents.workspaces import FileTooLarge, file_list, file_save

    settings.WORKSPACE_MAX_FILE_BYTES = 10
    with pytest.raises(FileTooLarge):
        file_save(session_id=session.pk, name="big", stream=io.BytesIO(b"x" * 100))  # size unknown: counted
    assert file_list(session_id=session.pk) == []
    assert [p.name for p in workspace_path(session.pk).iterdir()] == []


def test_a_cookie_session_upload_over_the_limit_is_refused_and_nothing_is_stored(user, session, settings):
    """Cookie sessions' CSRF check reads the body before the view: it reads it through the same guard."""
    from django.middleware.csrf import _get_new_csrf_string
    from django.test import Client

    settings.WORKSPACE_MAX_FILE_BYTES = 1000
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = _get_new_csrf_string()
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 5000 + b"\r\n--B--\r\n")  # fmt: skip
    response = client.generic(
        "POST", url(session.pk), data=body, content_type="multipart/form-data; boundary=B", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 413, response.content
    assert response.json()["detail"]["code"] == "too_large"
    assert not workspace_path(session.pk).exists() or not any(workspace_path(session.pk).iterdir())
    small = client.post(url(session.pk), {"file": SimpleUploadedFile("ok.txt", b"fine")}, HTTP_X_CSRFTOKEN=token)
    assert small.status_code == 201, small.content
