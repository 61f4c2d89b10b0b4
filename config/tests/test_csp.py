"""The Content-Security-Policy (issue 33, item 11) on a real server: every HTML page carries it, and the
pages with scripts and styles of their own (the API docs, the admin) work under it in headless Chromium
without a single violation. (The chat page under it: assistant/tests/surfaces/test_chat_page.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest
from django.conf import settings

from config.testing.processes import collected_static_root, database_url_for_children, require, running_server

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EMAIL, PASSWORD = "csp-staff@example.com", "a staff passphrase for csp"
# What a violation looks like to the page, recorded before any of its scripts run.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => window.__violations.push(
  `${event.effectiveDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`));
"""


@pytest.fixture
def site(tmp_path):
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "STATIC_ROOT": str(collected_static_root())}
    run = {"cwd": settings.BASE_DIR, "env": {**os.environ, **env}, "check": True, "timeout": 120}
    staff = (
        "from accounts.models import User; "
        f"User.objects.create_superuser(email={EMAIL!r}, name='Staff', password={PASSWORD!r})"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", staff], **run)
    with running_server(env) as base:
        yield base


@pytest.fixture
def page():
    require(CHROMIUM is not None, "Chromium (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(RECORD_VIOLATIONS)
            yield page
        finally:
            browser.close()


def headers_of(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return {name.lower(): value for name, value in response.headers.items()}


def test_every_html_page_carries_the_policy(site):
    for path in ("/accounts/login/", "/admin/login/", "/api/docs/"):
        headers = headers_of(f"{site}{path}")
        assert headers["content-type"].startswith("text/html"), path
        policy = headers["content-security-policy"]
        for directive in ("default-src 'self'", "img-src 'self' data:", "object-src 'none'", "base-uri 'none'",
                          "form-action 'self'", "frame-ancestors 'none'"):  # fmt: skip
            assert directive in policy, (path, directive)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "content-security-policy" not in headers_of(f"{site}/health")  # JSON: no page to protect


def test_the_api_docs_render_every_operation_under_the_policy(site, page):
    response = page.goto(f"{site}/api/docs/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-tag-section", timeout=30_000)
    assert page.locator(".opblock").count() > 20  # the schema was fetched and every operation drawn
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"  # its stylesheet, not inline
    assert page.evaluate("window.__violations") == []


def test_staff_use_the_admin_under_the_policy(site, page):
    page.goto(f"{site}/admin/")
    page.fill("#id_username", EMAIL)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#conduit-dashboard")
    # The dashboard's styles come from its stylesheet: cards side by side.
    assert page.evaluate("getComputedStyle(document.querySelector('.conduit-cards')).display") == "flex"
    violations = {"/admin/": page.evaluate("window.__violations")}
    for path in ("/admin/agents/aiagent/add/", "/admin/usage/", "/admin/agents/llmproviderconfig/add/"):
        page.goto(f"{site}{path}")
        page.wait_for_load_state("load")
        violations[path] = page.evaluate("window.__violations")
    assert violations == {path: [] for path in violations}
