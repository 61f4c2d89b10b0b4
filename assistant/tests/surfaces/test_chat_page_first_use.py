"""What a chat user meets first, in headless Chromium against a real server (see test_chat_page.py):
the form for a prompt's variables, a refused message kept in the box, the session's own agent after a
reload, renaming and deleting sessions, copying an answer, its token usage, and a page without console
errors (its favicon)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from assistant.tests.surfaces.test_chat_page import ANSWER, CHROMIUM, CHROMIUM_ARGS, serving, sign_in, wait_until
from config.testing.fake_anthropic import Reply
from config.testing.processes import http_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def site(tmp_path):
    """A server, the fake model, a signed-up user with a config for it and an agent (`browser-agent`)."""
    with serving(tmp_path) as served:
        yield served


@pytest.fixture
def page():
    """A page that may use the clipboard, and records what its console and network complain about."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
            page = context.new_page()
            page.problems = []
            page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            page.on("response", lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"))
            yield page
        finally:
            browser.close()


def add_agent(base: str, token: str, *, slug: str, name: str, prompt: str) -> dict:
    config = http_json("GET", f"{base}/api/v1/llm-configs", None, token)[1]["results"][0]
    status, agent = http_json(
        "POST", f"{base}/api/v1/agents",
        {"name": name, "slug": slug, "system_prompt_text": prompt, "llm_config": config["id"]}, token,
    )  # fmt: skip
    assert status == 201, agent
    return agent


def system_prompt(request) -> str:
    system = request.body["system"]
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


def open_session_id(page) -> int:
    return int(page.evaluate("location.hash").removeprefix("#session-"))


def test_an_agent_whose_prompt_needs_a_variable_asks_for_it_and_the_model_gets_it(site, page):
    base, email, fake, token = site
    add_agent(base, token, slug="team-agent", name="Team agent",
              prompt='You help the {{ team }} team, in {{ language | default: "English" }}.')  # fmt: skip
    sign_in(page, base, email)
    assert page.is_hidden("#variables")  # the first agent needs nothing

    page.select_option("#agent-picker", "team-agent")
    page.wait_for_selector("#variables input[name=team]")
    assert page.get_attribute("#variables input[name=language]", "placeholder") == "default: English"
    page.fill("#prompt", "Who are we?")
    page.click("#send")  # without the value: asked for, and the message stays
    wait_until(page, "document.getElementById('status').textContent === 'Give a value for team first.'")
    assert page.input_value("#prompt") == "Who are we?"
    assert len(fake.requests) == 0

    page.fill("#variables input[name=team]", "Platform")
    page.screenshot(path="/tmp/chat-variables.png")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta")
    assert page.input_value("#prompt") == ""
    assert page.is_hidden("#variables")
    assert system_prompt(fake.requests[-1]) == "You help the Platform team, in English."
    status, session = http_json("GET", f"{base}/api/v1/sessions/{open_session_id(page)}", None, token)
    assert status == 200 and session["custom_properties"] == {"team": "Platform"}

    # The next message of the session needs nothing more.
    page.fill("#prompt", "Again")
    page.click("#send")
    wait_until(page, "document.querySelectorAll('.msg.assistant:not(.streaming) .meta').length === 2")
    assert system_prompt(fake.requests[-1]) == "You help the Platform team, in English."
    assert not page.problems


def test_a_refused_message_stays_in_the_box_and_a_session_lacking_a_variable_gets_the_form(site, page):
    base, email, fake, token = site
    agent = add_agent(base, token, slug="team-agent", name="Team agent", prompt="You help the {{ team }} team.")
    # A session started elsewhere without the value: the server refuses its turns.
    new_session = {"agent": agent["id"], "title": "From the API"}
    status, session = http_json("POST", f"{base}/api/v1/sessions", new_session, token)
    assert status == 201
    sign_in(page, base, email)
    page.goto(f"{base}/chat/#session-{session['id']}")
    page.wait_for_selector("#variables input[name=team]")
    page.evaluate("document.getElementById('variables').hidden = true")  # as if the page hadn't known
    page.fill("#prompt", "Keep this text")
    page.click("#send")
    wait_until(page, "document.getElementById('status').textContent.includes('Missing variable(s): team.')")
    page.wait_for_selector("#variables input[name=team]")  # the refusal brings the form back
    assert page.is_visible("#variables")
    assert page.input_value("#prompt") == "Keep this text"
    assert not page.is_disabled("#send")
    assert len(fake.requests) == 0

    page.fill("#variables input[name=team]", "Search")
    page.click("#send")  # the session takes the value (REST PATCH), then the turn runs
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta")
    assert page.input_value("#prompt") == ""
    assert system_prompt(fake.requests[-1]) == "You help the Search team."
    stored = http_json("GET", f"{base}/api/v1/sessions/{session['id']}", None, token)[1]
    assert stored["custom_properties"] == {"team": "Search"}

    # Any refusal keeps the message: the agent is switched off by its owner meanwhile.
    assert http_json("PATCH", f"{base}/api/v1/agents/{agent['id']}", {"is_active": False}, token)[0] == 200
    page.fill("#prompt", "Are you there?")
    page.click("#send")
    wait_until(page, "document.getElementById('status').textContent.includes('no longer available')")
    assert page.input_value("#prompt") == "Are you there?"
    assert page.locator(".msg.user").count() == 1
    assert not page.is_disabled("#send")


def test_a_new_chat_refused_for_a_variable_the_prompt_gained_meanwhile_keeps_the_message(site, page):
    base, email, fake, token = site
    sign_in(page, base, email)
    assert page.is_hidden("#variables")
    agent = http_json("GET", f"{base}/api/v1/agents", None, token)[1]["results"][0]
    changed = {"system_prompt_text": "Serve {{ team }}."}
    status, _ = http_json("PATCH", f"{base}/api/v1/agents/{agent['id']}", changed, token)
    assert status == 200
    page.fill("#prompt", "Hello there")
    page.click("#send")
    wait_until(page, "document.getElementById('status').textContent.includes('Missing variable(s): team.')")
    page.wait_for_selector("#variables input[name=team]")
    assert page.input_value("#prompt") == "Hello there"
    assert page.locator(".msg").count() == 0
    assert http_json("GET", f"{base}/api/v1/sessions", None, token)[1]["results"] == []  # no half-made session

    page.fill("#variables input[name=team]", "Ops")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta")
    assert system_prompt(fake.requests[-1]) == "Serve Ops."
    assert page.input_value("#prompt") == ""


def test_after_a_reload_mid_answer_the_picker_shows_the_sessions_own_agent(site, page):
    base, email, fake, token = site
    add_agent(base, token, slug="zeta-agent", name="Zeta agent", prompt="Be short.")
    sign_in(page, base, email)
    page.wait_for_selector("#agent-picker option[value=zeta-agent]", state="attached")
    first = page.input_value("#agent-picker")
    other = "zeta-agent" if first != "zeta-agent" else "browser-agent"
    page.select_option("#agent-picker", other)
    fake.script(Reply(text=["Half ", "an ", "answer, ", "the rest."], pause_after=3))
    page.fill("#prompt", "Talk")
    page.click("#send")
    wait_until(page, f"{ANSWER} === 'Half an answer,'")
    fake.wait_until_paused()

    page.reload()
    wait_until(page, f"{ANSWER} === 'Half an answer,'")
    wait_until(page, f"document.getElementById('agent-picker').value === '{other}'")
    assert page.is_disabled("#agent-picker")  # a session's agent can't change
    fake.release()
    page.wait_for_selector(".msg.assistant:not(.streaming)")
    assert page.input_value("#agent-picker") == other

    page.click("#new-session")  # a new chat may pick any agent again
    assert not page.is_disabled("#agent-picker")


def test_sessions_are_renamed_and_deleted_from_the_list(site, page):
    base, email, fake, token = site
    sign_in(page, base, email)
    for text in ("First chat", "Second chat"):
        page.click("#new-session")
        page.fill("#prompt", text)
        page.click("#send")
        page.wait_for_selector(f"#session-list a >> text={text}")
        page.wait_for_selector(".msg.assistant:not(.streaming) .meta")
    second = open_session_id(page)
    listed = http_json("GET", f"{base}/api/v1/sessions", None, token)[1]["results"]
    first = next(s["id"] for s in listed if s["id"] != second)

    item = page.locator(f"#session-list li[data-session-id='{first}']")
    item.hover()
    item.locator("button.rename").click()
    page.fill("#session-list .rename-input", "Renamed by me")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#session-list li[data-session-id='{first}'] a >> text=Renamed by me")
    assert http_json("GET", f"{base}/api/v1/sessions/{first}", None, token)[1]["title"] == "Renamed by me"
    page.screenshot(path="/tmp/chat-sessions.png")

    page.once("dialog", lambda dialog: dialog.accept())
    item = page.locator(f"#session-list li[data-session-id='{second}']")
    item.hover()
    item.locator("button.delete").click()  # the open one: the page goes to a new chat
    page.wait_for_selector(f"#session-list li[data-session-id='{second}']", state="detached")
    assert http_json("GET", f"{base}/api/v1/sessions/{second}", None, token)[0] == 404
    assert page.evaluate("location.hash") == ""
    assert page.locator(".msg").count() == 0
    assert page.locator("#session-list li").count() == 1

    page.once("dialog", lambda dialog: dialog.dismiss())  # changed their mind: nothing happens
    item = page.locator(f"#session-list li[data-session-id='{first}']")
    item.hover()
    item.locator("button.delete").click()
    page.wait_for_timeout(300)
    assert http_json("GET", f"{base}/api/v1/sessions/{first}", None, token)[0] == 200
    assert not page.problems


def test_an_answer_is_copied_and_shows_its_token_usage_live_and_after_a_reload(site, page):
    base, email, fake, _ = site
    fake.script(Reply(text=["Here is **bold** and\n\n", "```sh\nls -l\n```\n"], input_tokens=321, output_tokens=45))
    sign_in(page, base, email)
    page.evaluate("document.addEventListener('conduit:copied', (e) => { window.__copied = e.detail; })")
    page.fill("#prompt", "Show me")
    page.click("#send")
    page.wait_for_selector(".msg.assistant:not(.streaming) .meta")

    def check() -> None:
        assert page.inner_text(".msg.assistant .meta .usage") == "321 in · 45 out tokens"
        page.click(".msg.assistant .meta button.copy")
        page.wait_for_selector(".msg.assistant .meta button.copy >> text=Copied")
        expected = "Here is **bold** and\n\n```sh\nls -l\n```"
        assert page.evaluate("navigator.clipboard.readText()") == expected
        assert page.evaluate("window.__copied") == expected

    check()
    page.reload()  # from the stored message's tokens
    page.wait_for_selector(".msg.assistant .meta")
    page.wait_for_selector("#messages:not([aria-busy])", state="attached")  # the turn's replay drawn: no redraw after the click
    page.evaluate("document.addEventListener('conduit:copied', (e) => { window.__copied = e.detail; })")
    check()
    page.screenshot(path="/tmp/chat-usage.png")
    assert not page.problems


def test_pages_load_without_console_errors_and_have_a_favicon(site, page):
    base, email, _, _ = site
    sign_in(page, base, email)
    page.wait_for_load_state("networkidle")
    icon = page.get_attribute("link[rel=icon]", "href")
    assert icon.endswith("favicon.svg")
    with urllib.request.urlopen(f"{base}{icon}") as response:
        assert response.status == 200 and b"<svg" in response.read()
    # Pages that name no icon (the admin's) get it where browsers look by default.
    with urllib.request.urlopen(f"{base}/favicon.ico") as response:
        assert response.url.endswith("favicon.svg") and response.headers["Content-Type"].startswith("image/svg")
    page.goto(f"{base}/admin/login/")
    page.wait_for_load_state("networkidle")
    assert not page.problems, json.dumps(page.problems)
