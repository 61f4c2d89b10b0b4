"""Shapes of the organization server's answers, as the reference documents them. Used for the
OpenAPI schema and input validation; answers themselves are shaped by orgproxy.claire_client."""

from __future__ import annotations

from rest_framework import serializers

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
BOT_ID_PATTERN = rf"^bot-{UUID_PATTERN}$"
SESSION_ID_PATTERN = rf"^session-{UUID_PATTERN}$"
ORG_ID_PATTERN = rf"^org-{UUID_PATTERN}$"


class BotDefinitionSerializer(serializers.Serializer):
    name = serializers.CharField()
    bot_id = serializers.CharField(help_text="`bot-<uuid>`")
    meta = serializers.JSONField(allow_null=True)


class SessionDtoSerializer(serializers.Serializer):
    organization_id = serializers.CharField(help_text="`org-<uuid>`")
    session_id = serializers.CharField(help_text="`session-<uuid>`")
    editable = serializers.ChoiceField(choices=["none", "user_messages", "all_messages"])
    meta = serializers.JSONField(allow_null=True)


class ClientSessionResponseSerializer(serializers.Serializer):
    session = SessionDtoSerializer()
    token = serializers.CharField(help_text="The session token the chat widget uses with Claire.")


class ChatSessionDtoSerializer(serializers.Serializer):
    organization_id = serializers.CharField()
    session_id = serializers.CharField()
    messages = serializers.ListField(child=serializers.JSONField())
    bot_configuration = serializers.JSONField(allow_null=True)
    meta = serializers.JSONField(allow_null=True)


class CursorSerializer(serializers.Serializer):
    cursor_id = serializers.CharField()


class SessionListSerializer(serializers.Serializer):
    cursor = CursorSerializer(allow_null=True, help_text="Pass `cursor_id` as `?cursor=` for the next page.")
    results = ChatSessionDtoSerializer(many=True)


class SessionCreateInputSerializer(serializers.Serializer):
    bot_id = serializers.RegexField(
        BOT_ID_PATTERN,
        max_length=64,
        error_messages={"invalid": "Must be a bot id: bot-<uuid>."},
    )

    def to_internal_value(self, data):
        # Matched case-insensitively, sent upstream in lower case (as the reference does).
        data = {key: value.lower() if key == "bot_id" and isinstance(value, str) else value for key, value in data.items()}
        return super().to_internal_value(data)


class SessionListInputSerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=512)
