"""`POST /v1/embeddings`: OpenAI's Embeddings API, proxied to an embeddings model staff configured.

An LLM config with provider `openai`, `for_embeddings` set and an `embeddings_model` serves the
requests whose `model` is that name: the organization's configs serve everyone, a user's own configs
serve that user (an organization's config wins over a user's of the same name). The call goes
through the same pooled `openai` client as the config's chat turns (assistant/llm/openai_chat.py:
the organization's key only to the organization's endpoint, users' endpoints through the egress
guard). The caller's budgets apply as for a turn (refused with a 429 `insufficient_quota` when used
up), and the provider's counted input tokens are added to the caller's and the organization's usage,
priced at the config's input price.

Without such a config the answer is a 404 in OpenAI's shape saying no embeddings model is configured.
Bounds: at most MAX_INPUTS inputs, each a non-empty string of at most MAX_INPUT_CHARS characters or
a non-empty list of at most MAX_INPUT_TOKENS token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from agents import selectors as agent_selectors
from agents.models import LLMProviderConfig
from assistant.llm import LLMError
from assistant.llm import openai_chat
from assistant.runs import model_settings_from
from assistant.surfaces.openai import api
from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai.format import OpenAIError, bad_request
from config.threads import run_sync
from usage import services as usage_services

MAX_INPUTS = 2048  # as OpenAI
MAX_INPUT_CHARS = 32_000  # about OpenAI's 8,192 tokens per input
MAX_INPUT_TOKENS = 8192
MAX_DIMENSIONS = 65_536
ENCODINGS = {"float", "base64"}


@dataclass
class EmbeddingsRequest:
    model: str
    inputs: str | list[Any]  # as the provider takes it: a string, or a list of strings / token lists
    count: int
    encoding_format: str = "float"
    dimensions: int | None = None


def _check_tokens(tokens: list[Any], param: str) -> None:
    if not tokens or len(tokens) > MAX_INPUT_TOKENS:
        raise bad_request(f"A token list must hold 1 to {MAX_INPUT_TOKENS} token ids.", param)
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**32 for t in tokens):
        raise bad_request("Token ids must be non-negative integers.", param)


def _check_text(text: str, param: str) -> None:
    if not text:
        raise bad_request("An input must not be an empty string.", param)
    if len(text) > MAX_INPUT_CHARS:
        raise bad_request(f"An input must have at most {MAX_INPUT_CHARS} characters.", param)


def parse_embeddings_request(data: Any) -> EmbeddingsRequest:
    """Validate an Embeddings body. Raises OpenAIError (400 naming the `param`)."""
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", None)
    model = data.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 255:
        raise bad_request("`model` must be the name of a configured embeddings model.", "model")
    inputs = data.get("input")
    if isinstance(inputs, str):
        _check_text(inputs, "input")
        count = 1
    elif isinstance(inputs, list) and inputs and all(isinstance(t, int) for t in inputs):
        _check_tokens(inputs, "input")
        count = 1
    elif isinstance(inputs, list) and inputs:
        if len(inputs) > MAX_INPUTS:
            raise bad_request(f"At most {MAX_INPUTS} inputs.", "input")
        for index, item in enumerate(inputs):
            if isinstance(item, str):
                _check_text(item, f"input[{index}]")
            elif isinstance(item, list):
                _check_tokens(item, f"input[{index}]")
            else:
                raise bad_request("Each input must be a string or a list of token ids.", f"input[{index}]")
        count = len(inputs)
    else:
        raise bad_request("`input` must be a non-empty string, a list of them, or token ids.", "input")
    encoding = data.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise bad_request("`encoding_format` must be float or base64.", "encoding_format")
    dimensions = data.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise bad_request("`dimensions` must be a positive integer.", "dimensions")
    return EmbeddingsRequest(model=model, inputs=inputs, count=count, encoding_format=encoding, dimensions=dimensions)


# --- which config -----------------------------------------------------------------------------------


def embeddings_config_for(*, user, model: str) -> LLMProviderConfig:
    """The config serving `model` for `user`: the organization's, else the user's own. Raises a 404
    OpenAIError naming what there is."""
    serving = LLMProviderConfig.objects.filter(
        Q(owner__isnull=True) | Q(owner=user), for_embeddings=True, provider=LLMProviderConfig.Provider.OPENAI
    )
    config = serving.filter(embeddings_model=model).order_by("owner_id", "id").first()  # NULL (the organization's) first
    if config is not None:
        return config
    names = sorted(set(serving.values_list("embeddings_model", flat=True)))
    if not names:
        raise OpenAIError(404, "No embeddings model is configured on this server (staff mark an LLM config with "
                          "provider “openai” for embeddings).", code="model_not_found", param="model")  # fmt: skip
    raise OpenAIError(404, f"The embeddings model `{model}` does not exist or you do not have access to it "
                      f"(configured: {', '.join(names)}).", code="model_not_found", param="model")  # fmt: skip


def _prepare(request: HttpRequest) -> tuple[Any, EmbeddingsRequest, LLMProviderConfig]:
    user = api.authenticated_user(request)
    wanted = parse_embeddings_request(wire.parse_body(api.read_body(request)))
    config = embeddings_config_for(user=user, model=wanted.model)
    try:
        usage_services.budget_check(user.pk)
    except LLMError as refused:
        raise OpenAIError.from_code(refused.code, refused.message) from None
    return user, wanted, config


# --- the call ---------------------------------------------------------------------------------------


def _counted(user_id: int, config_id: int, tokens: int) -> None:
    usage = {"input_tokens": tokens}
    with transaction.atomic():
        usage_services.usage_add(user_id=user_id, usage=usage, cost=usage_services.prices_for_config(config_id).cost(usage))


def _malformed() -> OpenAIError:
    return OpenAIError.from_code("upstream_error", "The model provider's embeddings answer could not be read.")


def _answer(raw: Any, wanted: EmbeddingsRequest) -> tuple[dict[str, Any], int]:
    """The provider's answer as OpenAI's (our `model` name), and its counted input tokens."""
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list) or len(raw["data"]) != wanted.count:
        raise _malformed()
    data = []
    for index, item in enumerate(sorted(raw["data"], key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not (isinstance(vector, str) or (isinstance(vector, list) and all(isinstance(x, (int, float)) for x in vector))):
            raise _malformed()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        tokens = _estimate(wanted.inputs)  # some compatible servers don't count: still counted, estimated
    return {"object": "list", "data": data, "model": wanted.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, tokens  # fmt: skip


def _estimate(inputs: str | list[Any]) -> int:
    items = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs
    return sum(len(item) if isinstance(item, list) else max(1, len(item) // 4) for item in items)


async def embeddings_create(*, user, wanted: EmbeddingsRequest, config: LLMProviderConfig) -> dict[str, Any]:
    """The provider's embeddings of `wanted.inputs`, counted to the user. Raises OpenAIError."""
    settings = model_settings_from(await run_sync(agent_selectors.llm_config_resolve, config))
    options: dict[str, Any] = {"encoding_format": wanted.encoding_format}  # always given: the SDK then passes it as is
    if wanted.dimensions is not None:
        options["dimensions"] = wanted.dimensions
    try:
        client = openai_chat.async_client(settings)
        raw = await client.embeddings.with_raw_response.create(model=wanted.model, input=wanted.inputs, **options)
        body = raw.http_response.json()
    except LLMError as failed:
        raise OpenAIError.from_code(failed.code, failed.message) from None
    except ValueError:  # not JSON
        raise _malformed() from None
    except Exception as exc:  # noqa: BLE001 - map_sdk_error re-raises what isn't the SDK's or the HTTP library's
        failed = openai_chat.map_sdk_error(exc)
        raise OpenAIError.from_code(failed.code, failed.message) from None
    answer, tokens = _answer(body, wanted)
    if tokens:
        await run_sync(_counted, user.pk, config.pk, tokens)
    return answer


@csrf_exempt
async def embeddings(request: HttpRequest) -> JsonResponse:
    """`POST /v1/embeddings`: see the module's docstring."""
    try:
        api._only(request, "POST")
        # As the chat view plans its turn: in the request's thread-sensitive context (see api.py).
        user, wanted, config = await sync_to_async(_prepare, thread_sensitive=True)(request)
        return JsonResponse(await embeddings_create(user=user, wanted=wanted, config=config))
    except OpenAIError as error:
        return api._error_response(error)
