"""Assistant services beyond a single turn (see runs.py for running one)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import selectors as agent_selectors
from agents.models import AIAgent, Integration, LLMProviderConfig, Message, UserAgentSession
from assistant import llm, runs
from assistant.llm import LLMError
from assistant.tools.mcp import McpConfigError, McpServers, McpStartError, server_spec
from assistant.models import ClientSessionAlias, TurnEvent


def code_assistance_agent() -> AIAgent | None:
    """The organization's agent behind the code-assistance endpoint (CODE_ASSISTANCE_AGENT)."""
    agent = agent_selectors.organization_agent_get(slug=settings.CODE_ASSISTANCE_AGENT)
    return agent if agent is not None and agent.is_active else None


def code_assistance_turn_begin(*, user, client_session_id: str, prompt: str, context: str = "") -> runs.TurnPlan:
    """Plan a code-assistance turn in the session the client's session id names (created on first use,
    with the alias, in the turn's transaction: a refused first turn leaves neither behind)."""
    agent = code_assistance_agent()
    if agent is None:
        raise runs.TurnRefused(
            "agent_unavailable",
            f"Code assistance is not configured: no active agent {settings.CODE_ASSISTANCE_AGENT!r} "
            "(run `manage.py init`, or set CODE_ASSISTANCE_AGENT).",
        )
    text = f"{prompt}\n\n<context>\n{context}\n</context>" if context.strip() else prompt
    return _aliased_turn_begin(
        user=user, kind=ClientSessionAlias.Kind.CODE_ASSISTANCE, key=client_session_id, text=text, agent_id=agent.pk,
        title=prompt[:80],
    )  # fmt: skip


def _aliased_turn_begin(*, user, kind: str, key: str, text: str, agent_id: int, **new_session) -> runs.TurnPlan:
    """The next turn of the session the client's id `key` names, or the first of a new session with
    the agent (`new_session`: turn_begin's title, history, custom_properties), made with its alias in
    the turn's transaction: a refused first turn leaves neither behind."""
    aliases = ClientSessionAlias.objects.filter(owner=user, kind=kind, key=key).values_list("session_id", flat=True)
    session_id = aliases.first()
    if session_id is not None:
        return runs.turn_begin(user=user, text=text, session_id=session_id)
    try:
        with transaction.atomic():
            plan = runs.turn_begin(user=user, text=text, agent_id=agent_id, **new_session)
            ClientSessionAlias.objects.create(owner=user, kind=kind, key=key, session_id=plan.session_id)
    except IntegrityError:  # a concurrent first request made the alias: its session takes this turn
        return runs.turn_begin(user=user, text=text, session_id=aliases.get())
    return plan


def llm_config_check(*, config: LLMProviderConfig) -> str:
    """One tiny call with the config as a turn would use it (staff's "Test connection"): the model's
    answer, or LLMError with its code. Quick to fail: a short timeout and no retries."""
    resolved = agent_selectors.llm_config_resolve(config)
    if resolved.user_endpoint and not resolved.api_key:
        raise LLMError("not_configured", "This config names its own base URL but has no API key of its own.")
    model = runs.model_settings_from(resolved)
    return async_to_sync(llm.probe)(model)


class IntegrationCheckFailed(Exception):
    """An integration's MCP server can't be used; the message says why, for staff to read."""


def integration_check(*, integration: Integration) -> list[str]:
    """Start the integration's MCP server as a turn would (staff's "Test connection") and list its
    tools' API names. The trust rule holds here too: a user's stdio server (a command on this
    machine) is never run, and a user's sse/http server is reached through the egress policy."""
    if not integration.mcp_server:
        raise IntegrationCheckFailed("It defines no MCP server.")
    users_own = integration.owner_id is not None
    definition = agent_selectors.integration_mcp_definition(integration=integration)
    try:
        spec = server_spec(integration.server_name, definition, source="integration", guard_egress=users_own)
    except McpConfigError as exc:
        raise IntegrationCheckFailed(str(exc)) from None
    if users_own and spec.transport == "stdio":
        raise IntegrationCheckFailed("A user's stdio MCP server (a command on this server) is never run.")

    async def tool_names() -> list[str]:
        # A stdio server runs in a scratch directory: a test must not write into the app's own.
        with tempfile.TemporaryDirectory(prefix="conduit-mcp-check-") as scratch:
            servers = McpServers(
                [spec],
                cwd=Path(scratch),
                start_timeout=settings.ORCHESTRATOR_MCP_START_TIMEOUT,
                call_timeout=settings.ORCHESTRATOR_MCP_CALL_TIMEOUT,
            )
            async with servers:
                return [definition["name"] for definition in servers.definitions()]

    try:
        return async_to_sync(tool_names)()
    except (McpStartError, McpConfigError) as exc:
        raise IntegrationCheckFailed(str(exc)) from None


