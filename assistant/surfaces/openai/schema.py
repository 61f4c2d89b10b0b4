"""The OpenAI-compatible API in the OpenAPI schema (a drf-spectacular postprocessing hook: its views
are plain Django views, which drf-spectacular doesn't see; see assistant/surfaces/openai/api.py)."""

from __future__ import annotations

from typing import Any

from assistant.surfaces.openai.chat_options import MAX_TOOLS
from assistant.surfaces.openai.format import MAX_MESSAGES, MAX_STOP_SEQUENCES
from assistant.surfaces.openai.schema_responses import add_responses_paths
from assistant.surfaces.openai.images import MAX_IMAGE_BYTES, MAX_IMAGES

TAG = "openai-compatible"
REF = "#/components/schemas/"

_ERROR = {
    "type": "object",
    "description": "Every error of the `/v1/` API, in OpenAI's shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "enum": ["invalid_request_error", "rate_limit_error", "server_error"]},
                "code": {"type": "string", "nullable": True, "description": "model_not_found, invalid_api_key, "
                         "invalid_value, too_many_turns, rate_limited, upstream_error, upstream_timeout, …"},
                "param": {"type": "string", "nullable": True, "description": "The request field at fault (`messages[2].content`)."},
            },
            "required": ["message", "type", "code", "param"],
        }
    },
    "required": ["error"],
}

_MODEL = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The agent's slug."},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer", "description": "When the agent was created (UNIX time)."},
        "owned_by": {"type": "string", "enum": ["organization", "user"]},
    },
    "required": ["id", "object", "created", "owned_by"],
}

_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "nullable": True,
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "object", "properties": {
                    "type": {"type": "string", "enum": ["text", "image_url"]}, "text": {"type": "string"},
                    "image_url": {"type": "object", "properties": {"url": {"type": "string"}}},
                }}},
            ],
            "description": "Text, or a list of parts: text, and in user messages `image_url` (an https URL, passed to "
            f"the provider unfetched, or a base64 data: URL of png/jpeg/gif/webp up to {MAX_IMAGE_BYTES} bytes; at most "
            f"{MAX_IMAGES} images per request). Audio is refused with a 400.",
        },
        "tool_calls": {"type": "array", "items": {"type": "object"}, "description": "Assistant messages: earlier tool calls."},
        "tool_call_id": {"type": "string", "description": "Tool messages: the call answered."},
    },
    "required": ["role"],
}

_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "description": "The slug of an agent (GET /v1/models)."},
        "messages": {
            "type": "array", "items": {"$ref": REF + "OpenAIChatMessage"}, "minItems": 1, "maxItems": MAX_MESSAGES,
            "description": "The conversation; the last non-system message must be the user's, which the agent answers. "
            "System and developer messages are added after the agent's own system prompt.",
        },
        "stream": {"type": "boolean", "default": False},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "max_tokens": {"type": "integer", "minimum": 1, "description": "Caps the agent's own maximum."},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "description": "As max_tokens (wins over it)."},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOP_SEQUENCES}]},
        "user": {"type": "string", "maxLength": 256, "description": "Your end user's id: kept in the session's title."},
        "n": {"type": "integer", "enum": [1]},
        "tools": {
            "type": "array", "maxItems": MAX_TOOLS,
            "items": {"type": "object", "properties": {"type": {"type": "string", "enum": ["function"]}, "function": {
                "type": "object", "properties": {
                    "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}, "description": {"type": "string"},
                    "parameters": {"type": "object", "description": "A JSON schema of an object."},
                    "strict": {"type": "boolean"},
                }, "required": ["name"]}}, "required": ["type", "function"]},
            "description": "Your own tools, offered beside the agent's (which the server runs). When the model calls "
            "yours the answer ends with `tool_calls` (finish_reason `tool_calls`); send their results as `tool` "
            "messages to go on. A name of one of the agent's tools is a 400.",
        },
        "tool_choice": {"oneOf": [{"type": "string", "enum": ["auto", "none", "required"]}, {"type": "object"}]},
        "parallel_tool_calls": {"type": "boolean"},
        "response_format": {
            "type": "object", "description": "`text`, `json_object` or `json_schema` (with `strict`): the answer's "
            "content is JSON text (Anthropic configs: through a forced tool).",
        },
    },
    "required": ["model", "messages"],
    "description": "Other OpenAI parameters (temperature, seed, …) are accepted and ignored: the agent's config applies.",
}  # fmt: skip

_USAGE = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": {"type": "integer"}}},
    },
}

_FINISH = {"type": "string", "nullable": True, "enum": ["stop", "length", "tool_calls", "content_filter", None]}

_COMPLETION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "message": {"type": "object", "properties": {
                        "role": {"type": "string"}, "content": {"type": "string", "nullable": True},
                        "tool_calls": {"type": "array", "items": {"type": "object"}, "description": "Calls of your tools."},
                    }},
                    "finish_reason": _FINISH,
                },
            },
        },
        "usage": {"$ref": REF + "OpenAIUsage"},
    },
}

