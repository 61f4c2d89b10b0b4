"""Approvals on the chat page (issue 28), in headless Chromium against a real server (see
test_chat_page.py): a tool call the agent's policy holds is shown as a card with its name and input and
Allow / Deny; the decision resumes the turn; a reload brings a pending card back with live buttons, and a
decided one without them."""

from __future__ import annotations

import json

import pytest

from agents.workspaces import workspace_path
from assistant.tests.surfaces.test_chat_page import CHROMIUM, CHROMIUM_ARGS, serving, sign_in, wait_until
from config.testing.fake_anthropic import Reply, ToolUse
from config.testing.processes import http_json

pytestmark = pytest.mark.django_db(transaction=True)

# Staff's organization agent with the file tools, whose writes wait for the user's approval.
SEED = """
from agents.models import AIAgent, LLMProviderConfig
config = LLMProviderConfig.objects.create(name="Org fake", provider="anthropic", model="claude-test-1",
                                          base_url="{fake}", api_key="sk-org", max_tokens=512)
AIAgent.objects.create(name="Writer", slug="writer", system_prompt_text="You write notes.", llm_config=config,
                       workspace_tools=AIAgent.WorkspaceTools.FILES, approval_required=["write_file"], max_turns=5)
"""
HOSTILE = "<img src=x onerror=window.__xss=1>"
CARD = ".msg.assistant .approval"
ANSWERS = "[...document.querySelectorAll('.msg.assistant .md')].map(m => m.textContent.trim()).join(' | ')"


@pytest.fixture
def site(tmp_path):
    with serving(tmp_path, seed=SEED) as served:
        yield served


