"""What a turn reads of the catalog, resolved once per process and kept while the catalog is unchanged.

Planning a turn used to read the agent, its prompt, its LLM config and the default configs, its
integrations and their owners, its latest version and its config's prices, and the user's budgets:
a dozen queries and most of a turn's CPU (issue 26). All of it depends only on the catalog, whose
version (agents/catalog.py) moves in the transaction of every change to it, so a turn reads that
number (with the user's row) and reuses what this process resolved at the same version.

Kept per process, bounded (an unknown slug is remembered as unknown, and a client spraying slugs
only fills MAX_ENTRIES before the table is emptied), emptied when the version moves. A thread that
read an older version than the newest seen here resolves for itself without storing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from django.db.models import F, Q

from agents import selectors as agent_selectors
from agents import services as agent_services
from agents.models import AIAgent, prompt_variables
from agents.validators import custom_properties_errors
from agents.versions import agent_version_current
from assistant.llm import ModelSettings
from assistant.llm.types import NO_KEY_HINT
from assistant.tools.mcp import McpConfigError, McpServerSpec
from assistant.tools.toolset import integration_specs, workspace_tools_for
from connections.turns import PersonalServer, personal_servers
from usage.services import Limits, Prices, budget_limits, prices_for_config

MAX_ENTRIES = 10_000


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


def model_settings_for(agent: AIAgent | None) -> ModelSettings:
    """The model a turn of `agent` calls (agents.selectors.llm_config_for_agent)."""
    return model_settings_from(agent_selectors.llm_config_for_agent(agent))


@dataclass(frozen=True)
class AgentTools:
    """The agent's tools as the catalog defines them; a session adds its workspace (tools.ToolSetup)."""

    mcp_specs: tuple[McpServerSpec, ...]
    allowed_tools: tuple[str, ...]
    files: bool
    shell: bool
    # Tools whose calls wait for the user's yes: the agent's `approval_required` and every tool of
    # the integrations whose `tools_require_approval` is set (an agent can't take those away).
    approval_required: tuple[str, ...] = ()
    # Servers that need each user's own connection (issue 29): their tokens are added per turn
    # (connections.turns), never kept here.
    personal: tuple[PersonalServer, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.mcp_specs and not self.files


@dataclass(frozen=True)
class AgentRuntime:
    """One agent as its turns need it. Holds decrypted credentials (the model key, MCP secrets):
    never log it."""

    id: int
    slug: str
    owner_id: int | None
    is_active: bool
    max_turns: int
    # Why a turn can't start now (agents.selectors.agent_unusable_reason), and its code.
    refusal: tuple[str, str] | None
    model: ModelSettings
    config_id: int | None
    prices: Prices
    prompt_body: str
    prompt_takes_variables: bool
    custom_properties_schema: dict[str, Any] | None
    tools: AgentTools | None
    tools_problem: str | None  # an integration whose server definition can't be used
    version_id: int | None

    def system_prompt(self, variables: dict[str, Any]) -> str:
        """The prompt with the session's custom properties filled in; ValidationError naming missing ones."""
        if not self.prompt_takes_variables:
            return self.prompt_body
        return agent_services.prompt_render(template_body=self.prompt_body, variables=variables)

    def custom_properties_problems(self, values: Any) -> list[str]:
        return custom_properties_errors(schema=self.custom_properties_schema or {}, values=values)


def _runtime(agent: AIAgent) -> AgentRuntime:
    config = agent_selectors.llm_config_for_agent(agent)
    refusal = None
    unusable = agent_selectors.agent_unusable_reason(agent=agent)
    if unusable:
        refusal = ("agent_unavailable", unusable)
    elif config.user_endpoint and not config.api_key:
        refusal = (
            "not_configured",
            f"The LLM config “{config.config_name}” names its own base URL but has no API key of its own "
            "(the organization's key is only sent to the organization's endpoint); give it its own API key.",
        )
    elif not config.api_key:
        refusal = (
            "not_configured",
            "No API key is configured for the model (ANTHROPIC_API_KEY or OPENAI_API_KEY, by provider, "
            f"or the LLM config). {NO_KEY_HINT}",
        )
    tools, tools_problem = None, None
    try:
        files, shell = workspace_tools_for(agent)
        tools = AgentTools(
            tuple(integration_specs(agent)), tuple(agent.allowed_tools or ()), files, shell, approval_patterns(agent),
            personal_servers(agent.integrations.all()),
        )
    except McpConfigError as exc:
        tools_problem = f"This agent's tools can't be used: {exc}"
    body = agent.system_prompt.body if agent.system_prompt_id else agent.system_prompt_text
    version = agent_version_current(agent)
    return AgentRuntime(
        id=agent.pk,
        slug=agent.slug,
        owner_id=agent.owner_id,
        is_active=agent.is_active,
        max_turns=agent.max_turns,
        refusal=refusal,
        model=model_settings_from(config),
        config_id=config.config_id,
        prices=prices_for_config(config.config_id),
        prompt_body=body,
        prompt_takes_variables=bool(prompt_variables(body)),
        custom_properties_schema=agent.custom_properties_schema,
        tools=tools,
        tools_problem=tools_problem,
        version_id=version.pk if version is not None else None,
    )


def approval_patterns(agent: AIAgent) -> tuple[str, ...]:
    held = [pattern for pattern in agent.approval_required or () if isinstance(pattern, str)]
    for integration in agent.integrations.all():
        if integration.is_active and integration.mcp_server and integration.tools_require_approval:
            held.append(f"{integration.server_name}__*")
    return tuple(held)


class TurnCatalog:
    """The process's resolved agents, slugs and budget limits at one catalog version."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.entries: dict[tuple, Any] = {}
        self.lock = threading.Lock()

    def _get(self, version: int, key: tuple, resolve: Callable[[], Any]) -> Any:
        with self.lock:
            if self.version is None or version > self.version:
                self.version, self.entries = version, {}
            current = version == self.version
            if current and key in self.entries:
                return self.entries[key]
        value = resolve()
        with self.lock:
            if version == self.version:
                if len(self.entries) >= MAX_ENTRIES:
                    self.entries = {}
                self.entries[key] = value
        return value

    def agent(self, version: int, agent_id: int) -> AgentRuntime | None:
        def resolve() -> AgentRuntime | None:
            agent = AIAgent.objects.select_related("system_prompt", "llm_config").filter(pk=agent_id).first()
            return _runtime(agent) if agent is not None else None

        return self._get(version, ("agent", agent_id), resolve)

    def agent_for(self, version: int, *, user_id: int, slug: str) -> AgentRuntime | None:
        """The organization's agent with that slug, else the user's own (agents.selectors.agent_get_by_slug)."""
        agent_id = self._get(version, ("slug", user_id, slug), lambda: _agent_id_for(user_id, slug))
        return self.agent(version, agent_id) if agent_id is not None else None

    def budget_limits(self, version: int, user_id: int) -> Limits:
        return self._get(version, ("limits", user_id), lambda: budget_limits(user_id))

    def clear(self) -> None:
        with self.lock:
            self.version, self.entries = None, {}


def _agent_id_for(user_id: int, slug: str) -> int | None:
    if not slug:
        return None
    visible = AIAgent.objects.filter(Q(owner__isnull=True) | Q(owner_id=user_id), slug=slug)
    return visible.order_by(F("owner_id").asc(nulls_first=True)).values_list("pk", flat=True).first()


turn_catalog = TurnCatalog()
