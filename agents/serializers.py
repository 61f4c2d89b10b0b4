"""API shapes. Serializers validate and represent; the viewsets hand validated data to services.
Secrets are write-only: responses carry `has_api_key` / `api_key_masked` (`credentials_masked`)."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents import selectors
from agents.fields import mask_credentials, mask_secret
from agents.models import (
    AIAgent,
    Integration,
    LLMProviderConfig,
    Message,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
)


def _normalized_tags(tags: list[str]) -> list[str]:
    """Tags are stored lower-case, trimmed and without duplicates (the validators check the rest)."""
    return list(dict.fromkeys(tag.strip().lower() for tag in tags))


class _VisiblePrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A reference to an object the requesting user may read; anything else "does not exist"."""

    def __init__(self, selector, **kwargs):
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.selector(user=self.context["request"].user)


_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
_MAX_ID = 2**63 - 1  # past it the database driver overflows


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "pattern": _SLUG.pattern}]})
class _VisibleAgentField(_VisiblePrimaryKeyField):
    """An agent the requesting user may use, by id or by slug (as in the run API's URLs); answered as its id.
    A slug names the organization's agent first, else the user's own."""

    default_error_messages = {
        "does_not_exist": 'No agent with id {pk_value} that you can use.',
        "no_slug": 'No agent with slug "{slug}" that you can use.',
        "incorrect_type": "Give the agent's id (a number) or its slug (letters, digits, - and _).",
    }

    def __init__(self, **kwargs):
        super().__init__(selectors.agent_visible, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("incorrect_type")
        if isinstance(data, str) and data.isdecimal():
            data = int(data)
        if isinstance(data, int):
            if not 0 < data <= _MAX_ID:
                self.fail("does_not_exist", pk_value=data)
            return super().to_internal_value(data)
        if not isinstance(data, str) or not _SLUG.match(data):
            self.fail("incorrect_type")
        agent = selectors.agent_get_by_slug(user=self.context["request"].user, slug=data)
        if agent is None:
            self.fail("no_slug", slug=data)
        return agent


class LLMProviderConfigSerializer(serializers.ModelSerializer):
    provider = serializers.ChoiceField(
        choices=LLMProviderConfig.Provider.choices,
        default=LLMProviderConfig.Provider.ANTHROPIC,
        error_messages={
            "invalid_choice": "Unknown provider \"{input}\"; supported: "
            + ", ".join(LLMProviderConfig.Provider.values)
            + "."
        },
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=4096,
        style={"input_type": "password"},
        help_text="Write-only. Omit to keep the current key; empty to remove it (then ANTHROPIC_API_KEY or "
        "OPENAI_API_KEY is used, by provider, never with a base URL of your own).",
    )
    has_api_key = serializers.SerializerMethodField()
    api_key_masked = serializers.SerializerMethodField()

    class Meta:
        model = LLMProviderConfig
        fields = [
            "id",
            "name",
            "provider",
            "model",
            "base_url",
            "api_key",
            "has_api_key",
            "api_key_masked",
            "max_tokens",
            "temperature",
            "is_default",
            "for_embeddings",
            "embeddings_model",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["owner", "created_at", "updated_at"]

    def get_has_api_key(self, obj: LLMProviderConfig) -> bool:
        return bool(obj.api_key)

    def get_api_key_masked(self, obj: LLMProviderConfig) -> str:
        return mask_secret(obj.api_key)


class IntegrationSerializer(serializers.ModelSerializer):
    provider = serializers.ChoiceField(
        choices=Integration.Provider.choices,
        error_messages={
            "invalid_choice": "Unknown provider \"{input}\"; supported: " + ", ".join(Integration.Provider.values) + "."
        },
    )
    credentials = serializers.JSONField(
        write_only=True,
        required=False,
        allow_null=True,
        help_text="Write-only: a token string or an object of credentials. Omit to keep the current ones.",
    )
    has_credentials = serializers.SerializerMethodField()
    credentials_masked = serializers.SerializerMethodField()

    class Meta:
        model = Integration
        fields = [
            "id",
            "name",
            "provider",
            "auth_type",
            "auth",
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_scopes",
            "credentials",
            "has_credentials",
            "credentials_masked",
            "mcp_server",
            "is_active",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["owner", "created_at", "updated_at"]
        extra_kwargs = {"oauth_client_secret": {"write_only": True}}
        # One-active-per-provider is checked by the service (the owner is not an input here).
        validators: list = []

    def validate_credentials(self, value: Any) -> Any:
        if value is not None and not isinstance(value, (str, dict)):
            raise serializers.ValidationError("Credentials must be a string or an object.")
        return value

    def get_has_credentials(self, obj: Integration) -> bool:
        return obj.credentials not in (None, "", {})

    @extend_schema_field(OpenApiTypes.ANY)
    def get_credentials_masked(self, obj: Integration) -> Any:
        return mask_credentials(obj.credentials)


class PromptTemplateSerializer(serializers.ModelSerializer):
    variables = serializers.ListField(child=serializers.CharField(), read_only=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "body",
            "variables",
            "tags",
            "visibility",
            "version",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["version", "owner", "created_at", "updated_at"]
        validators: list = []  # slug uniqueness per owner: checked by the service

    def validate_tags(self, value: list[str]) -> list[str]:
        return _normalized_tags(value)


class PromptTemplateVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromptTemplateVersion
        fields = ["version", "body", "created_by", "created_at"]
        read_only_fields = fields


class PromptRenderSerializer(serializers.Serializer):
    variables = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)


class PromptRenderResultSerializer(serializers.Serializer):
    rendered = serializers.CharField()
    version = serializers.IntegerField()


class PromptVariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    default = serializers.CharField(allow_null=True, help_text="Used when the session gives no value; null: required.")
    required = serializers.BooleanField()


class AIAgentSerializer(serializers.ModelSerializer):
    system_prompt = _VisiblePrimaryKeyField(selectors.prompt_visible, required=False, allow_null=True)
    llm_config = _VisiblePrimaryKeyField(selectors.llm_config_visible, required=False, allow_null=True)
    integrations = _VisiblePrimaryKeyField(selectors.integration_visible, many=True, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    allowed_tools = serializers.ListField(child=serializers.CharField(max_length=128), required=False)
    approval_required = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, max_length=100,
        help_text='Tools whose calls wait for your decision before they run: names or patterns as in allowed_tools; "*" for all.',
    )  # fmt: skip
    prompt_variables = PromptVariableSerializer(
        many=True, read_only=True, help_text="What its system prompt takes from the session's custom properties."
    )

    class Meta:
        model = AIAgent
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "category",
            "tags",
            "system_prompt",
            "system_prompt_text",
            "system_prompt_lost",
            "prompt_variables",
            "llm_config",
            "allowed_tools",
            "approval_required",
            "integrations",
            "max_turns",
            "workspace_tools",
            "is_active",
            "custom_properties_schema",
            "retention_days",
            "owner",
            "created_at",
            "updated_at",
        ]
        # retention_days: set by staff (admin); users see how long their sessions with it are kept.
        read_only_fields = ["system_prompt_lost", "retention_days", "owner", "created_at", "updated_at"]

    def validate_tags(self, value: list[str]) -> list[str]:
        return _normalized_tags(value)


class _AgentSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = AIAgent
        fields = ["id", "slug", "name"]
        read_only_fields = fields


class UserAgentSessionSerializer(serializers.ModelSerializer):
    agent = _VisibleAgentField(help_text="The agent's id or slug (answered as its id).")
    agent_detail = _AgentSummarySerializer(source="agent", read_only=True)

    class Meta:
        model = UserAgentSession
        fields = [
            "id",
            "agent",
            "agent_detail",
            "title",
            "custom_properties",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "agent" in attrs and attrs["agent"].pk != self.instance.agent_id:
            raise serializers.ValidationError({"agent": ["A session's agent can't be changed; start a new session."]})
        return attrs


class MessageSerializer(serializers.ModelSerializer):
    content = serializers.JSONField()

    class Meta:
        model = Message
        fields = [
            "id",
            "seq",
            "role",
            "content",
            "status",
            "model",
            "stop_reason",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "error_code",
            "error_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WorkspaceFileSerializer(serializers.Serializer):
    """A file of a session's workspace (an upload, or a file the agent wrote at its top level)."""

    name = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True, help_text="Bytes.")
    modified = serializers.DateTimeField(read_only=True)
