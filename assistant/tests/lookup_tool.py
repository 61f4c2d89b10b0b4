"""A tool for tests of the surfaces that relay tool calls (run API streams, chat page), until their
agents get their MCP and workspace tools from the turn runner itself: `give_every_turn_the_lookup_tool`
adds it to every planned turn, as assistant/tests/runs/test_turn_tools.py does to one plan.

`application` is config.asgi's with the tool given: a real daphne serves it in the tests that
need tool calls from a server process (`python -m config.daphne_server … assistant.tests.lookup_tool:application`)."""

from __future__ import annotations

import dataclasses
import functools

# Imported lazily: a server imports this module before Django is set up (config.asgi does that).


class LookupTools:
    def definitions(self):
        return [{"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object"}}]

    async def run(self, call):
        from assistant.engine import ToolOutcome

        word = call.input.get("word", "")
        if word == "fail":
            return ToolOutcome(call.id, "no such word", is_error=True)
        return ToolOutcome(call.id, f"{word} means hello")


def with_lookup_tool(turn_begin):
    """`turn_begin` whose plans offer the lookup tool (up to three model calls)."""

    @functools.wraps(turn_begin)
    def planned_with_the_tool(**kwargs):
        plan = turn_begin(**kwargs)
        plan.request = dataclasses.replace(plan.request, tools=LookupTools(), max_turns=3)
        return plan

    return planned_with_the_tool


def give_every_turn_the_lookup_tool() -> None:
    from assistant import runs
    from assistant.runs import plan

    # Both names: surfaces call runs.turn_begin, turn_begin_async calls its module's own.
    plan.turn_begin = runs.turn_begin = with_lookup_tool(plan.turn_begin)


def __getattr__(name: str):
    if name == "application":  # only when a server asks for it: importing config.asgi sets Django up
        from config.asgi import application

        give_every_turn_the_lookup_tool()

        return application
    raise AttributeError(name)
