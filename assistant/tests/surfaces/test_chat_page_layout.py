"""The chat page as people use it, in headless Chromium against a real server (see test_chat_page.py), at
1280 and 390 px: only the message column scrolls and a session opens at its latest message; the sidebar
folds behind a toggle on a phone; code highlighted with a copy button, tables with borders; search across
sessions; regenerate and edit; file upload (button and drag-and-drop) with the API's refusals shown.
One server and one fake model for the module (they take seconds to start); each test signs up a user of
its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from assistant.tests.surfaces.test_chat_page import CHROMIUM, CHROMIUM_ARGS, PASSWORD, serving, sign_in, wait_until
from config.testing.fake_anthropic import Reply
from config.testing.processes import http_json

# reset_sequences: on PostgreSQL the module's server shares this database; each flush re-creates the
# content types with the same ids, which the server cached when it started (test_openai_api_live.py).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

MAX_FILE_BYTES = 2000  # the server's WORKSPACE_MAX_FILE_BYTES: a bigger upload is refused

LONG_ANSWER = "\n\n".join(
    [f"Paragraph {n}: some words to fill the screen." for n in range(1, 41)]
    + ["```python\ndef greet(name):\n    return f\"Hello, {name}\"\n```",
       "| Tool | Use |\n|---|---|\n| grep | search |\n| sed | edit |",
       "The end of the answer."]
)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":  # content types numbered 1…N, as after every flush (pytestmark)
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
    workspaces = tmp_path_factory.mktemp("chat-workspaces")
    workspaces.chmod(0o711)
    env = {"WORKSPACES_DIR": str(workspaces), "WORKSPACE_MAX_FILE_BYTES": str(MAX_FILE_BYTES)}
    served = tmp_path_factory.mktemp("chat-layout")
    with serving(served, env=env) as (base, _email, fake, _token):
        if connection.vendor == "postgresql":
            # The rows serving() made (its user, agent) go: each test resets the sequences, and new rows
            # would collide with them.
            with django_db_blocker.unblock():
                call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        yield base, fake, f"sqlite:///{served / 'children.sqlite3'}"  # the server's database on SQLite


@pytest.fixture  # not per module: sync Playwright runs an event loop in this thread, where the db fixtures then refuse to run
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def account(site):
    """A user of this test's own with a config for the fake model and two agents, `browser-agent` and
    `files-agent`: (base, fake, email, token)."""
    base, fake, _ = site
    fake.responder = None
    email = f"layout-{uuid.uuid4().hex[:8]}@example.com"
    assert http_json("POST", f"{base}/api/v1/auth/register", {"name": "Layout", "email": email, "password": PASSWORD})[0] == 201
    token = http_json("POST", f"{base}/api/v1/auth/login", {"email": email, "password": PASSWORD})[1]["access_token"]
    config = http_json(
        "POST", f"{base}/api/v1/llm-configs",
        {"name": "Fake", "provider": "anthropic", "model": "claude-test-1", "base_url": fake.base_url, "api_key": "sk-b"}, token,
    )[1]  # fmt: skip
    for slug, name in (("browser-agent", "Browser agent"), ("files-agent", "Files agent")):
        agent = {"name": name, "slug": slug, "system_prompt_text": "Be brief.", "llm_config": config["id"]}
        assert http_json("POST", f"{base}/api/v1/agents", agent, token)[0] == 201
    yield base, fake, email, token
    fake.release()


ORGANIZATION_FILES_AGENT = """from agents.models import AIAgent, LLMProviderConfig
config = LLMProviderConfig.objects.create(name="Org fake {tag}", provider="anthropic", model="claude-test-1",
                                          base_url={fake!r}, api_key="sk-org")
AIAgent.objects.create(name="Files agent {tag}", slug="files-{tag}", system_prompt_text="Be brief.", llm_config=config,
                       workspace_tools=AIAgent.WorkspaceTools.FILES)
"""


@pytest.fixture
def files_agent(site, account) -> str:
    """Staff's organization agent with file tools (only staff give those), in the server's database; its
    slug. Ask for it before `browser` (sync Playwright's event loop, once running, keeps the ORM out)."""
    tag = uuid.uuid4().hex[:8]
    code = ORGANIZATION_FILES_AGENT.format(tag=tag, fake=site[1].base_url)
    if connection.vendor == "postgresql":  # the server shares this test's database
        exec(code, {})
    else:
        env = {**os.environ, "DATABASE_URL": site[2]}
        subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=settings.BASE_DIR, env=env, check=True, timeout=120)
    return f"files-{tag}"


def open_page(browser, width: int, height: int = 800):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  permissions=["clipboard-read", "clipboard-write"])  # fmt: skip
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


