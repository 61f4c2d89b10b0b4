"""Tools: what an agent's turn may run, and how it is kept in bounds.

- `toolset`: what a turn may use (the agent's integrations as MCP servers, workspace tools, `allowed_tools`),
  decided within the trust rules, and opening them for one turn as the engine's ToolRunner
- `mcp`: MCP servers (stdio, SSE, streamable HTTP): their tools and calls; under it `mcp_config` (server
  definitions, config files), `mcp_connection` (one connection, in a task of its own) and `mcp_pool` (warm
  connections kept between server-side turns, per event loop)
- `workspace`: the built-in file and shell tools, confined to one workspace directory; under it `files`
  (confinement, regular files only, opened without blocking), `patterns` (RE2 for grep and glob),
  `search` (bounded walks: list, glob, grep) and `threads` (the tools' own thread pool)
- `sandbox`: `run_shell` for server-side turns, inside bubblewrap

Imports `engine` (the ToolCall/ToolOutcome vocabulary) and `config`; never `runs` nor a surface.
"""
