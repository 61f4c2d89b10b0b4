"""The orchestrator: one agent turn from the command line, with workspace tools and MCP servers.

`run_orchestrator(options, sink)` resolves the agent, the session, the model and the tools, runs the
engine's agent loop, stores every message as it completes (the user's prompt, each model answer,
each batch of tool results) and sends the turn's events to a sink (readable text or JSON lines).
Failures that stop the run are `OrchestratorError(code, message)`, one line each.
"""

from .options import OrchestratorError, OrchestratorOptions
from .run import run_orchestrator
from .sinks import EventSink, JsonLinesSink, TextSink

__all__ = ["EventSink", "JsonLinesSink", "OrchestratorError", "OrchestratorOptions", "TextSink", "run_orchestrator"]
