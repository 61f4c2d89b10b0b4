"""Which models django-auditlog records, and what it must never store."""

from __future__ import annotations

from auditlog.registry import auditlog

SECRET = "[secret]"


def hide_secret(value) -> str:
    """The mask of secret fields: a change is recorded, never the value (nor half of it, as
    auditlog's default mask would)."""
    return SECRET


def _concrete(model, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """The model's own columns: auditlog otherwise diffs a created or deleted object over every field
    `_meta.get_fields()` lists, reverse relations too ("18 changes: claire_sessions, prompt_templates, …")."""
    return [field.name for field in model._meta.concrete_fields if field.name not in exclude]


def _register(model, *, exclude: tuple[str, ...] = (), **options) -> None:
    auditlog.register(model, include_fields=_concrete(model, exclude=exclude), **options)


def register_models() -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey
    from agents.models import AIAgent, Integration, LLMProviderConfig, PromptTemplate
    from usage.models import Budget

    secret = "audit.registry.hide_secret"
    _register(LLMProviderConfig, mask_fields=["api_key"], mask_callable=secret)
    _register(Integration, mask_fields=["credentials", "oauth_client_secret"], mask_callable=secret)
    _register(PromptTemplate)
    _register(AIAgent, m2m_fields={"integrations"})
    _register(get_user_model(), exclude=("password", "last_login"))
    _register(Budget)
    # Created and revoked, by whom; never the key's hash, nor the (rate-limited) last use.
    _register(ApiKey, exclude=("key_hash", "last_used_at"))
