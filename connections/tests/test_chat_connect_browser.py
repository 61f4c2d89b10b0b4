"""The chat page's Connect button, in headless Chromium against a real server: a turn refused with
`connection_required` offers to connect; the authorization server opens in a popup and sends it back to
the site's callback; the page sees the connection made, and the message sent again reaches the MCP
server with the user's own token."""

from __future__ import annotations

import json

import pytest

from assistant.tests.surfaces.test_chat_page import page, serving, sign_in, wait_until  # noqa: F401 - fixtures
from config.testing.fake_anthropic import Reply, ToolUse
from config.testing.processes import http_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_connect_button_connects_through_a_popup_and_the_message_goes_through(
    tmp_path, page, auth_server  # noqa: F811
):
    with serving(tmp_path) as (base, email, fake, token):
        status, integration = http_json("POST", f"{base}/api/v1/integrations", {
            "name": "notes", "provider": "custom", "auth": "oauth",
            "mcp_server": {"type": "http", "url": f"{auth_server.base}/mcp"}}, token)  # fmt: skip
        assert status == 201, integration
        status, agents = http_json("GET", f"{base}/api/v1/agents?slug=browser-agent", None, token)
        agent = agents["results"][0]
        status, _ = http_json("PATCH", f"{base}/api/v1/agents/{agent['id']}", {"integrations": [integration["id"]]},
                              token)  # fmt: skip
        assert status == 200
        sign_in(page, base, email)

        page.fill("#prompt", "Who am I there?")
        page.click("#send")
        button = page.wait_for_selector("#status button.connect")
        assert button.inner_text() == "Connect notes" and "notes" in page.inner_text("#status")
        with page.expect_popup() as opened:
            button.click()
        popup = opened.value
        popup.wait_for_url(f"{base}/connections/oauth/callback**")
        assert "Connected" in popup.inner_text("h1")
        wait_until(page, "document.querySelector('#status').textContent.startsWith('Connected to notes')", 30)

        fake.script(Reply(tool_uses=[ToolUse("notes__whoami", {})], stop_reason="tool_use"), Reply(text=["Done."]))
        assert page.input_value("#prompt") == "Who am I there?"  # kept for the retry
        page.click("#send")
        page.wait_for_selector(".msg.assistant:not(.streaming) .tool-call:not(.running)")
        page.locator(".msg.assistant details.tool-call summary").click()
        assert page.locator(".tool-output").inner_text() == "someone"  # the login the popup's authorization had

    assert json.dumps(fake.requests[0].body).count("Bearer") == 0
