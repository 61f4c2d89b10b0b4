from __future__ import annotations

from rest_framework import serializers

from accounts.models import User


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "name", "email", "provider", "is_active", "created_at", "updated_at"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=255)
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(min_length=8, max_length=4096, write_only=True, trim_whitespace=False)
    provider = serializers.ChoiceField(choices=User.Provider.choices, default=User.Provider.PASS)

    def validate_provider(self, value: str) -> str:
        if value != User.Provider.PASS:
            raise serializers.ValidationError(
                f"Only PASS accounts register here; {value} users sign in through their provider."
            )
        return value


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class PasswordChangeSerializer(serializers.Serializer):
    current_password = serializers.CharField(max_length=4096, write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(min_length=8, max_length=4096, write_only=True, trim_whitespace=False)


class RefreshTokenSerializer(serializers.Serializer):
    refresh_token = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["bearer"])
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class ApiKeySerializer(serializers.Serializer):
    """A key as listed: never the secret."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to recognise it (not usable to sign in).")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Updated at most once a minute.")
    expires_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(min_length=1, max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Empty or absent: never expires.")


class IssuedApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The secret key, `cdk_…`: shown this once, store it now.")
