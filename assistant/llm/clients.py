"""The provider SDK clients, pooled the same way for every adapter: one client (and so one pool of
connections) per event loop and per (API key, base URL, egress guard). A client's connections belong
to the loop that opened them, hence per loop; the weak keys let a closed loop's clients go."""

from __future__ import annotations

import asyncio
import weakref
from typing import Callable, Generic, TypeVar

import httpx2

from assistant.llm.types import ModelSettings
from config.egress import guarded_http_client

Client = TypeVar("Client")


class ClientPool(Generic[Client]):
    def __init__(self, make: Callable[[ModelSettings], Client]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Client]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, model_settings: ModelSettings) -> Client:
        per_loop = self._clients.setdefault(asyncio.get_running_loop(), {})
        key = (model_settings.api_key, model_settings.base_url, model_settings.guard_egress)
        client = per_loop.get(key)
        if client is None:
            client = per_loop[key] = self._make(model_settings)
        return client


def guarded_sdk_http_client(timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """The SDKs' own default HTTP client settings, on the egress-guarded transport (users' URLs)."""
    return guarded_http_client(
        timeout=timeout, follow_redirects=True, limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
    )
