"""The admin in headless Chromium (Debian's package, driven by Playwright) against a real server: a
staff member signs in, builds an agent with tags typed as words and tools ticked, and the agents
list fits a 1280 px screen. Screenshots go to /tmp/admin-*.png for a person to look at."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from django.conf import settings

from config.testing.processes import collected_static_root, database_url_for_children, require, running_server

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EMAIL, PASSWORD = "admin-browser@example.com", "an admin browser passphrase"
SHOTS = os.environ.get("ADMIN_SCREENSHOTS", "/tmp")

# Staff, and enough agents with long names and configs to fill the list's columns.
SEED = f"""
from accounts.models import User
from agents import services
User.objects.create_superuser(email={EMAIL!r}, name="Admin", password={PASSWORD!r})
owner = User.objects.create_user(
    email="someone-with-a-rather-long-address@example.com", name="Someone", password="x" * 20
)
config = services.llm_config_create(
    owner=None, name="Claude Sonnet for the support organization", model="claude-sonnet-4-5"
)
prompt = services.prompt_create(
    owner=None, name="Customer support escalation policy", slug="support-policy", body="Help."
)
for n in range(6):
    services.agent_create(
        owner=None if n % 2 else owner, name=f"Customer support triage assistant number {{n}}",
        slug=f"customer-support-triage-assistant-{{n}}", category="customer-support-operations",
        system_prompt=prompt if n % 2 else None, system_prompt_text="" if n % 2 else "You help.", llm_config=config,
    )
"""


@pytest.fixture
def admin_site(tmp_path):
    require(CHROMIUM is not None, "Chromium (Debian package `chromium`)")
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "STATIC_ROOT": str(collected_static_root())}
    run = {"cwd": settings.BASE_DIR, "env": {**os.environ, **env}, "check": True, "timeout": 120}
    subprocess.run([sys.executable, "manage.py", "shell", "-c", SEED], **run)
    with running_server(env) as base:
        yield base


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 800})
        finally:
            browser.close()


def overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def test_staff_build_an_agent_and_the_admin_fits_a_1280px_screen(admin_site, page):
    base = admin_site
    page.goto(f"{base}/admin/")
    page.fill("#id_username", EMAIL)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("text=Conduit administration")
    page.screenshot(path=f"{SHOTS}/admin-dashboard.png", full_page=True)
    width, inner = overflow(page)
    assert width <= inner, f"the dashboard is {width} px wide in a {inner} px window"
    # Its tables' headings and figures each on one line (not squeezed a letter a line).
    tallest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('#conduit-dashboard th, #conduit-dashboard td')]"
        ".map(cell => cell.getBoundingClientRect().height))"
    )
    assert tallest < 40, f"a dashboard cell is {tallest} px tall"

    page.goto(f"{base}/admin/agents/aiagent/add/")
    page.fill("#id_name", "Release notes writer")  # the slug follows (prepopulated)
    page.fill("#id_system_prompt_text", "Write release notes.")
    page.fill("#id_tags", "demo, friendly")
    page.check("input[name=allowed_tools][value=read_file]")
    page.check("input[name=allowed_tools][value=grep]")
    page.fill("#id_allowed_tools_other", "github__*")
    page.fill("#id_custom_properties_schema", '{"type": "object"}')
    page.screenshot(path=f"{SHOTS}/admin-agent-form.png", full_page=True)
    assert page.input_value("#id_slug") == "release-notes-writer"
    page.click("input[name=_continue]")  # "Save and continue editing": the saved form again
    page.wait_for_selector("ul.messagelist li.success")

    # What was stored, as the change form shows it back.
    assert page.input_value("#id_tags") == "demo, friendly"
    ticked = page.eval_on_selector_all("input[name=allowed_tools]:checked", "boxes => boxes.map(b => b.value)")
    assert sorted(ticked) == ["grep", "read_file"]
    assert page.input_value("#id_allowed_tools_other") == "github__*"

    # A bad tag is named on its field, the typed values kept.
    page.fill("#id_tags", "demo, Not A Tag")
    page.click("input[name=_continue]")
    error = page.text_content(".field-tags .errorlist")
    assert "Tag 2 ('Not A Tag') must be 1-50 lower-case letters" in error
    assert page.input_value("#id_tags") == "demo, Not A Tag"

    page.goto(f"{base}/admin/agents/aiagent/")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 7
    page.screenshot(path=f"{SHOTS}/admin-changelist.png")
    width, inner = overflow(page)
    assert width <= inner, f"the agents list is {width} px wide in a {inner} px window"
    # Nor does the table scroll inside its own box (the admin clips it there instead).
    table, box = page.evaluate("(b => [b.scrollWidth, b.clientWidth])(document.querySelector('.results'))")
    assert table <= box, f"the agents table is {table} px wide in a {box} px box"

    page.goto(f"{base}/admin/agents/llmproviderconfig/add/")
    page.wait_for_selector("#id_api_key")
    assert page.text_content("label[for=id_api_key]") == "API key:"
    assert page.text_content("label[for=id_clear_api_key]") == "Clear API key"
    assert page.locator("text=(settings)").count() == 0  # no second, read-only "API key" display
    page.screenshot(path=f"{SHOTS}/admin-llm-config-form.png", full_page=True)

    # The "Test connection" button looks like its neighbour among the object tools, the History link.
    page.goto(f"{base}/admin/agents/llmproviderconfig/")
    page.click("#result_list tbody tr th a")
    page.wait_for_selector("button.conduit-object-tool")
    looks = """element => { const s = getComputedStyle(element);
        return [s.backgroundColor, s.color, s.borderRadius, s.textTransform, s.fontSize, s.borderTopWidth]; }"""
    button = page.eval_on_selector("button.conduit-object-tool", looks)
    history = page.eval_on_selector(".object-tools a.historylink", looks)
    assert button == history, (button, history)
    assert abs(
        page.eval_on_selector("button.conduit-object-tool", "b => b.getBoundingClientRect().height")
        - page.eval_on_selector(".object-tools a.historylink", "a => a.getBoundingClientRect().height")
    ) <= 2
    page.screenshot(path=f"{SHOTS}/admin-llm-config-change.png")
