"""Tools: the sandbox, MCP servers, built-in workspace tools."""
