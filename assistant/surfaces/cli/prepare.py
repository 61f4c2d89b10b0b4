"""Before a run: its agent, session, model, system prompt, MCP servers (with the operator's connections) and tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from assistant.engine import ModelSettings
from assistant.llm.types import NO_KEY_HINT
from assistant.runs.catalog import approval_patterns
from assistant.tools.mcp import McpConfigError, McpServers, McpServerSpec
from assistant.tools.toolset import AgentTools, integration_specs, UnknownAllowedTools
from assistant.tools.workspace import BuiltinTools, Workspace

from .options import (
    BUILTIN_AGENT_SLUG,
    DEFAULT_SYSTEM_PROMPT,
    OrchestratorError,
    OrchestratorOptions,
    SYSTEM_USER_EMAIL,
)
from .sinks import _shorten
from .storage import _check_budget


# --- tools ------------------------------------------------------------------------------------


class OrchestratorTools(AgentTools):
    """The CLI's tools: every built-in tool and the MCP servers' tools, restricted to the allowed ones;
    with `strict`, an allowed tool that matches nothing is an error."""

    def __init__(self, builtin: BuiltinTools, mcp: McpServers, allowed: list[str] | None, *, strict: bool):
        try:
            super().__init__(builtin, mcp, allowed, strict=strict)
        except UnknownAllowedTools as exc:
            raise OrchestratorError(
                "bad_allowed_tools",
                f"--allowed-tools names unknown tools: {', '.join(exc.unmatched)} (available: {', '.join(exc.available)})",
            ) from None


# --- database ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    session: Any
    agent: Any
    model: ModelSettings
    system: str
    max_turns: int
    allowed_tools: list[str] | None
    strict_allowed: bool
    mcp_specs: list[McpServerSpec]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False
    approval_required: tuple[str, ...] = ()


# The settings an LLM config's empty fields fall back to, by provider.
_PROVIDER_SETTINGS = {"anthropic": "ANTHROPIC", "openai": "OPENAI"}


def _prepare(options: OrchestratorOptions, workspace: Workspace, file_specs: list[McpServerSpec]) -> Prepared:
    """Everything the database says about this run; stores the user's message."""
    from agents.models import UserAgentSession
    from agents.selectors import agent_unusable_reason, llm_config_for_agent, organization_agent_get
    from agents.services import agent_system_prompt, message_append, session_create
    from assistant.runs.history import api_messages

    session = None
    if options.resume_session_id:
        session = (
            UserAgentSession.objects.select_related("agent", "owner")
            .filter(pk=_session_pk(options.resume_session_id))
            .first()
        )
        if session is None:
            raise OrchestratorError("unknown_session", f"no session with id {options.resume_session_id}")
        if options.agent_slug and options.agent_slug != session.agent.slug:
            raise OrchestratorError(
                "agent_mismatch",
                f"session {session.pk} belongs to agent {session.agent.slug!r}, not {options.agent_slug!r}",
            )
        if options.user_email and session.owner.email.lower() != options.user_email.lower():
            raise OrchestratorError("unknown_session", f"session {session.pk} is not {options.user_email}'s")
        agent = session.agent
        if agent.owner_id is not None:
            # An operator's run executes tools with the operator's rights and key: never a user's agent.
            raise OrchestratorError(
                "unknown_session",
                f"session {session.pk}'s agent {agent.slug!r} is not an organization agent "
                "(the CLI runs organization agents only)",
            )
    elif options.agent_slug:
        agent = organization_agent_get(slug=options.agent_slug)
        if agent is None:
            raise OrchestratorError("unknown_agent", f"no organization agent with slug {options.agent_slug!r}")
        if not agent.is_active:
            raise OrchestratorError("unknown_agent", f"agent {options.agent_slug!r} is not active")
    else:
        agent = _builtin_agent()
    unusable = agent_unusable_reason(agent=agent)
    if unusable:
        raise OrchestratorError("agent_unavailable", f"agent {agent.slug!r}: {unusable}")

    owner = session.owner if session is not None else _owner(options)
    _check_budget(owner.pk)
    # An organization agent's config, else the organization's default: never the session owner's own
    # default config, whose endpoint that user chose.
    config = llm_config_for_agent(agent)
    model = ModelSettings(
        model=options.model or config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        max_tokens=config.max_tokens,
        guard_egress=config.user_endpoint,
        provider=config.provider,
        temperature=config.temperature,
    )
    if not model.api_key:
        raise OrchestratorError(
            "not_configured",
            f"no API key for the model: set {_PROVIDER_SETTINGS[model.provider]}_API_KEY or give the agent an LLM "
            "config with a key. " + NO_KEY_HINT,
        )
    if not model.model:
        raise OrchestratorError(
            "not_configured",
            f"no model: set {_PROVIDER_SETTINGS[model.provider]}_MODEL, pass --model or give the agent an LLM config",
        )

    variables = {"workspace": str(workspace.root), **(session.custom_properties if session is not None else {})}
    if options.system_prompt is not None:
        system = options.system_prompt
    elif agent.slug == BUILTIN_AGENT_SLUG and not (agent.system_prompt_id or agent.system_prompt_text):
        system = DEFAULT_SYSTEM_PROMPT.format(workspace=workspace.root)
    else:
        system = agent_system_prompt(agent=agent, variables=variables)

    names = {spec.name for spec in file_specs}
    agent_specs = _with_connections(agent, owner, [spec for spec in _integration_specs(agent) if spec.name not in names])

    if session is None:
        title = _shorten(options.message.strip().splitlines()[0], 80)
        if agent.slug == BUILTIN_AGENT_SLUG and not agent.is_active:
            # session_create refuses inactive agents (they are retired for users); the built-in
            # one is inactive only to stay out of the chat's agent list.
            session = UserAgentSession.objects.create(owner=owner, agent=agent, title=title)
        else:
            session = session_create(owner=owner, agent=agent, title=title)
    message_append(session=session, role="user", content=[{"type": "text", "text": options.message}])
    history = api_messages(session.messages.order_by("seq"))

    allowed = options.allowed_tools if options.allowed_tools is not None else (list(agent.allowed_tools or []) or None)
    return Prepared(
        session=session,
        agent=agent,
        model=model,
        system=system,
        max_turns=options.max_turns or agent.max_turns or settings.ORCHESTRATOR_DEFAULT_MAX_TURNS,
        allowed_tools=allowed,
        strict_allowed=options.allowed_tools is not None,
        approval_required=approval_patterns(agent) if agent.pk else (),
        mcp_specs=file_specs + agent_specs,
        history=history,
        resumed=bool(options.resume_session_id),
    )


