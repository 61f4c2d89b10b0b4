"""Prices, usage counting and budget checks.

Counting: whenever a message's usage is stored (the turn runner's writes, the CLI's messages) the
difference to what that message had before is added to the user's and the organization's counter
of the current month, in the same transaction, as increments in the database (`n = n + …`): correct
across processes.

Checking: `budget_check` reads the two counters (one query) and the budgets that apply (one
query) and raises `BudgetExceeded` when any budget is used up (used >= limit). It runs in
`turn_begin` and before every model call of a turn (LoopRequest.before_model_call). What a check
can't see is the usage of calls still in flight: racing turns of one user may together overspend by
at most the calls that were already running when the budget was reached (each finishes; the next
call of each is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from assistant.llm import LLMError
from usage.models import Budget, UsageCounter
import observability
from config.threads import run_sync

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
MILLION = Decimal(1_000_000)
BUDGET_EXCEEDED = "budget_exceeded"  # the one stable code every transport reports


class BudgetExceeded(LLMError):
    """A budget is used up: the model is not called. An LLMError, so a turn that meets it midway ends
    like any failed model call (partial answer kept, error `budget_exceeded`)."""

    def __init__(self, message: str):
        super().__init__(BUDGET_EXCEEDED, message)


# --- prices ---------------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Prices:
    """Per million tokens; None: unknown."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    @property
    def known(self) -> bool:
        return any(p is not None for p in (self.input, self.output, self.cache_read, self.cache_write))

    def cost(self, usage: dict[str, int]) -> Decimal | None:
        """The price of `usage` (a dict of USAGE_FIELDS); None when no price is known. A missing
        cache price falls back to the input price (cache tokens are input tokens)."""
        if not self.known:
            return None
        rates = {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_input_tokens": self.cache_read if self.cache_read is not None else self.input,
            "cache_creation_input_tokens": self.cache_write if self.cache_write is not None else self.input,
        }
        total = sum(((rates[name] or Decimal(0)) * int(usage.get(name, 0) or 0) for name in USAGE_FIELDS), Decimal(0))
        return (total / MILLION).quantize(Decimal("0.00000001"))


_PRICE_FIELDS = ("price_input_per_mtok", "price_output_per_mtok", "price_cache_read_per_mtok", "price_cache_write_per_mtok")


def _settings_prices() -> Prices:
    return Prices(
        _decimal(settings.PRICE_DEFAULT_INPUT_PER_MTOK),
        _decimal(settings.PRICE_DEFAULT_OUTPUT_PER_MTOK),
        _decimal(settings.PRICE_DEFAULT_CACHE_READ_PER_MTOK),
        _decimal(settings.PRICE_DEFAULT_CACHE_WRITE_PER_MTOK),
    )


def prices_for_config(config_id: int | None) -> Prices:
    """What a call through this LLM config costs the organization.

    Prices are staff's (admin only): an organization config has its own, else PRICE_DEFAULT_*; no
    config (the ANTHROPIC_* settings): PRICE_DEFAULT_*. A user's config on the organization's
    endpoint spends the organization's key, so it is priced by the organization (an organization
    config of the same model, else PRICE_DEFAULT_*), never by a price its user chose; a user's
    config with its own endpoint and key costs the organization nothing known (None)."""
    if config_id is None:
        return _settings_prices()
    from agents.models import LLMProviderConfig

    row = LLMProviderConfig.objects.filter(pk=config_id).values("owner_id", "base_url", "model", *_PRICE_FIELDS).first()
    if row is None:
        return _settings_prices()
    if row["owner_id"] is not None:
        if row["base_url"]:
            return Prices()
        model = row["model"] or settings.ANTHROPIC_MODEL
        org = (
            LLMProviderConfig.objects.filter(owner__isnull=True, model=model)
            .exclude(**{f: None for f in _PRICE_FIELDS})
            .order_by("-is_default", "pk")
            .values(*_PRICE_FIELDS)
            .first()
        )
        # Without a match, the settings' prices (an org config's own prices belong to its model).
        row = org or {}
    prices = Prices(*(row.get(f) for f in _PRICE_FIELDS))
    return prices if prices.known else _settings_prices()


# --- counting -------------------------------------------------------------------------------------


def month_start(at: datetime | None = None) -> date:
    at = (at or timezone.now()).astimezone(dt_timezone.utc)
    return date(at.year, at.month, 1)


