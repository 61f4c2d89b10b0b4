"""Reads for the agents app, already filtered for ownership and with their joins set, so a view can
forget neither. `*_visible` querysets are what a user may read; `*_owned` what they may change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from accounts.models import User
from agents.models import (
    AIAgent,
    Integration,
    LLMProviderConfig,
    Message,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
)
from agents.validators import ENV_NAME_RE


def _own_or_org(user: User) -> Q:
    return Q(owner=user) | Q(owner__isnull=True)


def _filter_tag(queryset: QuerySet, tag: str | None) -> QuerySet:
    """Tags are a JSON list of restricted words (validators.TAG_RE), so the quoted word occurs in the
    stored JSON text exactly when the list holds it; one query that works on SQLite and PostgreSQL."""
    if not tag:
        return queryset
    return queryset.filter(tags__icontains=json.dumps(tag.strip().lower()))


def _filter_search(queryset: QuerySet, search: str | None, fields: tuple[str, ...]) -> QuerySet:
    if not search:
        return queryset
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": search.strip()})
    return queryset.filter(condition)


def _truthy(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.lower() in ("1", "true", "yes", "on")


# --- LLM configs ---------------------------------------------------------------------------------


def llm_config_visible(*, user: User) -> QuerySet[LLMProviderConfig]:
    return LLMProviderConfig.objects.filter(_own_or_org(user))


def llm_config_owned(*, user: User) -> QuerySet[LLMProviderConfig]:
    return LLMProviderConfig.objects.filter(owner=user)


def llm_config_list(*, user: User, filters: dict[str, str]) -> QuerySet[LLMProviderConfig]:
    queryset = _filter_search(llm_config_visible(user=user), filters.get("search"), ("name", "model"))
    if filters.get("provider"):
        queryset = queryset.filter(provider=filters["provider"])
    return queryset


@dataclass(frozen=True)
class ResolvedLLMConfig:
    """What a call to the model needs, after falling back through default config and settings."""

    provider: str
    model: str
    api_key: str
    base_url: str
    max_tokens: int
    temperature: float
    config_id: int | None
    # A user's config that names its own endpoint: the URL is the user's choice, so connections to it
    # pass the egress policy, and the organization's key is never sent there.
    user_endpoint: bool = False
    config_name: str = ""


def _default_config_for(owner_id: int | None) -> LLMProviderConfig | None:
    candidates = LLMProviderConfig.objects.filter(is_default=True)
    if owner_id is not None:
        own = candidates.filter(owner_id=owner_id).first()
        if own is not None:
            return own
    return candidates.filter(owner__isnull=True).first()


def _provider_defaults(provider: str) -> tuple[str, str, str]:
    """The organization's (model, api_key, base_url) for a provider, from the settings."""
    if provider == LLMProviderConfig.Provider.OPENAI:
        return settings.OPENAI_MODEL, settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL
    return settings.ANTHROPIC_MODEL, settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL


def llm_config_for_agent(agent: AIAgent | None) -> ResolvedLLMConfig:
    """agent's config → the default config (a user's agent: its owner's, else the organization's; an
    organization agent: the organization's only, never the default of the user talking to it, whose
    endpoint would receive the agent's instructions and drive its tools) → settings (ANTHROPIC_*).
    Empty fields of a config fall back to its provider's settings (ANTHROPIC_* or OPENAI_*)."""
    config = agent.llm_config if agent is not None and agent.llm_config_id else None
    if config is None:
        config = _default_config_for(agent.owner_id if agent is not None else None)
    if config is None:
        return ResolvedLLMConfig(
            provider=LLMProviderConfig.Provider.ANTHROPIC,
            model=settings.ANTHROPIC_MODEL,
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL,
            max_tokens=settings.ANTHROPIC_MAX_TOKENS,
            temperature=1.0,
            config_id=None,
        )
    return llm_config_resolve(config)


def llm_config_resolve(config: LLMProviderConfig) -> ResolvedLLMConfig:
    """One config with its empty fields filled from its provider's settings, under the trust rule."""
    default_model, organization_key, organization_url = _provider_defaults(config.provider)
    user_endpoint = config.owner_id is not None and bool(config.base_url)
    return ResolvedLLMConfig(
        provider=config.provider,
        model=config.model or default_model,
        # The organization's key only ever goes with the organization's endpoint (of the same provider).
        api_key=config.api_key or ("" if user_endpoint else organization_key),
        base_url=config.base_url or organization_url,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        config_id=config.pk,
        user_endpoint=user_endpoint,
        config_name=config.name,
    )


# --- Integrations --------------------------------------------------------------------------------


def integration_visible(*, user: User) -> QuerySet[Integration]:
    return Integration.objects.filter(_own_or_org(user))


def integration_owned(*, user: User) -> QuerySet[Integration]:
    return Integration.objects.filter(owner=user)