def _with_connections(agent, owner, specs: list[McpServerSpec]) -> list[McpServerSpec]:
    """The operator's own tokens for integrations that need each user's connection (issue 29)."""
    from connections.turns import ConnectionRequired, personal_servers, specs_for_user_now

    personal = tuple(p for p in personal_servers(agent.integrations.all()) if p.server_name in {s.name for s in specs})
    try:
        return list(specs_for_user_now(user_id=owner.pk, specs=tuple(specs), personal=personal))
    except ConnectionRequired as missing:
        raise OrchestratorError(
            "connection_required",
            f"{owner.email} has no usable connection to the integration “{missing.integration_name}”: run "
            f"`manage.py connect {missing.integration_id} --user {owner.email}`",
        ) from None


def _session_pk(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise OrchestratorError("unknown_session", f"no session with id {value}") from None


def _builtin_agent():
    from agents.models import AIAgent

    agent, _ = AIAgent.objects.get_or_create(
        slug=BUILTIN_AGENT_SLUG,
        owner=None,  # the organization's: a user's agent of the same slug is never it
        defaults={
            "name": "Orchestrator (command line)",
            "description": "Runs of `manage.py run_orchestrator` without --agent. Its system prompt is the CLI's default.",
            "category": "orchestrator",
            "max_turns": settings.ORCHESTRATOR_DEFAULT_MAX_TURNS,
            "is_active": False,  # not offered in the chat: it exists so CLI sessions have an agent
        },
    )
    return agent


def _owner(options: OrchestratorOptions):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if options.user_email:
        user = User.objects.filter(email__iexact=options.user_email, is_active=True).first()
        if user is None:
            raise OrchestratorError("unknown_user", f"no active user with email {options.user_email}")
        return user
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if user is None:
        # A fresh installation: a system user owns CLI sessions. It has no usable password.
        user = User.objects.filter(email__iexact=SYSTEM_USER_EMAIL).first() or User.objects.create_user(
            email=SYSTEM_USER_EMAIL, password=None, name="Orchestrator (command line)"
        )
    return user


def _integration_specs(agent) -> list[McpServerSpec]:
    """The agent's integrations' MCP servers, as every surface gets them (assistant/tools/toolset.py)."""
    try:
        return integration_specs(agent)
    except McpConfigError as exc:
        raise OrchestratorError("bad_mcp_config", str(exc)) from None
