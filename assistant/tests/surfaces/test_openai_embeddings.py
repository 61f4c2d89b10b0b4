"""`/v1/embeddings` in process, against the fake OpenAI server (config/testing/fake_openai.py): the
configured embeddings model proxied with usage counted and budgets applied, bounds, owners' configs
kept apart, no config a 404 in OpenAI's shape; and `/v1/completions`' 404 naming what to use. (The
served one, with the `openai` SDK, is in test_openai_responses_live.py.)"""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from agents.models import LLMProviderConfig
from assistant.tests.surfaces.test_openai_api import error_of, v1
from config.testing.fake_openai import HttpError, fake_openai_server
from usage.models import UsageCounter
from usage.services import usage_add

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "text-embedding-test"


@pytest.fixture(scope="module")
def gpt():
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture
def fake_gpt(gpt, settings):
    settings.OPENAI_MAX_RETRIES = 0
    gpt.requests.clear()
    return gpt


@pytest.fixture
def embeddings_config(db, fake_gpt):
    return LLMProviderConfig.objects.create(
        name="Embeddings", provider="openai", model="gpt-test-1", base_url=fake_gpt.base_url, api_key="sk-org",
        for_embeddings=True, embeddings_model=MODEL, price_input_per_mtok=Decimal("2"), price_output_per_mtok=Decimal("8"),
    )  # fmt: skip


async def embed(user, **body):
    return await v1(user, "POST", "/v1/embeddings", {"model": MODEL, **body})


def counters(user) -> dict:
    return {row.user_id: (row.input_tokens, row.cost) for row in UsageCounter.objects.all()}


async def test_it_answers_one_vector_per_input_and_counts_the_tokens(user, embeddings_config, fake_gpt):
    answer = await embed(user, input=["one two three", "four"])

    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert body["object"] == "list" and body["model"] == MODEL
    assert [(d["object"], d["index"], len(d["embedding"])) for d in body["data"]] == [("embedding", 0, 8), ("embedding", 1, 8)]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    sent = fake_gpt.requests[-1]
    assert sent.body == {"model": MODEL, "input": ["one two three", "four"], "encoding_format": "float"}
    assert sent.headers["authorization"] == "Bearer sk-org"
    # The caller's and the organization's counters, at the config's input price.
    assert await sync_to_async(counters)(user) == {user.pk: (4, Decimal("0.00000800")), None: (4, Decimal("0.00000800"))}


async def test_base64_and_dimensions_reach_the_provider_and_come_back_as_sent(user, embeddings_config, fake_gpt):
    answer = await embed(user, input="hello", encoding_format="base64", dimensions=4)

    vector = json.loads(answer.body)["data"][0]["embedding"]
    assert isinstance(vector, str) and len(struct.unpack("<4f", base64.b64decode(vector))) == 4
    assert fake_gpt.requests[-1].body["dimensions"] == 4


async def test_without_an_embeddings_config_it_is_a_404_saying_so(user, fake_gpt):
    await sync_to_async(LLMProviderConfig.objects.create)(name="Chat", provider="openai", model="gpt-test-1")

    answer = await embed(user, input="hello")

    assert answer.status == 404
    error = error_of(answer)
    assert error["code"] == "model_not_found" and "No embeddings model is configured" in error["message"]


async def test_another_model_name_is_a_404_naming_the_configured_ones(user, embeddings_config, fake_gpt):
    answer = await v1(user, "POST", "/v1/embeddings", {"model": "text-embedding-3-large", "input": "hi"})

    assert answer.status == 404 and f"configured: {MODEL}" in error_of(answer)["message"]
    assert fake_gpt.requests == []


