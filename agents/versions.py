"""Agent versions: every committed change of an agent (its fields or integrations, by REST, admin or
services) becomes an AIAgentVersion with what changed and who changed it; revert restores one.

Recorded from signals, once per transaction and agent (on commit), so the admin's save of the
fields and then of the integrations is one version, and no caller has to remember to record it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_save, pre_save

from agents.models import AIAgent, AIAgentVersion, UserAgentSession

VERSIONED_FIELDS = (
    "name", "slug", "description", "category", "tags", "system_prompt", "system_prompt_text", "llm_config",
    "allowed_tools", "approval_required", "max_turns", "is_active", "custom_properties_schema",
)  # fmt: skip


def agent_snapshot(agent: AIAgent) -> dict[str, Any]:
    data = {}
    for name in VERSIONED_FIELDS:
        field = AIAgent._meta.get_field(name)
        data[name] = getattr(agent, field.attname)
    data["integrations"] = sorted(agent.integrations.values_list("pk", flat=True)) if agent.pk else []
    return data


def _current_actor():
    """Who is changing it: the request's user, as the audit middleware told django-auditlog."""
    from auditlog.context import auditlog_value

    try:
        actor = auditlog_value.get().get("actor")
    except LookupError:
        return None
    from django.contrib.auth import get_user_model

    return actor if isinstance(actor, get_user_model()) else None


def agent_version_record(*, agent_id: int, note: str = "", user=None) -> AIAgentVersion | None:
    """A new version if the agent differs from its latest one; returns the latest version."""
    with transaction.atomic():
        agent = AIAgent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:
            return None
        latest = agent.versions.order_by("-version").first()
        snapshot = agent_snapshot(agent)
        if latest is not None and latest.snapshot == snapshot and not note:
            return latest
        changed = sorted(k for k in snapshot if latest is None or latest.snapshot.get(k) != snapshot[k])
        actor = user if user is not None else _current_actor()
        return AIAgentVersion.objects.create(
            agent=agent, version=(latest.version + 1) if latest else 1, snapshot=snapshot, changed_fields=changed,
            note=note[:255], created_by=actor if actor is not None and getattr(actor, "pk", None) else None,
        )  # fmt: skip


def agent_version_current(agent: AIAgent) -> AIAgentVersion | None:
    """The agent's latest version (recorded now if it has none yet: agents older than versions)."""
    latest = agent.versions.order_by("-version").first()
    return latest or agent_version_record(agent_id=agent.pk)


def agent_revert(*, version: AIAgentVersion, user) -> AIAgentVersion:
    """Restore the agent to `version` (through services.agent_save: the same checks as any edit);
    records a new version noting the revert. ValidationError if it can't be restored (e.g. a prompt
    it used is gone, or its slug was taken)."""
    from agents import services
    from agents.models import Integration

    agent = AIAgent.objects.get(pk=version.agent_id)
    for name in VERSIONED_FIELDS:
        if name in version.snapshot:
            setattr(agent, AIAgent._meta.get_field(name).attname, version.snapshot[name])
    integrations = list(Integration.objects.filter(pk__in=version.snapshot.get("integrations", [])))
    with transaction.atomic():
        services.agent_save(agent=agent, integrations=integrations)
        return agent_version_record(agent_id=agent.pk, note=f"Reverted to version {version.version}", user=user)


# --- signals --------------------------------------------------------------------------------------


def _schedule(agent_id: int) -> None:
    # After commit, when the admin has saved the integrations too; a second call in the same
    # transaction finds nothing new and records nothing.
    transaction.on_commit(lambda: agent_version_record(agent_id=agent_id))


def _agent_saved(sender, instance: AIAgent, raw=False, **kwargs) -> None:
    if not raw:
        _schedule(instance.pk)


def _integrations_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if not reverse:
        _schedule(instance.pk)
    else:  # an integration's agents changed
        for agent_id in pk_set or AIAgent.objects.filter(integrations=instance).values_list("pk", flat=True):
            _schedule(agent_id)


def _session_version(sender, instance: UserAgentSession, raw=False, **kwargs) -> None:
    if raw or instance.agent_version_id is not None or instance.agent_id is None:
        return
    version = AIAgentVersion.objects.filter(agent_id=instance.agent_id).order_by("-version").first()
    instance.agent_version = version


def connect() -> None:
    post_save.connect(_agent_saved, sender=AIAgent, dispatch_uid="agents.versions.agent_saved")
    m2m_changed.connect(
        _integrations_changed, sender=AIAgent.integrations.through, dispatch_uid="agents.versions.integrations"
    )
    pre_save.connect(_session_version, sender=UserAgentSession, dispatch_uid="agents.versions.session")


def session_agent_version_set(session: UserAgentSession) -> None:
    """At each turn: the session ran with the agent's current version."""
    version = agent_version_current(session.agent)
    if version is not None and version.pk != session.agent_version_id:
        UserAgentSession.objects.filter(pk=session.pk).update(agent_version=version)
        session.agent_version = version