def integration_list(*, user: User, filters: dict[str, str]) -> QuerySet[Integration]:
    queryset = _filter_search(integration_visible(user=user), filters.get("search"), ("name", "provider"))
    if filters.get("provider"):
        queryset = queryset.filter(provider=filters["provider"])
    active = _truthy(filters.get("is_active"))
    if active is not None:
        queryset = queryset.filter(is_active=active)
    return queryset


# --- Prompts -------------------------------------------------------------------------------------


def prompt_visible(*, user: User) -> QuerySet[PromptTemplate]:
    """Own prompts, organization-wide ones, and other users' prompts shared with the organization."""
    return PromptTemplate.objects.filter(
        _own_or_org(user) | Q(visibility=PromptTemplate.Visibility.ORGANIZATION)
    )


def prompt_owned(*, user: User) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(owner=user)


def prompt_list(*, user: User, filters: dict[str, str]) -> QuerySet[PromptTemplate]:
    queryset = _filter_search(prompt_visible(user=user), filters.get("search"), ("name", "slug", "description"))
    queryset = _filter_tag(queryset, filters.get("tag"))
    if filters.get("slug"):
        queryset = queryset.filter(slug=filters["slug"])
    return queryset


def prompt_version_list(*, prompt: PromptTemplate, user: User) -> QuerySet[PromptTemplateVersion]:
    """A prompt's versions `user` may read, newest first: all of them for its owner; for anyone else
    only those written while it was shared (services.prompt_save). Staff see all in the admin."""
    versions = prompt.versions.order_by("-version")
    if prompt.owner_id is not None and prompt.owner_id == user.pk:
        return versions
    return versions.filter(shared=True)


# --- Agents --------------------------------------------------------------------------------------


def agent_visible(*, user: User) -> QuerySet[AIAgent]:
    return AIAgent.objects.filter(_own_or_org(user)).select_related("system_prompt").prefetch_related("integrations")


def agent_owned(*, user: User) -> QuerySet[AIAgent]:
    return AIAgent.objects.filter(owner=user).select_related("system_prompt").prefetch_related("integrations")


def agent_list(*, user: User, filters: dict[str, str]) -> QuerySet[AIAgent]:
    queryset = _filter_search(agent_visible(user=user), filters.get("search"), ("name", "slug", "description"))
    queryset = _filter_tag(queryset, filters.get("tag"))
    for name in ("slug", "category"):
        if filters.get(name):
            queryset = queryset.filter(**{name: filters[name]})
    active = _truthy(filters.get("is_active"))
    if active is not None:
        queryset = queryset.filter(is_active=active)
    return queryset


def agent_get_by_slug(*, user: User, slug: str) -> AIAgent | None:
    """The organization's agent with that slug, else the user's own (slugs are unique per owner)."""
    return (
        agent_visible(user=user)
        .select_related("system_prompt", "llm_config")
        .filter(slug=slug)
        .order_by(F("owner_id").asc(nulls_first=True))
        .first()
    )


def organization_agent_get(*, slug: str) -> AIAgent | None:
    """Built-in lookups (the CLI's agents, CODE_ASSISTANCE_AGENT) read organization-wide agents only."""
    return AIAgent.objects.select_related("system_prompt", "llm_config").filter(owner__isnull=True, slug=slug).first()


def _usable_by(owner: User | None) -> Q:
    """What an agent of `owner` may use: an organization agent only organization-wide objects (a user's
    object would let that user steer every user's turns); a user's agent their own ones and the
    organization's."""
    return Q(owner__isnull=True) if owner is None else _own_or_org(owner)


def agent_reference_problems(
    *, agent: AIAgent, integrations: list[Integration] | None = None
) -> dict[str, list[str]]:
    """What the agent uses that its owner may not (any more): a prompt made private or a config or
    integration of someone else, or a user's stdio server stored before the trust rule. Checked when
    an agent is saved and again when a turn starts. `{field: [messages]}`, empty when all is well."""
    owner = agent.owner if agent.owner_id else None
    problems: dict[str, list[str]] = {}
    if agent.system_prompt_id:
        usable = _usable_by(owner)
        if owner is not None:  # prompts other users share with the organization, as long as they do
            usable |= Q(visibility=PromptTemplate.Visibility.ORGANIZATION)
        if not PromptTemplate.objects.filter(usable, pk=agent.system_prompt_id).exists():
            problems["system_prompt"] = [
                f"The system prompt “{agent.system_prompt.name}” is not available to this agent's owner "
                "(private to someone else); choose another one."
            ]
    if agent.llm_config_id and not LLMProviderConfig.objects.filter(_usable_by(owner), pk=agent.llm_config_id).exists():
        problems["llm_config"] = [f"The LLM config “{agent.llm_config.name}” is not available to this agent's owner."]
    if integrations is None:
        integrations = list(agent.integrations.all()) if agent.pk else []
    usable = set(Integration.objects.filter(_usable_by(owner)).values_list("pk", flat=True)) if integrations else set()
    refused = [
        integration.server_name
        for integration in integrations
        if integration.pk not in usable or (integration.owner_id is not None and integration.runs_a_local_command)
    ]
    if refused:
        problems["integrations"] = [
            f"Not available to this agent's owner: {', '.join(sorted(refused))} (someone else's integration, or a "
            "stdio server only staff may define)."
        ]
    return problems