def next_month_start(month: date) -> datetime:
    year, month_number = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    return datetime(year, month_number, 1, tzinfo=dt_timezone.utc)


def usage_add(*, user_id: int, usage: dict[str, int], cost: Decimal | None, at: datetime | None = None) -> None:
    """Add `usage` (may be negative: a message's usage corrected) to the user's and the
    organization's counters of the month. Atomic per row; call it inside the transaction that stores
    the usage, so both are committed or neither is."""
    month = month_start(at)
    increments = [int(usage.get(name, 0) or 0) for name in USAGE_FIELDS]
    now = timezone.now()
    for owner in (user_id, None):
        if _increment(owner, month, increments, cost or Decimal(0), now):
            continue
        try:
            with transaction.atomic():  # a savepoint: a racing first insert must not abort the caller
                UsageCounter.objects.create(
                    user_id=owner, month=month, cost=cost or Decimal(0), **dict(zip(USAGE_FIELDS, increments))
                )
        except IntegrityError:
            _increment(owner, month, increments, cost or Decimal(0), now)


_increments: dict[tuple[str, bool], str] = {}


def _increment(owner_id: int | None, month: date, increments: list[int], cost: Decimal, now: datetime) -> bool:
    """One counter row's `+=`, as text written once per database vendor: the ORM's F() expressions cost
    ~0.5 ms of CPU a row to build, against ~0.03 ms for the statement itself, and every turn's answer
    counts two rows (issue 26). False if the row doesn't exist yet."""
    key = (connection.vendor, owner_id is None)
    sql = _increments.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        column = {field.name: quote(field.column) for field in UsageCounter._meta.concrete_fields}
        added = "CAST({0} + CAST(%s AS NUMERIC) AS NUMERIC)" if connection.vendor == "sqlite" else "{0} + %s"
        assignments = [f"{column[name]} = {column[name]} + %s" for name in USAGE_FIELDS]
        assignments += [f"{column['cost']} = " + added.format(column["cost"]), f"{column['updated_at']} = %s"]
        owner = f"{column['user']} IS NULL AND {column['erased_as']} = ''" if owner_id is None else f"{column['user']} = %s"
        sql = _increments[key] = (
            f"UPDATE {quote(UsageCounter._meta.db_table)} SET {', '.join(assignments)} "
            f"WHERE {column['month']} = %s AND {owner}"
        )
    field = UsageCounter._meta.get_field
    params = [*increments, field("cost").get_db_prep_save(cost, connection),
              field("updated_at").get_db_prep_save(now, connection), field("month").get_db_prep_save(month, connection)]  # fmt: skip
    if owner_id is not None:
        params.append(owner_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount > 0


def message_usage_stored(message_id: int, fields: dict[str, Any]) -> None:
    """Count a message's usage about to be written with `fields` (an update of the message): what
    changed since its last stored usage. Call before the update, in its transaction."""
    if not any(name in fields for name in USAGE_FIELDS) and "cost" not in fields:
        return
    from agents.models import Message

    old = Message.objects.filter(pk=message_id).values(*USAGE_FIELDS, "cost", "session__owner_id").first()
    if old is not None:
        usage_changed(user_id=old["session__owner_id"], before=old, fields=fields)


def usage_changed(*, user_id: int, before: dict[str, Any], fields: dict[str, Any]) -> None:
    """Count the change of a message's usage from `before` (its usage fields and cost as stored) to
    `fields` (about to be written), for the user whose message it is. In the writing transaction."""
    if not any(name in fields for name in USAGE_FIELDS) and "cost" not in fields:
        return
    delta = {name: int(fields.get(name, before.get(name)) or 0) - int(before.get(name) or 0) for name in USAGE_FIELDS}
    cost_delta = (fields.get("cost", before.get("cost")) or Decimal(0)) - (before.get("cost") or Decimal(0))
    if any(delta.values()) or cost_delta:
        usage_add(user_id=user_id, usage=delta, cost=cost_delta)


def new_message_usage(*, user_id: int, config_id: int | None, usage: dict[str, int]) -> dict[str, Any]:
    """For a message created with its usage (the CLI): counts it and returns its `cost` field."""
    cost = prices_for_config(config_id).cost(usage)
    if any(usage.values()):
        usage_add(user_id=user_id, usage=usage, cost=cost)
    return {"cost": cost}


# --- budgets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """0: unlimited."""

    user_tokens: int
    user_cost: Decimal
    org_tokens: int
    org_cost: Decimal
    user_source: str  # where the user's limits come from: user, group, default


def _most_generous(values: list) -> Any:
    """Among group budgets: unlimited (0) wins, else the largest."""
    return 0 if any(v == 0 for v in values) else max(values)


def budget_limits(user_id: int) -> Limits:
    """The budgets that apply to a user: their own row, else their groups' (the most generous),
    else the settings; and the organization's cap. One query."""
    rows = list(
        Budget.objects.filter(
            Q(user_id=user_id) | Q(group__user__id=user_id) | Q(user__isnull=True, group__isnull=True)
        ).order_by("pk")
    )
    own = [b for b in rows if b.user_id == user_id]
    groups = [b for b in rows if b.group_id is not None]
    org = next((b for b in rows if b.user_id is None and b.group_id is None), None)

    def pick(field: str, default):
        if own and getattr(own[0], field) is not None:
            return getattr(own[0], field), "user"
        values = [getattr(b, field) for b in groups if getattr(b, field) is not None]
        if values:
            return _most_generous(values), "group"
        return default, "default"

    tokens, tokens_source = pick("monthly_tokens", settings.BUDGET_USER_MONTHLY_TOKENS)
    cost, cost_source = pick("monthly_cost", settings.BUDGET_USER_MONTHLY_COST)
    return Limits(
        user_tokens=int(tokens or 0),
        user_cost=Decimal(cost or 0),
        org_tokens=int((org.monthly_tokens if org else 0) or 0),
        org_cost=Decimal((org.monthly_cost if org else 0) or 0),
        user_source=tokens_source if tokens_source != "default" else cost_source,
    )


@dataclass(frozen=True)
class Spent:
    tokens: int
    cost: Decimal
    input_tokens: int = 0
    output_tokens: int = 0


def counters_of(user_id: int, month: date) -> tuple[Spent, Spent]:
    """The user's and the organization's spending in `month`: one query."""
    user, org = Spent(0, Decimal(0)), Spent(0, Decimal(0))
    for counter in UsageCounter.objects.filter(Q(user_id=user_id) | Q(user__isnull=True, erased_as=""), month=month):
        spent = Spent(counter.total_tokens, counter.cost, counter.input_tokens, counter.output_tokens)
        if counter.user_id is None:
            org = spent
        else:
            user = spent
    return user, org


def budget_check(user_id: int, *, limits: Limits | None = None, at: datetime | None = None) -> None:
    """Raise BudgetExceeded if any budget that applies to the user is used up this month. `limits`:
    the user's (budget_limits), when the caller has them (turns keep them per catalog version)."""
    month = month_start(at)
    limits = budget_limits(user_id) if limits is None else limits
    if not (limits.user_tokens or limits.user_cost or limits.org_tokens or limits.org_cost):
        return
    user, org = counters_of(user_id, month)
    resets = next_month_start(month).strftime("%Y-%m-%d %H:%M UTC")
    checks = [
        (limits.user_tokens, user.tokens, "Your monthly token budget", "tokens"),
        (limits.user_cost, user.cost, "Your monthly cost budget", "cost"),
        (limits.org_tokens, org.tokens, "The organization's monthly token budget", "tokens"),
        (limits.org_cost, org.cost, "The organization's monthly cost budget", "cost"),
    ]
    for limit, used, name, unit in checks:
        if limit and used >= limit:
            figures = f"{used:,} of {limit:,} tokens" if unit == "tokens" else f"{used:.4f} of {limit:.4f}"
            observability.budget_refused()
            raise BudgetExceeded(f"{name} is used up ({figures} used); it resets on {resets}.")


@dataclass
class TurnBudget:
    """What a turn needs to price its messages and check budgets before each model call."""

    user_id: int
    prices: Prices
    limits: Limits | None = None

    def priced(self, message_fields: dict[str, Any]) -> dict[str, Any]:
        """`message_fields` with the message's cost, when they carry its usage."""
        if not any(name in message_fields for name in USAGE_FIELDS):
            return message_fields
        return {**message_fields, "cost": self.prices.cost(message_fields)}

    async def before_model_call(self, turn: int) -> None:
        if turn == 1:
            return  # turn_begin has just checked, in the transaction that planned the turn
        await run_sync(budget_check, self.user_id, limits=self.limits)
