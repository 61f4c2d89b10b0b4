"""LLM provider configs: a provider, model and key, an organization's or a user's."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from agents.fields import EncryptedTextField

from .common import _check_users_url, _owner_field


class LLMProviderConfig(models.Model):
    class Provider(models.TextChoices):
        # Only providers the assistant can actually call (one adapter each in assistant/llm/).
        ANTHROPIC = "anthropic", "Anthropic (Messages API)"
        OPENAI = "openai", "OpenAI or OpenAI-compatible (Chat Completions: Azure OpenAI, Ollama, vLLM, LM Studio …)"

    name = models.CharField(max_length=255)
    provider = models.CharField(
        max_length=32,
        choices=Provider.choices,
        default=Provider.ANTHROPIC,
        help_text="The API the model speaks. “openai” is any Chat Completions endpoint: OpenAI itself, or a "
        "compatible server named by the base URL.",
    )
    model = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's model name (claude-sonnet-4-5, gpt-4.1-mini, llama3.1:8b …). Empty: "
        "ANTHROPIC_MODEL or OPENAI_MODEL from the settings, by provider.",
    )
    base_url = models.URLField(
        blank=True,
        help_text="Empty: the provider's endpoint set by staff (ANTHROPIC_BASE_URL / OPENAI_BASE_URL), else its "
        "public one. For OpenAI-compatible servers the URL up to /v1 (http://ollama:11434/v1). A user's own "
        "base URL needs the user's own API key.",
    )
    api_key = EncryptedTextField(
        blank=True,
        help_text="Encrypted at rest. Empty: ANTHROPIC_API_KEY or OPENAI_API_KEY from the settings, by provider "
        "(never sent to a user's own base URL). Servers without keys take any placeholder.",
    )
    max_tokens = models.PositiveIntegerField(
        default=4096,
        validators=[MinValueValidator(1), MaxValueValidator(200_000)],
        help_text="Longest answer per model call (OpenAI: max_completion_tokens; compatible servers: max_tokens).",
    )
    temperature = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="OpenAI-compatible providers only (0–2; 1 is their default and is not sent, as reasoning "
        "models take no other). Not sent to Anthropic: the API version Conduit speaks refuses it.",
    )
    is_default = models.BooleanField(
        default=False, help_text="Used by agents without a config of their own (one default per owner)."
    )
    owner = _owner_field("llm_configs")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Prices in the organization's currency per million tokens; empty: calls of this config cost nothing
    # that is known (their tokens still count against token budgets). See usage/prices.py.
    price_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                               validators=[MinValueValidator(0)])
    price_output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                validators=[MinValueValidator(0)])
    price_cache_read_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                    validators=[MinValueValidator(0)])
    price_cache_write_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                     validators=[MinValueValidator(0)])
    # `POST /v1/embeddings` (assistant/surfaces/openai/embeddings.py) goes through configs marked so.
    for_embeddings = models.BooleanField(
        default=False,
        help_text="Serves POST /v1/embeddings for its embeddings model (provider “openai” only): the organization's "
        "configs for everyone, a user's own for that user.",
    )
    embeddings_model = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's embeddings model (text-embedding-3-small …): the `model` clients of "
        "/v1/embeddings ask for. Required when the config serves embeddings.",
    )

    class Meta:
        verbose_name = "LLM provider config"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(is_default=True, owner__isnull=False),
                name="agents_llmconfig_one_default_per_owner",
                violation_error_message="This owner already has a default LLM config.",
            ),
            # NULLs are distinct in unique indexes: the organization-wide default needs its own.
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True, owner__isnull=True),
                name="agents_llmconfig_one_org_default",
                violation_error_message="There already is an organization-wide default LLM config.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.for_embeddings and self.provider != self.Provider.OPENAI:
            raise ValidationError({"for_embeddings": ["Only a config with provider “openai” can serve embeddings."]})
        if self.for_embeddings and not self.embeddings_model.strip():
            raise ValidationError({"embeddings_model": ["A config that serves embeddings needs its embeddings model."]})
        # Trust rule: the organization's key (ANTHROPIC_API_KEY, OPENAI_API_KEY) goes only to the organization's
        # endpoint, so a user's config that names its own endpoint must bring its own key.
        if self.owner_id is None or not self.base_url:
            return
        if not self.api_key:
            raise ValidationError(
                {"api_key": ["A config with its own base URL needs its own API key (the organization's key is "
                             "only sent to the organization's endpoint)."]}
            )
        _check_users_url(self.base_url, field="base_url")