def run_turn_begin(
    *, user, agent_slug: str, message: str, session_id: int | None = None, custom_properties: dict | None = None
) -> runs.TurnPlan:
    """Plan a run-API turn: a new session of the user with that agent, or the next turn of
    `session_id`, which must be the user's and of that agent (else `not_found`, as if it didn't exist)."""
    agent = _active_agent(user=user, agent_slug=agent_slug)
    if session_id is None:
        return runs.turn_begin(user=user, text=message, agent_slug=agent_slug, custom_properties=custom_properties)
    if not UserAgentSession.objects.filter(pk=session_id, owner=user, agent=agent).exists():
        raise runs.TurnRefused("not_found", f"No session {session_id} of yours with agent {agent_slug!r}.")
    return runs.turn_begin(user=user, text=message, session_id=session_id)


def ui_chat_turn_begin(
    *, user, agent_slug: str, chat_id: str, message: str, history=(), custom_properties: dict | None = None
) -> runs.TurnPlan:
    """Plan the run-API turn of an AI SDK chat (`useChat`'s default request): the chat's `id` names
    the user's session with that agent, made on the chat's first request with the chat's earlier
    messages (`history`: (role, blocks) pairs) and `custom_properties`; later requests continue it."""
    agent = _active_agent(user=user, agent_slug=agent_slug)
    return _aliased_turn_begin(
        user=user, kind=ClientSessionAlias.Kind.UI_CHAT, key=f"{agent.pk}:{chat_id}", text=message, agent_id=agent.pk,
        history=history, custom_properties=custom_properties,
    )  # fmt: skip


def _active_agent(*, user, agent_slug: str) -> AIAgent:
    agent = agent_selectors.agent_get_by_slug(user=user, slug=agent_slug)
    if agent is None or not agent.is_active:
        raise runs.TurnRefused("not_found", f"No active agent with slug {agent_slug!r}.")
    return agent


# --- /v1: one conversation, one session ----------------------------------------------------------


def v1_session_exists(*, user, agent_slug: str, session_id: int) -> bool:
    """Whether `session_id` is a session of the user with the agent `agent_slug` (the one a turn
    with that slug would use: the organization's, else the user's own)."""
    agent = agent_selectors.agent_get_by_slug(user=user, slug=agent_slug)
    return agent is not None and UserAgentSession.objects.filter(pk=session_id, owner=user, agent=agent).exists()


def v1_conversation_session(*, user, agent_slug: str, digest: str) -> int | None:
    """The user's session with the agent whose conversation, as its `/v1` client has it, has the
    `digest` (one row of the unique (owner, kind, key) index)."""
    aliases = ClientSessionAlias.objects.filter(
        owner=user, kind=ClientSessionAlias.Kind.V1_CONVERSATION, key=digest, session__agent__slug=agent_slug
    )
    return aliases.values_list("session_id", flat=True).first()


def v1_conversation_moved_on(*, user, session_id: int, digest: str, continued: bool) -> None:
    """After a `/v1` turn: the session now holds the conversation `digest`, for the client's next
    request to continue it. One statement: a continued session's alias moved on, or a new one made;
    of two sessions with the very same conversation (identical answers), the latest has it. A session
    aliased by another surface (code assistance, an AI SDK chat, continued here with X-Session-ID)
    keeps its alias."""
    kind = ClientSessionAlias.Kind.V1_CONVERSATION
    try:
        with transaction.atomic():
            if continued and ClientSessionAlias.objects.filter(session_id=session_id, kind=kind).update(key=digest):
                return
            ClientSessionAlias.objects.bulk_create(
                [ClientSessionAlias(owner=user, kind=kind, key=digest, session_id=session_id)],
                update_conflicts=True, unique_fields=["owner", "kind", "key"], update_fields=["session"],
            )  # fmt: skip
    except IntegrityError:
        # The session has another surface's alias; or, continued, another session reached this very
        # conversation first and keeps it (a request carrying it continues that one).
        pass


def turn_events_prune(*, older_than: timedelta) -> int:
    """Delete the stored events of turns older than `older_than`, except in sessions with a turn
    still running. Events only serve clients catching up on a live or recent turn; the messages
    keep what was said. Returns the number of events deleted."""
    cutoff = timezone.now() - older_than
    running = Message.objects.filter(status=Message.Status.STREAMING).values("session_id")
    deleted, _ = TurnEvent.objects.filter(created_at__lt=cutoff).exclude(session_id__in=running).delete()
    return deleted
