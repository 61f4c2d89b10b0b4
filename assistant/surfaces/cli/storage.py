"""What a run stores as it goes: answers, tool results, unfinished answers, usage against budgets, the audit."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from assistant.engine import ModelCallFinished, ToolCall, ToolOutcome, Usage

from .options import OrchestratorError


def _store_answer(session, event: ModelCallFinished) -> None:
    from agents.services import message_append

    with transaction.atomic():
        message_append(
            session=session,
            role="assistant",
            content=event.content,
            status="complete",
            model=event.model or "",
            stop_reason=event.stop_reason or "",
            **_counted_usage(session, event.usage.as_dict()),
        )


def _audit_tool_calls(session, calls: list[tuple[ToolCall, ToolOutcome]], decisions: dict[str, Any]) -> None:
    from audit.services import ToolCallRecord, tool_calls_record

    records = [
        ToolCallRecord(call.name, call.input, result.is_error, result.duration_ms, result.content,
                       decisions.get(result.tool_use_id))  # fmt: skip
        for call, result in calls
    ]
    tool_calls_record(session_id=session.pk, calls=records, source="cli")


def _check_budget(user_id: int) -> None:
    from usage.services import BudgetExceeded, budget_check

    try:
        budget_check(user_id)
    except BudgetExceeded as exc:
        raise OrchestratorError(exc.code, exc.message) from None


async def _budget_before_call(session, turn: int) -> None:
    """Before every model call of the run: the owner's budgets (BudgetExceeded ends the run)."""
    from usage.services import budget_check

    await sync_to_async(budget_check, thread_sensitive=True)(session.owner_id)


def _counted_usage(session, usage: dict[str, int]) -> dict[str, Any]:
    """A new message's usage fields with its cost, counted against its owner's budgets (call in the
    transaction that stores the message)."""
    from agents.selectors import llm_config_for_agent
    from usage.services import new_message_usage

    config_id = llm_config_for_agent(session.agent).config_id
    return {**usage, **new_message_usage(user_id=session.owner_id, config_id=config_id, usage=usage)}


def _store_results(session, results: list[ToolOutcome]) -> None:
    from agents.services import message_append

    message_append(session=session, role="user", content=[r.as_block() for r in results], status="complete")


def _store_unfinished(
    session,
    *,
    text: str,
    status: str,
    model: str,
    code: str = "",
    message: str = "",
    pending_calls: list[ToolCall] = (),
    usage: Usage | None = None,
) -> None:
    """A partial answer (stopped or failed) with the usage known when it ended, or results for tool
    calls that never finished."""
    from agents.services import message_append

    if pending_calls:
        blocks = [
            ToolOutcome(c.id, "The run was interrupted before this tool finished.", is_error=True).as_block()
            for c in pending_calls
        ]
        message_append(session=session, role="user", content=blocks, status="complete")
    usage_fields = usage.as_dict() if usage is not None else {}
    if text or code or any(usage_fields.values()):  # an empty answer that cost tokens is kept too
        with transaction.atomic():
            message_append(
                session=session,
                role="assistant",
                content=[{"type": "text", "text": text}] if text else [],
                status=status,
                model=model,
                error_code=code,
                error_message=message,
                **(_counted_usage(session, usage_fields) if usage_fields else {}),
            )
