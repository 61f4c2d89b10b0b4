"""A deleted session takes its workspace with it, however it is deleted (REST, admin, a deleted user)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from agents import workspaces
from agents.models import UserAgentSession


@receiver(post_delete, sender=UserAgentSession, dispatch_uid="agents.session_deleted_workspace_remove")
def _session_deleted(sender, instance: UserAgentSession, **kwargs) -> None:
    # A signal rather than a service: cascades (a deleted user or agent) and the admin's bulk delete
    # call no delete() per session. After commit: a rolled-back delete keeps its files.
    session_id = instance.pk
    transaction.on_commit(lambda: workspaces.workspace_remove(session_id))