def agent_unusable_reason(*, agent: AIAgent) -> str | None:
    """Why a turn of this agent can't start now (checked at every turn start, CLI included), or None."""
    if agent.system_prompt_lost and not agent.system_prompt_id and not agent.system_prompt_text.strip():
        return (
            f"The system prompt this agent used (“{agent.system_prompt_lost}”) was deleted by its owner; "
            "give the agent a system prompt again."
        )
    problems = agent_reference_problems(agent=agent)
    return " ".join(message for messages in problems.values() for message in messages) or None


# --- Sessions and messages -----------------------------------------------------------------------


def session_owned(*, user: User) -> QuerySet[UserAgentSession]:
    return UserAgentSession.objects.filter(owner=user).select_related("agent")


SESSION_SEARCH_MAX_CHARS = 100  # a search reads every message of the user's: a bounded pattern at least


def _message_text_needle(search: str) -> str:
    """The search as it reads inside the stored JSON text of a message's content: quotes and backslashes
    escaped; on SQLite (Django stores JSON there with json.dumps' ASCII escapes) non-ASCII as `\\uXXXX`,
    while PostgreSQL's jsonb text keeps it as is."""
    return json.dumps(search, ensure_ascii=connection.vendor != "postgresql")[1:-1]


def session_list(*, user: User, filters: dict[str, str]) -> QuerySet[UserAgentSession]:
    """`search`: in titles, and in the text of the sessions' messages (their stored JSON, so a word that
    is also a content key, `text`, matches every session)."""
    queryset = session_owned(user=user)
    search = (filters.get("search") or "").strip()
    if search:
        in_messages = Message.objects.filter(session=OuterRef("pk"), content__icontains=_message_text_needle(search))
        queryset = queryset.filter(Q(title__icontains=search) | Q(Exists(in_messages)))
    agent = filters.get("agent")  # an id (int) or a slug
    if isinstance(agent, int):
        queryset = queryset.filter(agent_id=agent)
    elif agent:
        queryset = queryset.filter(agent__slug=agent)
    active = _truthy(filters.get("is_active"))
    if active is not None:
        queryset = queryset.filter(is_active=active)
    return queryset


def message_list(*, session: UserAgentSession, after_seq: int | None = None) -> QuerySet[Message]:
    queryset = Message.objects.filter(session=session).order_by("seq")
    if after_seq is not None:
        queryset = queryset.filter(seq__gt=after_seq)
    return queryset


def filters_from(params: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: params.get(name) for name in names if params.get(name) not in (None, "")}


def agent_mcp_servers(*, agent: AIAgent, users_own: bool = False) -> dict[str, dict[str, Any]]:
    """The agent's active integrations that define an MCP server, as `{name: definition}` in the
    `--mcp-config` shape, with the integration's credentials added where servers take secrets:
    for stdio servers, the entries of an object of credentials whose keys are environment variable
    names (`{"GITHUB_PERSONAL_ACCESS_TOKEN": "…"}`) become environment variables (never arguments);
    for sse/http servers, a token string becomes `Authorization: Bearer …` unless a header is set.
    Credentials are decrypted here: never log the result.
    `users_own`: the servers of the users' own integrations (their URLs pass the egress policy when
    connecting), else the organization's."""
    servers: dict[str, dict[str, Any]] = {}
    for integration in agent.integrations.all():
        if not integration.is_active or not integration.mcp_server or (integration.owner_id is not None) != users_own:
            continue
        servers[integration.server_name] = integration_mcp_definition(integration=integration)
    return servers


def integration_mcp_definition(*, integration: Integration) -> dict[str, Any]:
    """The integration's MCP server definition with its credentials added (see agent_mcp_servers).
    Credentials are decrypted here: never log the result."""
    definition = json.loads(json.dumps(integration.mcp_server))  # a deep copy
    definition.setdefault("type", "stdio" if "command" in definition else definition.get("type"))
    # A per-user integration's server gets each user's own token (connections.turns), never shared ones.
    credentials = None if integration.per_user else integration.credentials
    if definition["type"] == "stdio" and isinstance(credentials, dict):
        secrets = {name: str(value) for name, value in credentials.items() if ENV_NAME_RE.match(name)}
        definition["env"] = {**definition.get("env", {}), **secrets}
    elif definition["type"] != "stdio" and isinstance(credentials, str) and credentials:
        headers = definition.setdefault("headers", {})
        if not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"Bearer {credentials}"
    return definition


def agent_workspace_tools(*, agent: AIAgent) -> str:
    """The workspace tools a turn of `agent` gets (an AIAgent.WorkspaceTools value): what staff set on
    an organization agent; never any for a user's agent, whatever is stored."""
    if agent.owner_id is not None:
        return AIAgent.WorkspaceTools.NONE
    return agent.workspace_tools
