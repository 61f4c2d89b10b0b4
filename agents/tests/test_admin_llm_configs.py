"""Staff set up OpenAI-compatible and Anthropic configs in the admin and test them: "Test connection"
makes one tiny call through the real SDKs to the fake servers and shows the answer or the error."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from agents.models import LLMProviderConfig
from config.testing.fake_anthropic import HttpError as AnthropicHttpError
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.fake_openai import Chunks, HttpError, fake_openai_server

CHANGELIST = "/admin/agents/llmproviderconfig/"


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def gpt():
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def claude():
    with fake_anthropic_server() as server:
        yield server


def shown(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_staff_add_an_openai_compatible_config_and_test_it_from_its_page(staff_client, gpt):
    gpt.script(Chunks(text=["OK", "!"]))
    added = staff_client.post(
        f"{CHANGELIST}add/",
        {"name": "Local vLLM", "provider": "openai", "model": "llama-test", "base_url": gpt.base_url,
         "api_key": "sk-local", "max_tokens": "4096", "temperature": "1.5"},
    )  # fmt: skip
    assert added.status_code == 302, added.content.decode()[:2000]
    config = LLMProviderConfig.objects.get()
    assert (config.provider, config.temperature) == ("openai", 1.5)

    page = staff_client.get(f"{CHANGELIST}{config.pk}/change/").content.decode()
    assert "Test connection" in page and f"{config.pk}/test-connection/" in page
    assert "Not sent to Anthropic" in page and "OpenAI-compatible" in page, "the help texts explain the fields"

    response = staff_client.post(f"{CHANGELIST}{config.pk}/test-connection/", follow=True)
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}{config.pk}/change/"
    assert shown(response) == [("success", "“Local vLLM” answered: OK!")]
    sent = gpt.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == "Bearer sk-local"
    assert sent.body["model"] == "llama-test" and sent.body["max_tokens"] == 16 and not sent.body.get("stream")


def test_the_action_tests_each_selected_config_and_shows_answers_and_errors(staff_client, gpt, claude):
    claude.script(Reply(text=["OK."]))
    gpt.script(HttpError(401, "invalid_api_key", "Incorrect API key provided"))
    LLMProviderConfig.objects.create(name="Claude", provider="anthropic", model="claude-test-1",
                                     base_url=claude.base_url, api_key="sk-ant")  # fmt: skip
    LLMProviderConfig.objects.create(name="GPT", provider="openai", model="gpt-test-1",
                                     base_url=gpt.base_url, api_key="sk-wrong")  # fmt: skip

    response = staff_client.post(
        CHANGELIST,
        {"action": "test_connection", "_selected_action": list(LLMProviderConfig.objects.values_list("pk", flat=True))},
        follow=True,
    )
    assert sorted(shown(response)) == [
        ("error", "“GPT”: upstream_auth: The model provider rejected the API key."),
        ("success", "“Claude” answered: OK."),
    ]
    assert claude.requests[0].body["max_tokens"] == 16 and len(gpt.requests) == 1, "no retries: a person waits"


def test_a_failing_anthropic_config_shows_its_error(staff_client, claude):
    claude.script(AnthropicHttpError(529, "overloaded_error", "Overloaded"))
    config = LLMProviderConfig.objects.create(name="Busy", provider="anthropic", model="m",
                                              base_url=claude.base_url, api_key="sk-ant")  # fmt: skip
    response = staff_client.post(f"{CHANGELIST}{config.pk}/test-connection/", follow=True)
    assert shown(response) == [("error", "“Busy”: overloaded: The model provider is overloaded; try again shortly.")]


def test_a_config_without_any_key_says_so_without_calling(staff_client, gpt, settings):
    settings.OPENAI_API_KEY = ""
    config = LLMProviderConfig.objects.create(name="Keyless", provider="openai", base_url=gpt.base_url)
    response = staff_client.post(f"{CHANGELIST}{config.pk}/test-connection/", follow=True)
    [(level, message)] = shown(response)
    assert level == "error" and message.startswith("“Keyless”: not_configured:") and gpt.requests == []


def test_the_test_is_a_post_for_staff_only(client, staff_client, make_user, gpt):
    config = LLMProviderConfig.objects.create(name="GPT", provider="openai", base_url=gpt.base_url, api_key="k")
    url = f"{CHANGELIST}{config.pk}/test-connection/"
    assert staff_client.get(url).status_code == 405
    client.force_login(make_user(email="plain@example.com"))
    response = client.post(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert gpt.requests == []


def test_the_add_form_says_the_temperature_is_not_sent_to_anthropic(staff_client):
    response = staff_client.get(f"{CHANGELIST}add/").content.decode()
    assert "the API version Conduit speaks refuses it" in response
