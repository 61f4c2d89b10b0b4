"""What the admin's landing page shows: how much there is, what ran lately, what failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.utils import timezone

from agents.models import AIAgent, Integration, LLMProviderConfig, Message, PromptTemplate

RECENT = 10


@dataclass
class Dashboard:
    counts: list[tuple[str, int, str]]  # (label, number, admin changelist URL name)
    last_day: dict[str, int]
    recent_turns: list[Message]
    recent_failures: list[Message]
    failures_by_code: list[dict]


def admin_dashboard(now=None) -> Dashboard:
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    User = get_user_model()
    agents = AIAgent.objects.aggregate(
        organization=Count("pk", filter=Q(owner__isnull=True, is_active=True)),
        personal=Count("pk", filter=Q(owner__isnull=False, is_active=True)),
    )
    answers = Message.objects.filter(role=Message.Role.ASSISTANT)
    last_day = answers.filter(created_at__gte=since).aggregate(
        answers=Count("pk"),
        failed=Count("pk", filter=Q(status=Message.Status.ERROR)),
        stopped=Count("pk", filter=Q(status=Message.Status.STOPPED)),
        running=Count("pk", filter=Q(status=Message.Status.STREAMING)),
        input_tokens=Sum("input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
    )
    last_day["users"] = answers.filter(created_at__gte=since).values("session__owner_id").distinct().count()
    failed = answers.filter(status=Message.Status.ERROR)
    return Dashboard(
        counts=[
            ("Active users", User.objects.filter(is_active=True).count(), "admin:accounts_user_changelist"),
            ("Organization agents", agents["organization"], "admin:agents_aiagent_changelist"),
            ("Users' agents", agents["personal"], "admin:agents_aiagent_changelist"),
            ("LLM configs", LLMProviderConfig.objects.count(), "admin:agents_llmproviderconfig_changelist"),
            ("Integrations", Integration.objects.filter(is_active=True).count(), "admin:agents_integration_changelist"),
            ("Prompts", PromptTemplate.objects.count(), "admin:agents_prompttemplate_changelist"),
        ],
        last_day=last_day,
        recent_turns=list(answers.select_related("session__agent", "session__owner").order_by("-created_at")[:RECENT]),
        recent_failures=list(failed.select_related("session__agent", "session__owner").order_by("-created_at")[:RECENT]),
        failures_by_code=list(
            failed.filter(created_at__gte=since).values("error_code").annotate(n=Count("pk")).order_by("-n")
        ),
    )
