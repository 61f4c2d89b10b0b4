"""Staff's "Test connection" on integrations, against the real notes MCP server (stdio, streamable
HTTP, SSE): the tools are listed in a message, failures said plainly, and the trust rule holds — a
user's stdio server never runs, a user's server URL passes the egress policy."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages

from agents.models import Integration
from assistant.tests.mcp_servers import NOTES_SERVER, notes_over_http
from config.testing.listener import recording_listener

TOKEN = "admin-check-notes-token-0123456789"
NOTES_TOOLS = "notes__add, notes__whoami, notes__write_note, notes__sleep, notes__fail"
LISTED = ("success", f"“notes” connected: 5 tools: {NOTES_TOOLS}")


@pytest.fixture(scope="module", params=["http", "sse"])
def remote_notes(request):
    """The notes server over streamable HTTP or SSE on 127.0.0.1, wanting TOKEN as a bearer token."""
    with notes_over_http(TOKEN, *(["--sse"] if request.param == "sse" else [])) as url:
        yield request.param, str(urlsplit(url).port), url


def press_test_connection(client, integration: Integration) -> list[tuple[str, str]]:
    """The messages the change page shows after the button (reading them there uses them up)."""
    response = client.post(f"/admin/agents/integration/{integration.pk}/test-connection/", follow=True)
    assert response.redirect_chain == [(f"/admin/agents/integration/{integration.pk}/change/", 302)]
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_an_organization_stdio_server_starts_and_lists_its_tools(staff_client, make_integration):
    integration = make_integration(None, name="notes", mcp_server={"command": sys.executable, "args": [NOTES_SERVER]})

    assert press_test_connection(staff_client, integration) == [LISTED]
    page = staff_client.get(f"/admin/agents/integration/{integration.pk}/change/").content.decode()
    assert f'action="/admin/agents/integration/{integration.pk}/test-connection/"' in page


def test_a_server_that_does_not_start_is_said_plainly(staff_client, make_integration):
    integration = make_integration(None, name="broken", mcp_server={"command": "/no/such/mcp-server"})

    assert press_test_connection(staff_client, integration) == [
        ("error", "“broken”: MCP server 'broken' failed to start: command not found: /no/such/mcp-server")
    ]


def test_an_organization_http_server_gets_the_integrations_token(staff_client, make_integration, remote_notes):
    transport, _, url = remote_notes
    with_token = make_integration(None, name="notes", credentials=TOKEN, mcp_server={"type": transport, "url": url})
    without = make_integration(None, name="nokey", provider="custom", mcp_server={"type": transport, "url": url})

    assert press_test_connection(staff_client, with_token) == [LISTED]
    [(level, message)] = press_test_connection(staff_client, without)
    assert level == "error" and message.startswith("“nokey”: MCP server 'nokey' failed to start:")
    # The SDK's streamable-HTTP client reports a refused request without its status (assistant.tools.mcp_connection.failure_reason).
    reason = f"HTTP 401 from {url}" if transport == "sse" else "Server returned an error response"
    assert message.endswith(f"failed to start: {reason}") and TOKEN not in message


def test_a_users_http_server_is_reached_only_through_the_egress_policy(
    staff_client, user, make_integration, settings
):
    with recording_listener() as listener:
        url = f"http://127.0.0.1:{listener.port}/mcp"
        settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{listener.port}"]  # allowed when the user saved it
        integration = make_integration(user, name="theirs", credentials=TOKEN, mcp_server={"type": "http", "url": url})
        settings.OUTBOUND_ALLOWED_HOSTS = []

        [(level, message)] = press_test_connection(staff_client, integration)
        accepted = listener.accepted

    assert level == "error"
    assert message.startswith("“theirs”: MCP server 'theirs' failed to start: The server may not connect to 127.0.0.1")
    assert accepted == 0 and TOKEN not in message


def test_a_users_allowed_http_server_lists_its_tools(staff_client, user, make_integration, settings, remote_notes):
    transport, port, url = remote_notes
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{port}"]
    integration = make_integration(user, name="notes", credentials=TOKEN, mcp_server={"type": transport, "url": url})

    assert press_test_connection(staff_client, integration) == [LISTED]


def test_a_users_stdio_server_is_never_run(staff_client, user, tmp_path):
    # Stored before the trust rule (the services refuse it now): testing it must not run the command.
    marker = tmp_path / "ran"
    integration = Integration.objects.create(
        owner=user, name="theirs", provider="custom",
        mcp_server={"command": "sh", "args": ["-c", f"touch {marker}"]},
    )  # fmt: skip

    assert press_test_connection(staff_client, integration) == [
        ("error", "“theirs”: A user's stdio MCP server (a command on this server) is never run.")
    ]
    assert not marker.exists()


def test_the_action_tests_the_selected_integrations(staff_client, make_integration):
    good = make_integration(None, name="notes", mcp_server={"command": sys.executable, "args": [NOTES_SERVER]})
    none = make_integration(None, name="plain", provider="custom")

    response = staff_client.post(
        "/admin/agents/integration/",
        {"action": "test_connection", "_selected_action": [str(good.pk), str(none.pk)]},
    )

    assert response.status_code == 302
    assert sorted((m.level_tag, str(m)) for m in get_messages(response.wsgi_request)) == [
        ("error", "“plain”: It defines no MCP server."),
        ("success", f"“notes” connected: 5 tools: {NOTES_TOOLS}"),
    ]


def test_only_staff_who_may_change_it_test_an_integration(client, make_user, make_integration):
    integration = make_integration(None, name="notes", mcp_server={"command": sys.executable, "args": [NOTES_SERVER]})
    client.force_login(make_user(is_staff=True))  # staff without permissions on integrations

    assert client.post(f"/admin/agents/integration/{integration.pk}/test-connection/").status_code == 403


def test_staff_who_may_only_view_integrations_get_no_test_action(client, make_user, make_integration):
    from django.contrib.auth.models import Permission

    integration = make_integration(None, name="notes", mcp_server={"command": sys.executable, "args": [NOTES_SERVER]})
    viewer = make_user(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_integration"))
    client.force_login(viewer)

    page = client.get("/admin/agents/integration/")
    assert page.status_code == 200 and "test_connection" not in page.content.decode()
    assert client.post(f"/admin/agents/integration/{integration.pk}/test-connection/").status_code == 403
