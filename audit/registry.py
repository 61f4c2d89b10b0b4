"""Which models django-auditlog records, and what it must never store."""

from __future__ import annotations

from auditlog.registry import auditlog

SECRET = "[secret]"


def hide_secret(value) -> str:
    """The mask of secret fields: a change is recorded, never the value (nor half of it, as
    auditlog's default mask would)."""
    return SECRET


def register_models() -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiKey
    from agents.models import AIAgent, Integration, LLMProviderConfig, PromptTemplate
    from usage.models import Budget

    secret = "audit.registry.hide_secret"
    auditlog.register(LLMProviderConfig, mask_fields=["api_key"], mask_callable=secret)
    auditlog.register(Integration, mask_fields=["credentials", "oauth_client_secret"], mask_callable=secret)
    auditlog.register(PromptTemplate)
    auditlog.register(AIAgent, m2m_fields={"integrations"})
    auditlog.register(get_user_model(), exclude_fields=["password", "last_login"])
    auditlog.register(Budget)
    # Created and revoked, by whom; never the key's hash, nor the (rate-limited) last use.
    auditlog.register(ApiKey, exclude_fields=["key_hash", "last_used_at"])