def send(page, text: str, answers: int) -> None:
    """Type and send with Enter; wait for the `answers`-th finished answer."""
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    wait_until(page, f"document.querySelectorAll('.msg.assistant:not(.streaming) .meta').length === {answers}")


def box(page, selector: str) -> dict:
    return page.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                         " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width}; })()")  # fmt: skip


SCROLLED_TO_END = "(() => { const m = document.getElementById('messages'); return m.scrollHeight > m.clientHeight + 200 && m.scrollTop + m.clientHeight >= m.scrollHeight - 2; })()"
PAGE_DOES_NOT_SCROLL = "document.scrollingElement.scrollHeight <= window.innerHeight"
OPEN_SESSION = "Number(location.hash.replace('#session-', ''))"


def test_a_long_session_code_tables_search_regenerate_and_edit_at_1280_px(account, browser):
    base, fake, email, token = account
    page = open_page(browser, 1280)
    sign_in(page, base, email)
    assert page.is_hidden("#sidebar-toggle") and page.is_visible("#sidebar")

    fake.script(Reply(text=[LONG_ANSWER]))
    page.fill("#prompt", "Line one")
    page.press("#prompt", "Shift+Enter")  # a new line, not a send
    page.type("#prompt", "line two")
    assert page.input_value("#prompt") == "Line one\nline two" and len(fake.requests) == 0
    page.press("#prompt", "Enter")
    wait_until(page, "document.querySelectorAll('.msg.assistant:not(.streaming) .meta').length === 1")
    first_session = page.evaluate(OPEN_SESSION)

    # Only the message column scrolls; the composer stays in view at the bottom.
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    composer = box(page, "#composer")
    assert 700 < composer["bottom"] <= 800 and composer["top"] > 600
    # Reopened, the session shows its latest message.
    page.reload()
    page.wait_for_selector(".msg.assistant .meta")
    wait_until(page, SCROLLED_TO_END)
    assert page.evaluate(PAGE_DOES_NOT_SCROLL) and box(page, "#composer")["bottom"] <= 800

    # Code highlighted, with a copy button that copies the code; table cells with borders.
    assert page.locator(".code-block .code-lang").inner_text() == "python"
    assert page.locator(".code-block code .hljs-keyword").first.inner_text() == "def"
    page.evaluate("document.addEventListener('conduit:copied', (e) => { window.__copied = e.detail; })")
    page.click(".code-block .code-copy")
    wait_until(page, "window.__copied !== undefined")
    assert page.evaluate("window.__copied") == 'def greet(name):\n    return f"Hello, {name}"\n'
    assert page.inner_text(".code-block .code-copy") == "Copied"
    border = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('.msg .md td'));"
                           " return [s.borderTopWidth, s.borderTopStyle, s.borderLeftStyle]; })()")  # fmt: skip
    assert border == ["1px", "solid", "solid"]

    # A second chat; the list shows each session's agent and date; search finds by message text.
    page.click("#new-session")
    page.select_option("#agent-picker", "files-agent")
    fake.script(Reply(text=["Pears are fine."]))
    send(page, "Tell me about pears", 1)
    page.wait_for_selector("#session-list li:nth-child(2)")
    metas = page.locator("#session-list .session-meta").all_inner_texts()
    assert metas[0].startswith("Files agent · ") and metas[1].startswith("Browser agent · ")
    page.fill("#session-search", "paragraph 40")  # in the first chat's answer, not its title
    wait_until(page, "document.querySelectorAll('#session-list li').length === 1")
    assert page.get_attribute("#session-list a", "data-session-id") == str(first_session)
    page.fill("#session-search", "no such words")
    page.wait_for_selector("#session-empty:not([hidden])")
    assert page.inner_text("#session-empty") == "No chat matches."
    page.fill("#session-search", "")
    wait_until(page, "document.querySelectorAll('#session-list li').length === 2")

    # Regenerate the last answer: the same question asked again, its answer replaced.
    fake.script(Reply(text=["Pears, again."]))
    page.click(".msg.assistant .meta .regenerate")
    wait_until(page, "document.querySelector('.msg.assistant .md')?.textContent.trim() === 'Pears, again.'")
    wait_until(page, "document.querySelector('.msg.assistant .meta .regenerate') !== null")
    assert page.locator(".msg.user").count() == 1 and page.locator(".msg.assistant").count() == 1
    assert fake.requests[-1].body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Tell me about pears"}]}]

    # Edit the last message: Enter sends the new text; the old exchange is gone, here and stored.
    fake.script(Reply(text=["Plums are fine too."]))
    page.click(".msg.user .turn-actions .edit")
    page.fill(".msg.user .edit-box", "Tell me about plums")
    page.press(".msg.user .edit-box", "Enter")
    wait_until(page, "document.querySelector('.msg.assistant .md')?.textContent.trim() === 'Plums are fine too.'")
    assert page.locator(".msg.user").all_inner_texts()[0].startswith("Tell me about plums")
    status, messages = http_json("GET", f"{base}/api/v1/sessions/{page.evaluate(OPEN_SESSION)}/messages", None, token)
    assert status == 200
    assert [(m["role"], m["content"][0]["text"]) for m in messages["results"]] == [
        ("user", "Tell me about plums"), ("assistant", "Plums are fine too.")]  # fmt: skip
    assert not page.problems