async def test_a_users_own_embeddings_config_serves_that_user_only(user, other_user, fake_gpt, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [fake_gpt.base_url.removeprefix("http://").split("/")[0]]
    await sync_to_async(LLMProviderConfig.objects.create)(
        name="Mine", provider="openai", base_url=fake_gpt.base_url, api_key="sk-users-own", owner=user,
        for_embeddings=True, embeddings_model=MODEL,
    )  # fmt: skip

    mine = await embed(user, input="hi")
    theirs = await embed(other_user, input="hi")

    assert mine.status == 200 and fake_gpt.requests[-1].headers["authorization"] == "Bearer sk-users-own"
    assert theirs.status == 404 and len(fake_gpt.requests) == 1


async def test_a_used_up_budget_is_a_429_and_the_provider_is_not_called(user, embeddings_config, fake_gpt, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 10
    await sync_to_async(usage_add)(user_id=user.pk, usage={"input_tokens": 10}, cost=None)

    answer = await embed(user, input="hello")

    assert answer.status == 429 and error_of(answer)["code"] == "insufficient_quota"
    assert fake_gpt.requests == []


@pytest.mark.parametrize(
    ("status", "code", "ours"),
    [(500, "server_error", 502), (401, "invalid_api_key", 502), (429, "rate_limit_exceeded", 429)],
)
async def test_a_provider_error_is_mapped_as_for_chat(user, embeddings_config, fake_gpt, status, code, ours):
    fake_gpt.script(HttpError(status, code, "Nope"))

    answer = await embed(user, input="hello")

    assert answer.status == ours and error_of(answer)["message"] != "Nope"
    assert await sync_to_async(UsageCounter.objects.count)() == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": "x" * 32_001}, "input"),
        ({"input": ["a"] * 2049}, "input"),
        ({"input": [[1, 2], [-1]]}, "input[1]"),
        ({"input": [1] * 8193}, "input"),
        ({"input": [{"text": "a"}]}, "input[0]"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "model": ""}, "model"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(user, embeddings_config, fake_gpt, body, param):
    answer = await embed(user, **body)

    assert answer.status == 400 and error_of(answer)["param"] == param
    assert fake_gpt.requests == []


def test_only_an_openai_config_with_its_model_can_serve_embeddings(auth_client):
    anthropic = auth_client.post("/api/v1/llm-configs", {"name": "C", "provider": "anthropic", "for_embeddings": True,
                                                        "embeddings_model": MODEL}, format="json")  # fmt: skip
    nameless = auth_client.post("/api/v1/llm-configs", {"name": "G", "provider": "openai", "for_embeddings": True}, format="json")
    served = auth_client.post("/api/v1/llm-configs", {"name": "G", "provider": "openai", "for_embeddings": True,
                                                     "embeddings_model": MODEL}, format="json")  # fmt: skip

    assert anthropic.status_code == 400 and "for_embeddings" in anthropic.json()["detail"]["fields"], anthropic.json()
    assert nameless.status_code == 400 and "embeddings_model" in nameless.json()["detail"]["fields"], nameless.json()
    assert served.status_code == 201 and served.json()["for_embeddings"] is True
    assert served.json()["embeddings_model"] == MODEL


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_legacy_completions_is_a_404_saying_to_use_chat_completions(user, method):
    answer = await v1(user, method, "/v1/completions", {"model": "helper", "prompt": "Hi"} if method == "POST" else None)

    assert answer.status == 404 and "use POST /v1/chat/completions" in error_of(answer)["message"]


# --- trust boundary: a user's own embeddings config (platform.md's egress and key rules) -----------


async def test_a_users_embeddings_config_cannot_reach_an_address_staff_did_not_allow(user, fake_gpt, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []  # 127.0.0.1, where the fake listens, is the server's own network
    await sync_to_async(LLMProviderConfig.objects.create)(
        name="Inside", provider="openai", base_url=fake_gpt.base_url, api_key="sk-users-own", owner=user,
        for_embeddings=True, embeddings_model=MODEL,
    )  # fmt: skip

    answer = await embed(user, input="hi")

    assert fake_gpt.requests == []  # nothing left the server for the internal address
    assert answer.status == 502 and error_of(answer)["code"] == "egress_refused", answer.body


async def test_the_organizations_key_never_goes_to_a_users_embeddings_endpoint(user, fake_gpt, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [fake_gpt.base_url.removeprefix("http://").split("/")[0]]
    settings.OPENAI_API_KEY = "sk-organization-secret"
    await sync_to_async(LLMProviderConfig.objects.create)(
        name="No key", provider="openai", base_url=fake_gpt.base_url, api_key="", owner=user,
        for_embeddings=True, embeddings_model=MODEL,
    )  # fmt: skip

    await embed(user, input="hi")

    sent = [request.headers.get("authorization", "") for request in fake_gpt.requests]
    assert all("sk-organization-secret" not in header for header in sent), sent
