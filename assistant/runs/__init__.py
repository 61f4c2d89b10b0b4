"""Runs: one conversational turn of a session, for any surface.

A turn is planned in one transaction (`turn_begin`: the user's message stored, an assistant message
opened as `streaming`, one turn at a time per session), then run as an asyncio task owned by the
process, not by the socket that asked for it: a client that reloads, or reconnects to another
process, finds the answer still coming.

Every event is written to the database *before* it is published to the session's channel-layer
group (persist, then publish). So a client that subscribes and then reads what it missed from the
database can neither miss an event nor see one twice: it drops live events it already read. (The
request that started a turn reads its events from a queue of the runner's, never the database: it
gets the answer's deltas as they come, and its last event once stored.)
Text deltas are coalesced: the first goes out at once, the next ones at most every
ASSISTANT_FLUSH_INTERVAL seconds, one database write and one group message each. The writes of all
the turns of a process go through one `TurnWriter`, many to a transaction (group commit).

Stopping works from any process: the stop request goes to the session's control group, the runner
cancels the upstream stream and keeps the partial answer as `stopped`.

Modules: `plan` (turn_begin: checks and rows, one transaction), `catalog` (agents as turns need
them, kept per process while the catalog is unchanged), `runner` (TurnRunner: the model
loop's events relayed to storage and listeners; its event steps in `runner_events`, its approval
steps in `runner_approvals`), `writer` (group commit of every turn's flushes),
`control` (stop from any process, stored events), `approvals` and `decisions` (tool calls
that wait for a person's yes, and turns resumed after it), `groups` (channel-layer group names), `history`
(stored messages → model messages), `sweeps` (turns whose process died; old events).
Surfaces import this package; it imports `engine`, `llm`, `tools` and the domain apps, never a surface.
"""

from assistant.runs.approvals import approval_request_data, approvals_pending, denial_over_api
from assistant.runs.control import session_last_seq, turn_events_after, turn_is_running, turn_stop
from assistant.runs.catalog import model_settings_for, model_settings_from
from assistant.runs.groups import control_group, session_group
from assistant.runs.decisions import approval_decide_async
from assistant.runs.plan import TurnPlan, TurnRefused, turn_begin, turn_begin_async
from assistant.runs.runner import (
    TurnRunner,
    TurnToolsUnavailable,
    running_turn,
    turn_start,
    turn_start_from_sync,
    turn_start_when_planned,
)

__all__ = [
    "approval_decide_async",
    "approval_request_data",
    "approvals_pending",
    "denial_over_api",
    "TurnPlan",
    "TurnRefused",
    "TurnRunner",
    "TurnToolsUnavailable",
    "control_group",
    "model_settings_for",
    "model_settings_from",
    "running_turn",
    "session_group",
    "session_last_seq",
    "turn_begin",
    "turn_begin_async",
    "turn_events_after",
    "turn_is_running",
    "turn_start",
    "turn_start_from_sync",
    "turn_start_when_planned",
    "turn_stop",
]
