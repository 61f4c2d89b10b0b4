"""The surfaces: websocket, SSE, run API, OpenAI-compatible API, chat page, CLI."""
