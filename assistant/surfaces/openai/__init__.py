"""The OpenAI-compatible API: `api` (the views), `format` (requests parsed, answers and chunks in
OpenAI's shapes, its error vocabulary), `schema` (the views' OpenAPI description)."""
