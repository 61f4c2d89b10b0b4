"""What a first-time user meets: `/` in a browser leads to the chat, the admin's "View site" too, and the
startup banner names the pages, the missing model key and how to make the first user."""

from __future__ import annotations

import pytest

from config.management.commands.run import startup_banner

pytestmark = pytest.mark.django_db

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_a_browser_opening_the_root_is_sent_to_the_chat_and_api_clients_keep_the_json(client):
    for accept in (BROWSER_ACCEPT, "text/html"):
        response = client.get("/", HTTP_ACCEPT=accept)
        assert response.status_code == 302 and response["Location"] == "/chat/", accept
    for accept in ("application/json", "*/*", None):
        headers = {"HTTP_ACCEPT": accept} if accept else {}
        response = client.get("/", **headers)
        assert response.status_code == 200 and response.json()["name"] == "Conduit", accept
    # The probe's own path answers JSON whoever asks.
    for accept in (BROWSER_ACCEPT, "text/html", "text/plain"):
        assert client.get("/health", HTTP_ACCEPT=accept).json()["status"] == "ok", accept


def test_the_admins_view_site_link_leads_to_the_chat(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    page = client.get("/admin/").content.decode()
    assert '<a href="/chat/">View site</a>' in page


def test_the_banner_names_the_pages_a_missing_key_and_the_first_user(settings):
    settings.ANTHROPIC_API_KEY = settings.OPENAI_API_KEY = settings.DEMO_MODEL_URL = ""
    banner = startup_banner("0.0.0.0", 8000)
    assert "Chat:      http://127.0.0.1:8000/chat/" in banner
    assert "Admin:     http://127.0.0.1:8000/admin/" in banner
    assert "API docs:  http://127.0.0.1:8000/api/docs/" in banner
    assert "no model key configured" in banner and "python3 dev.py run --demo" in banner
    assert "python3 dev.py manage createsuperuser" in banner
    assert "DJANGO_SUPERUSER_NAME" in banner and "--noinput" in banner


def test_the_banner_is_quiet_about_what_is_in_place(settings, make_user):
    settings.ANTHROPIC_API_KEY, settings.DEMO_MODEL_URL = "sk-real", ""
    make_user()
    banner = startup_banner("::1", 9000)
    assert "http://[::1]:9000/chat/" in banner
    assert "Model:" not in banner and "Users:" not in banner
    settings.DEMO_MODEL_URL = "http://127.0.0.1:5555"
    assert "the demo model at http://127.0.0.1:5555" in startup_banner("127.0.0.1", 8000)


def test_createsuperuser_without_prompts_takes_the_name_from_the_environment_as_the_banner_says(monkeypatch):
    from django.core.management import call_command

    from accounts.models import User

    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "first@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_NAME", "First Admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-first-password-42")
    call_command("createsuperuser", interactive=False, verbosity=0)
    user = User.objects.get(email="first@example.com")
    assert user.is_superuser and user.name == "First Admin" and user.check_password("a-long-first-password-42")