def test_files_upload_by_button_and_drop_and_refusals_are_shown(account, files_agent, browser):
    base, fake, email, token = account
    page = open_page(browser, 1280)
    sign_in(page, base, email)
    page.wait_for_selector(f"#agent-picker option[value={files_agent}]", state="attached")
    page.select_option("#agent-picker", "browser-agent")
    assert page.is_hidden("#attach")  # the user's own agents have no workspace
    page.select_option("#agent-picker", files_agent)
    page.wait_for_selector("#attach:not([hidden])")

    # A new chat: uploading creates its session; the file's name is listed.
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"remember the milk"}])
    page.wait_for_selector("#file-list li:not(.uploading) >> text=notes.txt")
    session_id = page.evaluate(OPEN_SESSION)
    assert session_id > 0
    wait_until(page, "document.getElementById('status').textContent === 'Uploaded notes.txt.'")

    # Dropped onto the chat column.
    page.evaluate("""(() => {
        const data = new DataTransfer();
        data.items.add(new File(["a,b\\n1,2\\n"], "table.csv", { type: "text/csv" }));
        const chat = document.getElementById('chat');
        chat.dispatchEvent(new DragEvent('dragenter', { dataTransfer: data, bubbles: true, cancelable: true }));
        window.__zone = !document.getElementById('drop-zone').hidden;
        chat.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    })()""")
    assert page.evaluate("window.__zone") is True
    page.wait_for_selector("#file-list li:not(.uploading) >> text=table.csv")
    assert page.is_hidden("#drop-zone")

    # Too big: the API's refusal is shown, and nothing is stored.
    page.set_input_files("#file-input", files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * 5000}])
    page.wait_for_selector("#file-list li.failed >> text=big.bin")
    wait_until(page, "document.getElementById('status').textContent.startsWith(\"Couldn't upload big.bin: The file is larger than the limit of 2000 bytes\")")
    status, files = http_json("GET", f"{base}/api/v1/sessions/{session_id}/files", None, token)
    assert status == 200 and sorted(f["name"] for f in files) == ["notes.txt", "table.csv"]

    # The first message of the chat names it; reopened, the chat lists its files.
    fake.script(Reply(text=["I see two files."]))
    send(page, "What did I upload?", 1)
    wait_until(page, "document.querySelector('#session-list a .session-title')?.textContent === 'What did I upload?'")
    page.reload()
    page.wait_for_selector("#file-list li >> text=table.csv")
    assert page.locator("#file-list li").count() == 2
    assert not page.problems


def test_at_390_px_the_sidebar_folds_behind_a_toggle_and_the_composer_is_full_width(account, browser):
    base, fake, email, token = account
    page = open_page(browser, 390, 780)
    sign_in(page, base, email)
    assert page.is_hidden("#sidebar") and page.is_visible("#sidebar-toggle")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"
    composer = box(page, "#composer")
    assert composer["left"] == 0 and composer["width"] == 390

    fake.script(Reply(text=[LONG_ANSWER]))
    send(page, "A long one, please", 1)
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    assert 680 < box(page, "#composer")["bottom"] <= 780
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    fake.script(Reply(text=["Short."]))
    page.click("#sidebar-toggle")  # the sidebar comes over the chat, the search box focused
    page.wait_for_selector("#sidebar", state="visible")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "session-search"
    page.click("#new-session")  # folds it again
    page.wait_for_selector("#sidebar", state="hidden")
    send(page, "Another chat", 1)
    page.click("#sidebar-toggle")
    page.wait_for_selector("#sidebar", state="visible")
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar", state="hidden")
    assert page.evaluate("document.activeElement.id") == "sidebar-toggle"

    page.click("#sidebar-toggle")
    page.click("#session-list li:nth-child(2) a")  # the long chat: opens at its end, the sidebar folded
    page.wait_for_selector("#sidebar", state="hidden")
    page.wait_for_selector(".code-block")
    wait_until(page, SCROLLED_TO_END)
    assert page.evaluate(PAGE_DOES_NOT_SCROLL)
    assert not page.problems
