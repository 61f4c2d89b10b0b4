"""A deleted session takes its workspace with it, however it is deleted (REST, admin, a deleted user);
every change to what turns read moves the catalog's version (agents/catalog.py)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from agents import workspaces
from agents.catalog import catalog_changed
from agents.models import (
    AIAgent,
    AIAgentVersion,
    Integration,
    LLMProviderConfig,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
)


@receiver(post_delete, sender=UserAgentSession, dispatch_uid="agents.session_deleted_workspace_remove")
def _session_deleted(sender, instance: UserAgentSession, **kwargs) -> None:
    # A signal rather than a service: cascades (a deleted user or agent) and the admin's bulk delete
    # call no delete() per session. After commit: a rolled-back delete keeps its files.
    session_id = instance.pk
    transaction.on_commit(lambda: workspaces.workspace_remove(session_id))


for _model in (AIAgent, AIAgentVersion, Integration, LLMProviderConfig, PromptTemplate, PromptTemplateVersion):
    post_save.connect(catalog_changed, sender=_model, dispatch_uid=f"agents.catalog_saved.{_model.__name__}")
    post_delete.connect(catalog_changed, sender=_model, dispatch_uid=f"agents.catalog_deleted.{_model.__name__}")
m2m_changed.connect(catalog_changed, sender=AIAgent.integrations.through, dispatch_uid="agents.catalog_integrations")
