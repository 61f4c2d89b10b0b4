"""The chat page in headless Chromium (Debian's package, driven by Playwright) against a real server:
sign in, pick an agent, send a message, watch the answer stream, stop it, reload mid-answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.processes import database_url_for_children, http_json, require, running_server

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "a browser passphrase"


@pytest.fixture
def site(tmp_path):
    require(CHROMIUM is not None, "Chromium (Debian package `chromium`)")
    with fake_anthropic_server() as fake:
        # The user configures the fake model on 127.0.0.1: staff allow that host (the egress policy).
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
               "STATIC_ROOT": str(tmp_path / "static"), "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
                       cwd=settings.BASE_DIR, env={**os.environ, **env}, check=True, timeout=120)  # fmt: skip
        with running_server(env) as base:
            email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
            assert http_json("POST", f"{base}/api/v1/auth/register", {"name": "Browser", "email": email, "password": PASSWORD})[0] == 201
            token = http_json("POST", f"{base}/api/v1/auth/login", {"email": email, "password": PASSWORD})[1]["access_token"]
            config = http_json(
                "POST", f"{base}/api/v1/llm-configs",
                {"name": "Fake", "provider": "anthropic", "model": "claude-test-1", "base_url": fake.base_url, "api_key": "sk-b"}, token,
            )[1]  # fmt: skip
            status, _ = http_json(
                "POST", f"{base}/api/v1/agents",
                {"name": "Browser agent", "slug": "browser-agent", "system_prompt_text": "Be brief.", "llm_config": config["id"]}, token,
            )  # fmt: skip
            assert status == 201
            yield base, email, fake, token


@pytest.fixture
def page(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/chat/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/chat/**")
    page.wait_for_selector("#agent-picker option[value=browser-agent]", state="attached")


def test_a_person_signs_in_sends_a_message_sees_it_stream_and_stops_it(site, page):
    base, email, fake, token = site
    fake.script(Reply(text=["Streaming ", "words ", "one ", "by ", "one"], pause_after=2))
    sign_in(page, base, email)

    page.fill("#prompt", "Say something slowly")
    page.click("#send")
    page.wait_for_selector(".msg.user >> text=Say something slowly")
    page.wait_for_function("document.querySelector('.msg.assistant span')?.textContent === 'Streaming words '")
    assert page.is_visible("#stop")

    page.click("#stop")
    page.wait_for_selector(".msg.assistant.stopped")
    fake.release()
    assert page.inner_text(".msg.assistant .note") == "Stopped."
    assert not page.is_visible("#stop")
    session_id = int(page.evaluate("location.hash").removeprefix("#session-"))
    status, messages = http_json("GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token)
    assert status == 200
    assert messages["results"][-1]["status"] == "stopped"
    assert messages["results"][-1]["content"] == [{"type": "text", "text": "Streaming words "}]
    assert page.locator("#session-list a").count() == 1


def test_a_reload_mid_answer_shows_what_was_said_and_the_rest_as_it_arrives(site, page):
    base, email, fake, _ = site
    fake.script(Reply(text=["Before ", "the ", "reload, ", "after ", "the ", "reload."], pause_after=3))
    sign_in(page, base, email)
    page.fill("#prompt", "Keep going")
    page.click("#send")
    page.wait_for_function("document.querySelector('.msg.assistant span')?.textContent === 'Before the reload, '")
    fake.wait_until_paused()

    page.reload()
    page.wait_for_function("document.querySelector('.msg.assistant span')?.textContent === 'Before the reload, '")
    fake.release()
    page.wait_for_function("document.querySelector('.msg.assistant span')?.textContent === 'Before the reload, after the reload.'")
    page.wait_for_selector(".msg.assistant:not(.streaming)")
    assert page.locator(".msg.user").count() == 1
    assert page.locator(".msg.assistant").count() == 1
