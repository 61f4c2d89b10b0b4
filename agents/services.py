"""Writes for the agents app. The API, the admin, the management commands and the assistant all go
through these functions, so every rule (validation, defaults, version history, sequence numbers)
lives in one place."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, ProtectedError

from accounts.models import User
from agents import selectors as agent_selectors
from agents.models import (
    VARIABLE_RE,
    AIAgent,
    Integration,
    LLMProviderConfig,
    Message,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
    prompt_variables,
)


def _validated_save(instance, *, conflict_field: str, conflict_message: str = "") -> None:
    """full_clean (field validators and constraints, with messages) then save. Constraint errors
    (Django files them under `__all__`) are reported on `conflict_field`, the input to change; a
    constraint lost to a concurrent writer between the check and the insert answers the same way."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        errors = dict(exc.message_dict)
        if NON_FIELD_ERRORS in errors:
            errors.setdefault(conflict_field, []).extend(errors.pop(NON_FIELD_ERRORS))
        raise ValidationError(errors) from exc
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        raise ValidationError(
            {conflict_field: [conflict_message or "This conflicts with an existing object."]}
        ) from exc


ONE_ACTIVE_INTEGRATION = "An active integration for this provider already exists."


def _apply(instance, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(instance, name, value)


# --- LLM configs ---------------------------------------------------------------------------------


@transaction.atomic
def llm_config_save(*, config: LLMProviderConfig) -> LLMProviderConfig:
    """Saves a config; making it the default un-defaults the previous default of the same owner."""
    if config.is_default:
        LLMProviderConfig.objects.filter(owner=config.owner_id, is_default=True).exclude(pk=config.pk).update(
            is_default=False
        )
    _validated_save(config, conflict_field="is_default", conflict_message="There already is a default config.")
    return config


def llm_config_create(*, owner: User | None, **fields: Any) -> LLMProviderConfig:
    return llm_config_save(config=LLMProviderConfig(owner=owner, **fields))


def llm_config_update(*, config: LLMProviderConfig, **fields: Any) -> LLMProviderConfig:
    _apply(config, fields)
    return llm_config_save(config=config)


# --- Integrations --------------------------------------------------------------------------------


def integration_save(*, integration: Integration) -> Integration:
    _validated_save(integration, conflict_field="provider", conflict_message=ONE_ACTIVE_INTEGRATION)
    return integration


def integration_create(*, owner: User | None, **fields: Any) -> Integration:
    return integration_save(integration=Integration(owner=owner, **fields))


def integration_update(*, integration: Integration, **fields: Any) -> Integration:
    _apply(integration, fields)
    return integration_save(integration=integration)


# --- Prompts -------------------------------------------------------------------------------------


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def prompt_render(*, template_body: str, variables: dict[str, Any] | None) -> str:
    """Fills `{{ name }}` placeholders in one pass with a regex (no template engine: a value or a body
    can't run code or reach other data, and values containing `{{ x }}` are not expanded again); a
    placeholder's `default: "…"` stands in for a value not given. Raises ValidationError naming every
    variable that has neither."""
    variables = variables or {}
    missing = [v.name for v in prompt_variables(template_body) if v.required and v.name not in variables]
    if missing:
        raise ValidationError(
            {"variables": [f"Missing variable(s): {', '.join(missing)}."]}, code="missing_variables"
        )
    defaults = {v.name: v.default for v in prompt_variables(template_body)}

    def fill(match) -> str:
        name = match.group(1)
        return _render_value(variables[name]) if name in variables else defaults[name]

    return VARIABLE_RE.sub(fill, template_body)


@transaction.atomic
def prompt_save(*, prompt: PromptTemplate, user: User | None) -> PromptTemplate:
    """Saves a template and keeps its history: a new template gets version 1; a changed body bumps
    the version. Each body a template has had is a PromptTemplateVersion row.

    A version is `shared` (other users may read it) when it was the body while the prompt was shared:
    written while shared, or current when the prompt became shared. Bodies written while it was
    private stay its owner's, whatever its visibility later (a draft may hold a secret)."""
    was_shared = False
    if prompt.pk is None:
        prompt.version = 1
        body_changed = True
    else:
        stored = (
            PromptTemplate.objects.select_for_update().only("body", "version", "visibility", "owner").get(pk=prompt.pk)
        )
        body_changed = stored.body != prompt.body
        prompt.version = stored.version + 1 if body_changed else stored.version
        was_shared = stored.is_shared
    _validated_save(prompt, conflict_field="slug", conflict_message="A prompt with this slug already exists.")
    if body_changed:
        PromptTemplateVersion.objects.create(
            template=prompt, version=prompt.version, body=prompt.body, created_by=user, shared=prompt.is_shared
        )
    elif prompt.is_shared and not was_shared:
        prompt.versions.filter(version=prompt.version).update(shared=True)
    return prompt


def prompt_create(*, owner: User | None, created_by: User | None = None, **fields: Any) -> PromptTemplate:
    return prompt_save(prompt=PromptTemplate(owner=owner, **fields), user=created_by or owner)


def prompt_update(*, prompt: PromptTemplate, user: User | None, **fields: Any) -> PromptTemplate:
    _apply(prompt, fields)
    return prompt_save(prompt=prompt, user=user)


@transaction.atomic
def prompt_delete(*, prompt: PromptTemplate) -> None:
    """Its owner may delete a prompt unless their own agents use it (they fix those first: ProtectedError,
    a 409 naming them). Other users' agents that used it lose it and refuse turns, naming it, until given
    a system prompt again: never a silent run without it, and nothing of someone else's is named here."""
    own_agents = AIAgent.objects.filter(system_prompt=prompt)
    own_agents = own_agents.filter(owner=prompt.owner) if prompt.owner_id else own_agents.filter(owner__isnull=True)
    if own_agents.exists():
        raise ProtectedError("The prompt is used by the owner's agents.", set(own_agents))
    AIAgent.objects.filter(system_prompt=prompt).update(system_prompt=None, system_prompt_lost=prompt.name[:255])
    prompt.delete()


# --- Agents --------------------------------------------------------------------------------------


@transaction.atomic
def agent_save(*, agent: AIAgent, integrations: list[Integration] | None = None) -> AIAgent:
    """Saves an agent whose prompt, config and integrations its owner may use (an organization agent:
    organization-wide ones only); slugs are unique per owner."""
    problems = agent_selectors.agent_reference_problems(agent=agent, integrations=integrations)
    if problems:
        raise ValidationError(problems)
    if agent.system_prompt_id or agent.system_prompt_text.strip():
        agent.system_prompt_lost = ""
    _validated_save(agent, conflict_field="slug", conflict_message="An agent with this slug already exists.")
    if integrations is not None:
        agent.integrations.set(integrations)
    return agent


def agent_create(*, owner: User | None, integrations: list[Integration] | None = None, **fields: Any) -> AIAgent:
    return agent_save(agent=AIAgent(owner=owner, **fields), integrations=integrations)


def agent_update(*, agent: AIAgent, integrations: list[Integration] | None = None, **fields: Any) -> AIAgent:
    _apply(agent, fields)
    return agent_save(agent=agent, integrations=integrations)


def agent_system_prompt(*, agent: AIAgent, variables: dict[str, Any] | None = None) -> str:
    """The agent's system prompt (its template's body, else its inline text) with `variables`
    (typically the session's custom properties) filled in. Missing variables raise ValidationError."""
    body = agent.system_prompt.body if agent.system_prompt_id else agent.system_prompt_text
    return prompt_render(template_body=body, variables=variables)


# --- Sessions and messages -----------------------------------------------------------------------


def session_create(
    *, owner: User, agent: AIAgent, title: str = "", custom_properties: dict[str, Any] | None = None
) -> UserAgentSession:
    """Starts a session; custom properties are checked against the agent's JSON schema (in
    UserAgentSession.clean, so the admin checks them too)."""
    if not agent.is_active:
        raise ValidationError({"agent": ["This agent is not active."]})
    custom_properties = {} if custom_properties is None else custom_properties
    session = UserAgentSession(owner=owner, agent=agent, title=title, custom_properties=custom_properties)
    _validated_save(session, conflict_field="agent")
    return session


def session_update(*, session: UserAgentSession, **fields: Any) -> UserAgentSession:
    _apply(session, fields)
    _validated_save(session, conflict_field="agent")
    return session


@transaction.atomic
def message_append(
    *,
    session: UserAgentSession,
    role: str,
    content: list[dict[str, Any]] | str,
    status: str = Message.Status.COMPLETE,
    **fields: Any,
) -> Message:
    """Adds a message with the session's next sequence number. The session row is locked for the
    transaction, so concurrent appends to one session queue up instead of colliding (on SQLite the
    IMMEDIATE transaction mode serialises writers). Also bumps the session's updated_at."""
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    locked = UserAgentSession.objects.select_for_update().only("id").get(pk=session.pk)
    last = Message.objects.filter(session=locked).aggregate(last=Max("seq"))["last"] or 0
    message = Message.objects.create(session=locked, seq=last + 1, role=role, content=content, status=status, **fields)
    locked.save(update_fields=["updated_at"])
    return message


def message_update(*, message: Message, **fields: Any) -> Message:
    """Updates a message in place (a streaming answer growing, then its final status and usage)."""
    _apply(message, fields)
    message.save(update_fields=[*fields, "updated_at"])
    return message


# --- Starter data (manage.py init) ---------------------------------------------------------------


def _get_or_create(model, *, lookup: dict[str, Any], create) -> tuple[Any, bool]:
    """Get-or-create that leaves existing rows alone (staff edits survive a second run) and is safe
    against a concurrent `init` creating the same row (the loser of the unique insert reads it)."""
    existing = model.objects.filter(**lookup).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return create(), True
    except (IntegrityError, ValidationError):
        existing = model.objects.filter(**lookup).first()
        if existing is None:
            raise
        return existing, False


def starter_data_seed() -> list[str]:
    """Creates the starter LLM config, prompts and agents that don't exist yet; returns what it did."""
    from agents import starter

    done: list[str] = []
    if not LLMProviderConfig.objects.filter(owner__isnull=True, is_default=True).exists():
        _, created = _get_or_create(
            LLMProviderConfig,
            lookup={"owner__isnull": True, "is_default": True},
            create=lambda: llm_config_create(owner=None, is_default=True, **starter.DEFAULT_LLM_CONFIG),
        )
        if created:
            done.append("created the default LLM config")
    prompts = {}
    for data in starter.PROMPTS:
        prompt, created = _get_or_create(
            PromptTemplate,
            lookup={"owner__isnull": True, "slug": data["slug"]},
            create=lambda data=data: prompt_create(
                owner=None, visibility=PromptTemplate.Visibility.ORGANIZATION, **data
            ),
        )
        prompts[data["slug"]] = prompt
        if created:
            done.append(f"created prompt {data['slug']}")
    for data in starter.AGENTS:
        fields = {key: value for key, value in data.items() if key != "prompt"}
        _, created = _get_or_create(
            AIAgent,
            lookup={"owner__isnull": True, "slug": data["slug"]},
            create=lambda fields=fields, prompt=prompts[data["prompt"]]: agent_create(
                owner=None, system_prompt=prompt, **fields
            ),
        )
        if created:
            done.append(f"created agent {data['slug']}")
    return done


def admin_user_ensure(*, email: str, password: str, name: str) -> tuple[User, bool]:
    """Creates a superuser with these credentials unless the email is taken (then leaves it as is)."""
    from accounts.models import normalize_email

    existing = User.objects.filter(email=normalize_email(email)).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return User.objects.create_superuser(email=email, password=password, name=name), True
    except IntegrityError:
        return User.objects.get(email=normalize_email(email)), False


def encrypted_fields_rotate(*, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypts every encrypted field of every model with the first key (decrypting with any).
    Reading a value no key can decrypt raises EncryptionKeyError and stops before writing it."""
    from django.apps import apps

    from agents.fields import _EncryptedMixin

    counts: dict[str, int] = {}
    for model in apps.get_models():
        names = [field.name for field in model._meta.concrete_fields if isinstance(field, _EncryptedMixin)]
        if not names:
            continue
        count = 0
        with transaction.atomic():
            for instance in model._base_manager.select_for_update().only("pk", *names).iterator(batch_size):
                # update() rather than save(): no auto_now bump, no signals; the values are written
                # (encrypted again, with the first key) exactly as read.
                model._base_manager.filter(pk=instance.pk).update(**{name: getattr(instance, name) for name in names})
                count += 1
        counts[model._meta.label] = count
    return counts
