"""The trust rule for OpenAI-compatible configs: the organization's OPENAI_API_KEY goes only to the
organization's OpenAI endpoint; a user's own base URL brings its own key and passes the egress policy
on every connection (the openai SDK on the guarded transport), refused at once without retries."""

from __future__ import annotations

import logging
import time

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, LLMProviderConfig
from assistant import runs
from assistant.engine import LoopFinished, LoopRequest, ModelSettings, TextDelta, agent_loop
from assistant.llm import LLMError
from config.testing.fake_openai import Chunks, fake_openai_server
from config.testing.listener import recording_listener

ORG_OPENAI_KEY = "sk-organization-openai-key"


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def org_openai(settings, gpt):
    settings.OPENAI_API_KEY = ORG_OPENAI_KEY
    settings.OPENAI_BASE_URL = gpt.base_url
    settings.OPENAI_MODEL = "gpt-org-default"
    settings.ANTHROPIC_API_KEY = "sk-organization-anthropic-key"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"
    return gpt


async def answer(base_url: str, *, guard_egress: bool) -> str:
    model = ModelSettings(
        model="gpt-test-1", api_key="sk-user-key", base_url=base_url, max_tokens=64, guard_egress=guard_egress,
        provider="openai",
    )  # fmt: skip
    events = [event async for event in agent_loop(LoopRequest(model=model, messages=[{"role": "user", "content": "Hi"}]))]
    assert isinstance(events[-1], LoopFinished)
    return "".join(event.text for event in events if isinstance(event, TextDelta))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_guarded_base_url_on_loopback_is_refused_without_connecting_or_retrying(settings, caplog, host):
    caplog.set_level(logging.DEBUG, logger="openai")
    settings.OPENAI_MAX_RETRIES = 2  # the SDK would retry a connection error twice, with backoff
    with recording_listener() as listener:
        started = time.monotonic()
        with pytest.raises(LLMError) as error:
            await answer(f"http://{host}:{listener.port}/v1", guard_egress=True)
        elapsed = time.monotonic() - started
        accepted = listener.accepted
    assert error.value.code == "egress_refused" and not error.value.retryable
    assert "loopback" in error.value.message and accepted == 0
    assert "Retrying request" not in caplog.text and elapsed < 0.4, "a refusal is final, not retried with backoff"


async def test_the_same_call_without_the_guard_does_connect(settings):
    # What the guard prevents: the SDK connects to whatever the base URL says, and retries.
    settings.OPENAI_MAX_RETRIES = 1
    with recording_listener() as listener:
        with pytest.raises(LLMError) as error:
            await answer(f"http://127.0.0.1:{listener.port}/v1", guard_egress=False)
        accepted = listener.accepted
    assert error.value.code == "upstream_unavailable" and accepted == 2


async def test_a_guarded_config_whose_host_is_allowed_reaches_the_fake_api(settings, gpt):
    settings.OUTBOUND_ALLOWED_HOSTS = [gpt.base_url.removeprefix("http://").removesuffix("/v1")]
    gpt.script(Chunks(text=["Hi ", "there"]))
    assert await answer(gpt.base_url, guard_egress=True) == "Hi there"
    assert gpt.requests[0].headers["authorization"] == "Bearer sk-user-key"


@pytest.mark.django_db
def test_a_users_openai_config_with_its_own_url_and_no_key_never_gets_the_organizations_key(org_openai, user, settings):
    with fake_openai_server() as users_endpoint:
        settings.OUTBOUND_ALLOWED_HOSTS = [users_endpoint.base_url.removeprefix("http://").removesuffix("/v1")]
        config = LLMProviderConfig.objects.create(
            name="mine", owner=user, provider="openai", base_url=users_endpoint.base_url
        )  # stored around the services, which refuse it
        AIAgent.objects.create(name="Mine", slug="mine", owner=user, system_prompt_text="x", llm_config=config)
        with pytest.raises(runs.TurnRefused) as refused:
            runs.turn_begin(user=user, text="hello", agent_slug="mine")
        assert refused.value.code == "not_configured" and "own API key" in refused.value.message
        assert users_endpoint.requests == []
    model = runs.model_settings_for(AIAgent.objects.get(slug="mine"))
    assert model.api_key == "" and model.guard_egress


@pytest.mark.django_db
def test_a_users_openai_config_must_bring_its_own_key_with_its_own_url(auth_client, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["models.example.com"]
    response = auth_client.post(
        "/api/v1/llm-configs",
        {"name": "mine", "provider": "openai", "base_url": "https://models.example.com/v1"},
        format="json",
    )
    assert response.status_code == 400 and list(response.json()["detail"]["fields"]) == ["api_key"]


@pytest.mark.django_db(transaction=True)
async def test_a_users_openai_config_without_a_url_uses_the_organizations_openai_endpoint_and_key(org_openai, user):
    config = await LLMProviderConfig.objects.acreate(name="mine", owner=user, provider="openai")
    await AIAgent.objects.acreate(name="M", slug="m", owner=user, system_prompt_text="x", llm_config=config)
    model = await sync_to_async(runs.model_settings_for)(await AIAgent.objects.aget(slug="m"))
    assert (model.provider, model.api_key, model.base_url, model.model, model.guard_egress) == (
        "openai", ORG_OPENAI_KEY, org_openai.base_url, "gpt-org-default", False
    ), "the OpenAI settings, not the Anthropic ones"
    events = [e async for e in agent_loop(LoopRequest(model=model, messages=[{"role": "user", "content": "Hi"}]))]
    assert isinstance(events[-1], LoopFinished)
    assert org_openai.requests[0].headers["authorization"] == f"Bearer {ORG_OPENAI_KEY}"