_CHUNK = {
    "type": "object",
    "description": "One `data:` event of a streamed answer; the stream ends with `data: [DONE]`. An error after "
    "the answer started comes as a `data:` event holding an OpenAIError.",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion.chunk"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "delta": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}},
                    "finish_reason": _FINISH,
                },
            },
        },
        "usage": {"allOf": [{"$ref": REF + "OpenAIUsage"}], "nullable": True, "description": "Only with include_usage: "
                  "null on every chunk but the last, which has no choices."},
    },
}  # fmt: skip


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF + "OpenAIError"}}}}


_AUTH_ERRORS = {
    "401": _error("No, invalid, revoked or expired key (`invalid_api_key`), or a key of a deactivated user."),
    "503": _error("The sign-in provider's keys could not be fetched (provider tokens only)."),
}


def add_openai_paths(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(
        OpenAIError=_ERROR, OpenAIModel=_MODEL, OpenAIChatMessage=_MESSAGE, OpenAIChatCompletionRequest=_REQUEST,
        OpenAIUsage=_USAGE, OpenAIChatCompletion=_COMPLETION, OpenAIChatCompletionChunk=_CHUNK,
    )  # fmt: skip
    schemes = result["components"].get("securitySchemes", {})
    security = [{name: []} for name in ("apiKey", "jwtAuth", "providerBearer") if name in schemes]
    model_list = {
        "type": "object",
        "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": {"$ref": REF + "OpenAIModel"}}},
    }  # fmt: skip
    paths = result.setdefault("paths", {})
    paths["/v1/models"] = {
        "get": {
            "operationId": "openai_models_list",
            "summary": "The agents you may use, as OpenAI models (`id` = the agent's slug).",
            "tags": [TAG],
            "security": security,
            "responses": {"200": {"description": "", "content": {"application/json": {"schema": model_list}}}, **_AUTH_ERRORS},
        }
    }
    paths["/v1/models/{model}"] = {
        "get": {
            "operationId": "openai_models_retrieve",
            "summary": "One agent you may use, as an OpenAI model.",
            "tags": [TAG],
            "security": security,
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "", "content": {"application/json": {"schema": {"$ref": REF + "OpenAIModel"}}}},
                **_AUTH_ERRORS,
                "404": _error("No such agent, or not one you may use (`model_not_found`)."),
            },
        }
    }
    paths["/v1/chat/completions"] = {
        "post": {
            "operationId": "openai_chat_completions_create",
            "summary": "Talk to an agent through the OpenAI Chat Completions API.",
            "description": (
                "Each answer is a turn of a session of the user (history, usage and limits apply): the next turn of "
                "the session whose `/v1` conversation the request's earlier messages continue, or of the session "
                "the `X-Session-ID` request header names, else of a new session. "
                "`stream: true` answers `text/event-stream` of chat.completion.chunk events; otherwise one "
                "chat.completion. A client that disconnects stops the answer (kept in its session as `stopped`). "
                "Header `X-Session-ID`: the session."
            ),
            "tags": [TAG],
            "security": security,
            "parameters": [{
                "name": "X-Session-ID", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "Continue this session of yours (with that `model`): its stored messages are the "
                               "history.",
            }],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": REF + "OpenAIChatCompletionRequest"}}}},
            "responses": {
                "200": {
                    "description": "The answer.",
                    "headers": {"X-Session-ID": {"schema": {"type": "string"}, "description": "The session storing it."}},
                    "content": {
                        "application/json": {"schema": {"$ref": REF + "OpenAIChatCompletion"}},
                        "text/event-stream": {"schema": {"$ref": REF + "OpenAIChatCompletionChunk"}},
                    },
                },
                "400": _error("Invalid body; `param` names the field."),
                **_AUTH_ERRORS,
                "404": _error("No such agent, or not one you may use (`model_not_found`); no such session of yours "
                              "with it (`session_not_found`)."),
                "405": _error("Not POST."),
                "409": _error("The session named by X-Session-ID waits for an approval decision (`approval_pending`)."),
                "413": _error("The body is larger than the server's limit."),
                "429": _error("Too many answers of yours running at once (`too_many_turns`), or the model provider's rate limit (`rate_limited`)."),
                "502": _error("The model provider failed or refused (`upstream_error`, `upstream_unavailable`, `upstream_auth`…)."),
                "503": _error("The model is overloaded or not configured, or the agent can't be used now."),
                "504": _error("The model provider did not answer in time (`upstream_timeout`)."),
            },
        }
    }  # fmt: skip
    add_responses_paths(result, security=security, error=_error, auth_errors=_AUTH_ERRORS, tag=TAG)
    return result
