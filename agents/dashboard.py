"""What the admin's landing page shows: how much there is, what ran lately, what failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone

from agents.models import AIAgent, Integration, LLMProviderConfig, Message, PromptTemplate

RECENT = 10


@dataclass
class Dashboard:
    counts: list[tuple[str, int, str]]  # (label, number, the admin list of what it counts)
    last_day: dict[str, int]
    recent_turns: list[Message]
    recent_failures: list[Message]
    failures_by_code: list[dict]


def _list(model: str, **filters) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


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
        # Each card opens the list of what it counts (the same filters).
        counts=[
            ("Active users", User.objects.filter(is_active=True).count(), _list("accounts_user", is_active__exact=1)),
            ("Organization agents", agents["organization"], _list("agents_aiagent", is_active__exact=1, scope="org")),
            ("Users' agents", agents["personal"], _list("agents_aiagent", is_active__exact=1, scope="user")),
            ("LLM configs", LLMProviderConfig.objects.count(), _list("agents_llmproviderconfig")),
            ("Integrations", Integration.objects.filter(is_active=True).count(),
             _list("agents_integration", is_active__exact=1)),  # fmt: skip
            ("Prompts", PromptTemplate.objects.count(), _list("agents_prompttemplate")),
        ],
        last_day=last_day,
        recent_turns=list(answers.select_related("session__agent", "session__owner").order_by("-created_at")[:RECENT]),
        recent_failures=list(failed.select_related("session__agent", "session__owner").order_by("-created_at")[:RECENT]),
        failures_by_code=list(
            failed.filter(created_at__gte=since).values("error_code").annotate(n=Count("pk")).order_by("-n")
        ),
    )
