"""The one place that talks to models: one adapter module per provider behind `stream_call`.

- anthropic_messages: the Anthropic Messages API (anthropic SDK)
- openai_chat: OpenAI's Chat Completions API and compatible servers (openai SDK)

Callers hand a provider-neutral ModelCall (messages in the stored block format) and read neutral
events (assistant.llm.types); they never branch on the provider.
"""

from __future__ import annotations

import importlib
from typing import AsyncIterator

from assistant.llm.anthropic_messages import async_client, map_sdk_error
from assistant.llm.types import CallEvent, LLMError, ModelCall, ModelSettings, Provider

# Imported on first use: the openai SDK adds ~0.3 s (seconds on a loaded machine) to every process's
# start, which a deployment that only uses Anthropic shouldn't pay.
_ADAPTERS = {Provider.ANTHROPIC: "assistant.llm.anthropic_messages", Provider.OPENAI: "assistant.llm.openai_chat"}


def _adapter(model: ModelSettings):
    module = _ADAPTERS.get(model.provider)
    if module is None:
        raise LLMError("not_configured", f"Unknown model provider {model.provider!r}.")
    return importlib.import_module(module)


def check_configured(model: ModelSettings) -> None:
    """Raise not_configured now rather than at the first call (no key, unknown provider)."""
    _adapter(model).async_client(model)


def stream_call(model: ModelSettings, call: ModelCall) -> AsyncIterator[CallEvent]:
    """Stream one model call: TextDelta, ThinkingDelta, UsageReported, ToolUseRequested events, then
    ModelCallFinished. Failures raise LLMError. Cancelling the consumer closes the upstream request."""
    return _adapter(model).stream_call(model, call)


async def probe(model: ModelSettings) -> str:
    """One tiny call to check a config: the model's answer text, or LLMError."""
    return await _adapter(model).probe(model)


__all__ = [
    "LLMError",
    "ModelCall",
    "ModelSettings",
    "Provider",
    "async_client",
    "check_configured",
    "map_sdk_error",
    "probe",
    "stream_call",
]
