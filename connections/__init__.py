"""Connections: each user reaching an integration's MCP server as themselves (issue 29).

Owns users' tokens for integrations whose `auth` is `per_user_token` or `oauth` (models), the OAuth
client of the MCP authorization spec (oauth.py, over http.py), the rules (services.py), what a turn
needs (turns.py: the user's token in the server's headers, or `connection_required`), the API, the
callback page, the admin and `manage.py connect`. May import agents and config; assistant imports it.
"""
