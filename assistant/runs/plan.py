"""Planning a turn: checks, the user's message and the assistant's `streaming` message stored, the
model request assembled, all in one transaction (`turn_begin`)."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents import selectors as agent_selectors
from agents import services as agent_services
from agents.models import Message, UserAgentSession
from agents.versions import session_agent_version_set
from assistant.engine import LoopRequest, ModelSettings
from assistant.models import TurnEvent
from assistant.runs.history import api_messages
from assistant.runs.sweeps import stale_turns_settle
from assistant.tools.mcp import McpConfigError
from assistant.tools.toolset import ToolSetup, tool_setup_for
from config.errors import CodedError
from usage.services import BudgetExceeded, TurnBudget, turn_budget
from config.threads import run_sync


class TurnRefused(CodedError):
    """A turn (or a stop/resume) that can't be done; `code` is stable, `message` is for people."""


@dataclass
class TurnPlan:
    session_id: int
    agent_slug: str
    title: str
    user_message_seq: int
    user_text: str
    assistant_message_id: int
    first_event_seq: int
    request: LoopRequest
    # The agent's tools, opened by the runner in its own task (MCP servers can't be shared across
    # tasks) and closed when the turn ends. None or empty: `request.tools` as given (tests set it).
    tools: ToolSetup | None = None
    budget: TurnBudget | None = None  # prices the turn's messages (usage/services.py)


def _settle_stale_turns(session: UserAgentSession) -> None:
    """A `streaming` message whose runner stopped beating (its process died) is closed as
    interrupted (as the periodic sweep would); a live one means a turn is running."""
    stale_turns_settle(session_id=session.pk)
    if session.messages.filter(status=Message.Status.STREAMING).exists():
        raise TurnRefused("turn_in_progress", "A turn is already running in this session; stop it or wait for it.")


def _check_concurrent_turns(user) -> None:
    """At most ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER turns of one user run at once, whichever
    processes run them. Called first in turn_begin's transaction: the user's row lock (PostgreSQL;
    SQLite serialises writers anyway) makes the user's starts take turns, held until the new
    turn's `streaming` message is committed, so a burst can't all count the same few."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    fresh_after = timezone.now() - timezone.timedelta(seconds=settings.ASSISTANT_STALE_TURN_AFTER)
    running = (
        Message.objects.filter(session__owner_id=user.pk, status=Message.Status.STREAMING, updated_at__gte=fresh_after)
        .values("session_id")
        .distinct()
        .count()
    )
    limit = settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER
    if running >= limit:
        raise TurnRefused(
            "too_many_turns", f"You already have {running} answers running (at most {limit}); stop one or wait for it."
        )


def model_settings_for(agent, *, user=None) -> ModelSettings:
    """The agent's LLM config, else the default config (the agent owner's, else `user`'s, else the
    organization's), else the ANTHROPIC_* settings (OPENAI_* for an openai config's empty fields)."""
    return model_settings_from(agent_selectors.llm_config_for_agent(agent, user=user))


def model_settings_from(config: agent_selectors.ResolvedLLMConfig) -> ModelSettings:
    return ModelSettings(
        model=config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        max_tokens=config.max_tokens,
        guard_egress=config.user_endpoint,
        provider=config.provider,
        temperature=config.temperature,
    )


def turn_begin(
    *,
    user,
    text: str,
    agent_slug: str | None = None,
    session_id: int | None = None,
    custom_properties: dict[str, Any] | None = None,
) -> TurnPlan:
    text = (text or "").strip()
    if not text:
        raise TurnRefused("invalid", "The message is empty.")
    if len(text) > settings.ASSISTANT_MAX_MESSAGE_CHARS:
        raise TurnRefused("invalid", f"The message is longer than {settings.ASSISTANT_MAX_MESSAGE_CHARS} characters.")
    with transaction.atomic():
        _check_concurrent_turns(user)
        if session_id is not None:
            session = (
                UserAgentSession.objects.select_for_update()
                .select_related("agent")
                .filter(pk=session_id, owner=user)
                .first()
            )
            if session is None:
                raise TurnRefused("not_found", "No such session.")
            if session.agent is None or not session.agent.is_active:
                raise TurnRefused("agent_unavailable", "This session's agent is no longer available.")
        else:
            agent = agent_selectors.agent_get_by_slug(user=user, slug=agent_slug or "")
            if agent is None or not agent.is_active:
                raise TurnRefused("not_found", f"No active agent with slug {agent_slug!r}.")
            try:
                session = agent_services.session_create(
                    owner=user, agent=agent, title=text[:80], custom_properties=custom_properties or {}
                )
            except ValidationError as exc:
                raise TurnRefused("invalid", "; ".join(exc.messages)) from exc
            session = UserAgentSession.objects.select_for_update().select_related("agent").get(pk=session.pk)
        _settle_stale_turns(session)
        agent = session.agent
        unusable = agent_selectors.agent_unusable_reason(agent=agent)
        if unusable:
            raise TurnRefused("agent_unavailable", unusable)
        config = agent_selectors.llm_config_for_agent(agent, user=user)
        if config.user_endpoint and not config.api_key:
            raise TurnRefused(
                "not_configured",
                f"The LLM config “{config.config_name}” names its own base URL but has no API key of its own "
                "(the organization's key is only sent to the organization's endpoint); give it its own API key.",
            )
        model = model_settings_from(config)
        try:
            tools = tool_setup_for(agent, session_id=session.pk)
        except McpConfigError as exc:
            raise TurnRefused("agent_unavailable", f"This agent's tools can't be used: {exc}") from exc
        try:
            budget = turn_budget(user_id=user.pk, config_id=config.config_id)
        except BudgetExceeded as exc:
            raise TurnRefused(exc.code, exc.message) from exc
        try:
            system = agent_services.agent_system_prompt(agent=agent, variables=session.custom_properties or {})
        except ValidationError as exc:  # the agent's prompt needs variables this session lacks
            raise TurnRefused("invalid", "; ".join(exc.messages)) from exc
        user_message = agent_services.message_append(
            session=session, role=Message.Role.USER, content=[{"type": "text", "text": text}]
        )
        history = api_messages(session.messages.order_by("seq"))
        assistant_message = agent_services.message_append(
            session=session, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING, model=model.model
        )
        last_seq = TurnEvent.objects.filter(session=session).aggregate(last=Max("seq"))["last"] or 0
        UserAgentSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
        session_agent_version_set(session)
    return TurnPlan(
        session_id=session.pk,
        agent_slug=agent.slug,
        title=session.title,
        user_message_seq=user_message.seq,
        user_text=text,
        assistant_message_id=assistant_message.pk,
        first_event_seq=last_seq + 1,
        request=LoopRequest(
            model=model,
            messages=history,
            system=system,
            max_turns=agent.max_turns if not tools.empty else 1,
            before_model_call=budget.before_model_call,
        ),
        tools=tools,
        budget=budget,
    )


# Turn plans waiting on the database thread at once; the others wait here. A thousand sockets
# starting turns together queued a thousand plans (~5 ms each) on that one thread, and the running
# turns' writes waited behind them all; now a write waits behind at most this many.
TURN_BEGINS_AT_ONCE = 2
_turn_begin_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop → semaphore


async def turn_begin_async(**kwargs: Any) -> TurnPlan:
    """`turn_begin` from async code, on the database thread, a few at a time."""
    loop = asyncio.get_running_loop()
    slots = _turn_begin_slots.get(loop)
    if slots is None:
        slots = _turn_begin_slots[loop] = asyncio.Semaphore(TURN_BEGINS_AT_ONCE)
    async with slots:
        return await run_sync(turn_begin, **kwargs)
