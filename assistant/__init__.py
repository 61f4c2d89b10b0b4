"""The assistant: agents' turns, run for every surface.

Floors, lowest first (a module imports only from its own floor or below):
- `llm/`: one adapter per model provider behind `stream_call`
- `engine`: the transport-free agent loop (model ↔ tools) and its event vocabulary
- `tools/`: the agent's tool set, MCP sessions, workspace tools, the sandbox
- `runs/`: planning a turn, the runner, the event writer, stop, sweeps, history
- `wire/`: event vocabulary → bytes (platform SSE, Vercel v4/v5)
- `surfaces/`: websocket, code-assistance SSE, run API, OpenAI-compatible API, chat page, CLI
- `services`: the surfaces' turn planners and staff's connection checks; `models`: TurnEvent, aliases
"""