@pytest.fixture
def busy_site(tmp_path):
    """A server where a user runs one answer at a time."""
    with serving(tmp_path, seed=SEED, env={"ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "1"}) as served:
        yield served


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()  # its context can open another tab
            page.problems = []
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            yield page
        finally:
            browser.close()


def ask_to_write(page, fake, then: str | None) -> ToolUse:
    """The model answers "Writing it." and asks write_file; after the call's result, says `then` (when given:
    else the test scripts what comes next)."""
    write = ToolUse("write_file", {"path": "note.txt", "content": HOSTILE})
    fake.script(Reply(text=["Writing it."], tool_uses=[write], stop_reason="tool_use"))
    if then is not None:
        fake.script(Reply(text=[then]))
    page.select_option("#agent-picker", "writer")
    page.fill("#prompt", "Save a note")
    page.click("#send")
    page.wait_for_selector(f"{CARD}.pending .approval-actions button.allow")
    page.wait_for_selector(".msg.assistant:not(.streaming)")  # the turn ended, awaiting the decision
    return write


def session_id_of(page) -> int:
    return int(page.evaluate("location.hash").removeprefix("#session-"))


def the_note(session_id: int) -> str | None:
    path = workspace_path(session_id) / "note.txt"
    return path.read_text() if path.exists() else None


def check_pending_card(page) -> None:
    """One card, for write_file, its input shown as text, with Allow / Deny live; the composer waits."""
    card = page.locator(CARD)
    assert card.count() == 1
    assert card.locator(".tool-name").inner_text() == "write_file"
    assert json.loads(card.locator(".approval-input").inner_text()) == {"path": "note.txt", "content": HOSTILE}
    assert card.locator(".approval-status").inner_text() == "waiting for your decision"
    assert card.locator("button.allow").is_enabled() and card.locator("button.deny").is_enabled()
    assert page.locator(".msg.assistant .tool-call .tool-status").inner_text() == "awaiting approval"
    assert "Waiting for your decision" in page.inner_text(".msg.assistant > .note")
    assert page.is_disabled("#send")
    assert page.get_attribute("#prompt", "placeholder") == "Allow or deny the tool call above to go on…"
    assert page.locator(".msg img").count() == 0 and page.evaluate("window.__xss") is None


def test_a_held_call_is_shown_with_its_input_and_allowed_the_turn_goes_on(site, page):
    base, email, fake, _ = site
    sign_in(page, base, email)
    ask_to_write(page, fake, then="Saved the note.")
    session_id = session_id_of(page)
    check_pending_card(page)
    assert the_note(session_id) is None  # nothing written before the decision
    assert len(fake.requests) == 1

    page.click(f"{CARD} button.allow")
    page.wait_for_selector(f"{CARD}.allowed")
    wait_until(page, f"{ANSWERS} === 'Writing it. | Saved the note.'")
    page.wait_for_selector(".msg.assistant:not(.streaming) .tool-call:not(.running)")

    def check_allowed() -> None:
        card = page.locator(CARD)
        assert card.count() == 1
        assert card.locator(".approval-status").inner_text() == f"Allowed by {email}"
        assert card.locator("button").count() == 0
        assert page.locator(".msg.assistant .tool-call .tool-status").inner_text() == "done"
        assert page.locator(".msg.assistant > .note").count() == 0
        assert not page.is_disabled("#send")
        assert page.get_attribute("#prompt", "placeholder") == "Ask something…"

    check_allowed()
    assert the_note(session_id) == HOSTILE  # the tool ran, once
    assert len(fake.requests) == 2
    assert fake.requests[1].body["messages"][-1]["content"][0]["is_error"] is False

    page.reload()  # the turn replayed: the decided card, without buttons
    page.wait_for_selector(f"{CARD}.allowed")
    wait_until(page, f"{ANSWERS} === 'Writing it. | Saved the note.'")
    page.wait_for_selector(".msg.assistant:not(.streaming)")
    check_allowed()
    assert page.locator(".msg.user").count() == 1 and page.locator(".msg.assistant").count() == 1
    assert not page.problems


def test_after_a_reload_the_pending_card_is_back_and_denied_nothing_is_written(site, page):
    base, email, fake, _ = site
    sign_in(page, base, email)
    write = ask_to_write(page, fake, then="I did not save it.")
    session_id = session_id_of(page)

    page.reload()
    page.wait_for_selector(f"{CARD}.pending .approval-actions button.deny")
    page.wait_for_timeout(300)  # the replay and the pending list both in
    check_pending_card(page)
    assert page.locator(".msg.user").count() == 1 and page.locator(".msg.assistant").count() == 1
    # A new message now would be refused: the page doesn't send it.
    page.fill("#prompt", "Something else")
    page.press("#prompt", "Enter")
    wait_until(page, "document.getElementById('status').textContent === 'Allow or deny the pending tool call first.'")
    assert len(fake.requests) == 1

    page.fill(f"{CARD} .approval-reason", "Not that file")
    page.click(f"{CARD} button.deny")
    page.wait_for_selector(f"{CARD}.denied")
    wait_until(page, f"{ANSWERS} === 'Writing it. | I did not save it.'")
    page.wait_for_selector(".msg.assistant:not(.streaming) .tool-call.failed")
    card = page.locator(CARD)
    assert card.locator(".approval-status").inner_text() == f"Denied by {email}: Not that file"
    assert card.locator("button").count() == 0
    assert page.locator(".msg.assistant .tool-call .tool-status").inner_text() == "failed"
    assert not page.is_disabled("#send")

    assert the_note(session_id) is None  # never written
    denied = fake.requests[1].body["messages"][-1]["content"][0]
    assert denied["tool_use_id"] == write.id and denied["is_error"] is True
    assert "denied" in json.dumps(denied["content"]) and "Not that file" in json.dumps(denied["content"])
    assert not page.problems


def test_a_decision_made_elsewhere_shows_on_the_open_page(site, page):
    base, email, fake, token = site
    sign_in(page, base, email)
    ask_to_write(page, fake, then="Saved the note.")
    session_id = session_id_of(page)
    approval_id = page.get_attribute(CARD, "data-approval-id")

    # Decided over REST (another tab, the CLI…): the page's socket watches the session.
    status, _ = http_json("POST", f"{base}/api/v1/sessions/{session_id}/approvals/{approval_id}", {"decision": "allow"}, token)
    assert status == 202
    page.wait_for_selector(f"{CARD}.allowed")
    wait_until(page, f"{ANSWERS} === 'Writing it. | Saved the note.'")
    assert page.locator(CARD).locator("button").count() == 0
    assert page.locator(CARD).locator(".approval-status").inner_text() == f"Allowed by {email}"
    assert the_note(session_id) == HOSTILE
    page.wait_for_selector(".msg.assistant:not(.streaming)")
    assert not page.is_disabled("#send")
    assert not page.problems


def test_a_refused_decision_shows_on_its_card_which_can_decide_again(busy_site, page):
    base, email, fake, _ = busy_site
    sign_in(page, base, email)
    ask_to_write(page, fake, then=None)
    session_id = session_id_of(page)
    # Another tab's answer runs meanwhile: resuming the paused turn would be a second one.
    fake.script(Reply(text=["Busy ", "elsewhere."], pause_after=1), Reply(text=["Saved the note."]))
    other = page.context.new_page()
    other.goto(f"{base}/chat/")
    other.wait_for_selector("#agent-picker option[value=browser-agent]", state="attached")
    other.select_option("#agent-picker", "browser-agent")
    other.fill("#prompt", "Something else")
    other.click("#send")
    fake.wait_until_paused()

    page.click(f"{CARD} button.allow")
    page.wait_for_selector(f"{CARD} .approval-error:not([hidden])")
    card = page.locator(CARD)
    assert "at most 1" in card.locator(".approval-error").inner_text()
    assert card.get_attribute("class") == "approval pending"
    assert card.locator(".approval-status").inner_text() == "waiting for your decision"
    assert card.locator("button.allow").is_enabled() and card.locator("button.deny").is_enabled()
    assert the_note(session_id) is None

    fake.release()
    other.wait_for_selector(".msg.assistant:not(.streaming) .meta")
    page.click(f"{CARD} button.allow")  # sent again, now taken
    page.wait_for_selector(f"{CARD}.allowed")
    wait_until(page, f"{ANSWERS} === 'Writing it. | Saved the note.'")
    assert card.locator(".approval-error").is_hidden()
    assert the_note(session_id) == HOSTILE
    assert not page.problems
