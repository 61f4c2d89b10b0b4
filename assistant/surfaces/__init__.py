"""Surfaces: each translates its input into a turn (assistant.runs) and the turn's events into its wire.

- `websocket`: the `/ws/assistant/` consumer (the chat page, any websocket client)
- `code_assistance`: the reference's legacy SSE endpoint and its health
- `run_api`: `POST /api/v1/agents/{slug}/run` (platform SSE, Vercel AI SDK v5/v4), resume, stop
- `openai/`: the OpenAI-compatible API (`/v1/models`, `/v1/chat/completions`)
- `chat_page`: the chat page's HTML view
- `cli`: `manage.py run_orchestrator`, the agent loop on the operator's machine

A surface imports `runs`, `wire`, `tools` and the domain apps; no surface imports another.
"""
