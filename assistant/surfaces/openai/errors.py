"""Errors of the OpenAI-shaped APIs: `{"error": {"message", "type", "code", "param"}}` with the HTTP
status OpenAI would answer, and our error codes (turn refusals, LLMError) in its terms."""

from __future__ import annotations

from typing import Any

# Our error codes (turn refusals, LLMError) → (HTTP status, OpenAI error type).
ERROR_STATUSES = {
    "invalid": (400, "invalid_request_error"),
    "not_found": (404, "invalid_request_error"),
    "connection_required": (409, "invalid_request_error"),  # the user must connect an integration first
    "account_inactive": (401, "invalid_request_error"),  # deactivated since the request was authenticated
    "too_many_turns": (429, "rate_limit_error"),
    "turn_in_progress": (429, "rate_limit_error"),
    "approval_pending": (409, "invalid_request_error"),  # a session continued with X-Session-ID waits for a decision
    "rate_limited": (429, "rate_limit_error"),
    "budget_exceeded": (429, "insufficient_quota"),  # the user's or the organization's budget is used up
    "overloaded": (503, "server_error"),
    "upstream_timeout": (504, "server_error"),
    "upstream_unavailable": (502, "server_error"),
    "upstream_error": (502, "server_error"),
    "upstream_auth": (502, "server_error"),
    "invalid_request": (502, "server_error"),  # the provider refused what we sent
    "egress_refused": (502, "server_error"),
    "tool_unavailable": (502, "server_error"),  # an MCP server of the agent could not be started
    "not_configured": (503, "server_error"),
    "agent_unavailable": (503, "server_error"),
    "interrupted": (503, "server_error"),
    "tool_name_conflict": (400, "invalid_request_error"),  # a client tool named like an agent's own
}


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
        param: str | None = None, headers: dict[str, str] | None = None,
    ):  # fmt: skip
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    @classmethod
    def from_code(cls, code: str, message: str, *, param: str | None = None) -> OpenAIError:
        """Our error code (a turn refusal, a model error) in OpenAI's terms."""
        status, kind = ERROR_STATUSES.get(code, (500, "server_error"))
        if code == "not_found":
            return cls(404, message, code="model_not_found", param="model")
        if code == "budget_exceeded":  # what OpenAI clients know a spent quota by
            return cls(status, message, type=kind, code="insufficient_quota")
        if code == "invalid" and param is None:
            param = "messages"
        return cls(status, message, type=kind, code=code, param=param)


def edge_error_body(status: int, message: str, code: str) -> dict[str, Any]:
    """An error of the server's edge (config/http/edge.py: a body over the limit, a stalled one, too many
    connections) in OpenAI's shape; a body over the limit has the code this API gives it itself."""
    code = {"too_large": "request_too_large"}.get(code, code)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return OpenAIError(status, message, type=kind, code=code).body()


def unknown_url(method: str, path: str) -> OpenAIError:
    """What OpenAI answers for a path it doesn't serve (`/v1/nope`, or one of its APIs Conduit lacks)."""
    return OpenAIError(404, f"Invalid URL ({method} {path})", code=None)


def method_not_allowed(method: str, path: str, allowed: str) -> OpenAIError:
    """What OpenAI answers for a method a path doesn't take."""
    return OpenAIError(405, f"Invalid method for URL ({method} {path})", code=None, headers={"Allow": allowed})


def bad_request(message: str, param: str | None) -> OpenAIError:
    return OpenAIError(400, message, code="invalid_value" if param else "invalid_request", param=param)
