"""GET /api/v1/usage: the user's spending this month, their budgets and what remains."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from usage import selectors

_MONEY = {"max_digits": 20, "decimal_places": 8, "coerce_to_string": True}


class _Period(serializers.Serializer):
    start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField(help_text="When this period ends and the budgets reset (UTC).")


class _Budget(serializers.Serializer):
    tokens = serializers.IntegerField(allow_null=True, help_text="Monthly token budget; null: unlimited.")
    cost = serializers.DecimalField(allow_null=True, **_MONEY, help_text="Monthly cost budget; null: none.")
    source = serializers.ChoiceField(choices=["user", "group", "default"], required=False)
    remaining_tokens = serializers.IntegerField(allow_null=True)
    remaining_cost = serializers.DecimalField(allow_null=True, **_MONEY)


class _AgentUsage(serializers.Serializer):
    agent = serializers.CharField()
    name = serializers.CharField()
    messages = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(allow_null=True, **_MONEY, help_text="Null: no price known for its answers.")


class UsagePeriodSerializer(serializers.Serializer):
    period = _Period()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField(help_text="What token budgets count: all four kinds.")
    cost = serializers.DecimalField(
        allow_null=True, **_MONEY,
        help_text="In the currency of the LLM configs' prices; null: no price known for any answer this month.",
    )
    budget = _Budget()
    organization_budget = _Budget()
    agents = _AgentUsage(many=True)


class UsageApi(APIView):
    @extend_schema(tags=["usage"], responses={200: UsagePeriodSerializer}, operation_id="usage_current")
    def get(self, request: Request) -> Response:
        """The user's usage in the current calendar month (UTC): tokens, cost, budgets, what remains
        and when it resets, and a breakdown per agent."""
        return Response(UsagePeriodSerializer(selectors.user_usage_period(request.user)).data)
