"""`/v1/responses` and `/v1/embeddings` in the OpenAPI schema (added by schema.add_openai_paths)."""

from __future__ import annotations

from typing import Any

from assistant.surfaces.openai.embeddings import MAX_INPUT_CHARS, MAX_INPUT_TOKENS, MAX_INPUTS
from assistant.surfaces.openai.responses_format import MAX_INPUT_ITEMS, MAX_METADATA_KEYS

REF = "#/components/schemas/"

_RESPONSE_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "description": "The slug of an agent (GET /v1/models)."},
        "input": {
            "oneOf": [{"type": "string"}, {"type": "array", "maxItems": MAX_INPUT_ITEMS, "items": {"type": "object"}}],
            "description": "A user message, or input items: `message` (role user/assistant/system/developer, content "
            "a string or input_text/output_text parts, and input_image parts in user messages), `function_call`, "
            "`function_call_output`, `reasoning` (dropped). The last item must be the user's message, or "
            "`function_call_output` items answering the function calls before them, which the agent answers.",
        },
        "instructions": {"type": "string", "description": "Added after the agent's own system prompt."},
        "previous_response_id": {"type": "string", "description": "Continue the session of this stored response of yours; "
                                 "`input` then holds only the new message."},
        "store": {"type": "boolean", "default": True, "description": "false: the response can't be retrieved or continued "
                  "(its turn is still kept in its session)."},
        "stream": {"type": "boolean", "default": False},
        "max_output_tokens": {"type": "integer", "minimum": 1, "description": "Caps the agent's own maximum."},
        "metadata": {"type": "object", "maxProperties": MAX_METADATA_KEYS, "additionalProperties": {"type": "string", "maxLength": 512}},
        "user": {"type": "string", "maxLength": 256},
        "tools": {"type": "array", "maxItems": 128, "items": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["function"]}, "name": {"type": "string"}, "description": {"type": "string"},
            "parameters": {"type": "object"}, "strict": {"type": "boolean"}}},
            "description": "Your function tools, offered beside the agent's (which the server runs). When the model calls "
            "yours, `output` holds `function_call` items; send `function_call_output` items to go on. Other tool types are a 400."},
        "tool_choice": {"description": "auto, none, required, or {\"type\": \"function\", \"name\": …}."},
        "parallel_tool_calls": {"type": "boolean"},
        "text": {"type": "object", "description": "`format`: {type: text}, {type: json_object} or {type: json_schema, name, "
                 "schema, strict}: the output text is then the JSON."},
    },
    "required": ["model", "input"],
    "description": "Sampling parameters, reasoning, truncation and include are accepted and ignored.",
}  # fmt: skip

_RESPONSE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "resp_…"},
        "object": {"type": "string", "enum": ["response"]},
        "created_at": {"type": "integer"},
        "status": {"type": "string", "enum": ["completed", "incomplete", "failed", "in_progress"]},
        "model": {"type": "string"},
        "instructions": {"type": "string", "nullable": True},
        "previous_response_id": {"type": "string", "nullable": True},
        "output": {"type": "array", "items": {"type": "object", "description": "A `message` item with output_text content, "
                   "and `function_call` items (id, call_id, name, arguments) for calls of your tools."}},
        "usage": {
            "type": "object", "nullable": True,
            "properties": {name: {"type": "integer"} for name in ("input_tokens", "output_tokens", "total_tokens")},
        },
        "error": {"type": "object", "nullable": True},
        "incomplete_details": {"type": "object", "nullable": True},
        "metadata": {"type": "object"},
    },
}  # fmt: skip

_EMBEDDINGS_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "description": "A configured embeddings model (an LLM config's embeddings_model)."},
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
                {"type": "array", "maxItems": MAX_INPUTS, "items": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS}},
                {"type": "array", "maxItems": MAX_INPUT_TOKENS, "items": {"type": "integer", "minimum": 0}},
                {"type": "array", "maxItems": MAX_INPUTS, "items": {"type": "array", "maxItems": MAX_INPUT_TOKENS, "items": {"type": "integer", "minimum": 0}}},
            ]
        },
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
    },
    "required": ["model", "input"],
}  # fmt: skip

_EMBEDDINGS = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "model": {"type": "string"},
        "data": {"type": "array", "items": {"type": "object", "properties": {
            "object": {"type": "string", "enum": ["embedding"]}, "index": {"type": "integer"},
            "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]},
        }}},
        "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}},
    },
}  # fmt: skip


def add_responses_paths(result: dict[str, Any], *, security: list, error, auth_errors: dict[str, Any], tag: str) -> None:
    result["components"]["schemas"].update(
        OpenAIResponseRequest=_RESPONSE_REQUEST, OpenAIResponse=_RESPONSE,
        OpenAIEmbeddingsRequest=_EMBEDDINGS_REQUEST, OpenAIEmbeddings=_EMBEDDINGS,
    )  # fmt: skip
    json_of = lambda name: {"application/json": {"schema": {"$ref": REF + name}}}  # noqa: E731
    upstream = {
        "429": error("Too many answers of yours at once, the provider's rate limit, or your budget is used up (`insufficient_quota`)."),
        "502": error("The model provider failed or refused."),
        "503": error("The model is overloaded or not configured."),
        "504": error("The model provider did not answer in time."),
    }
    paths = result["paths"]
    paths["/v1/responses"] = {"post": {
        "operationId": "openai_responses_create",
        "summary": "Talk to an agent through the OpenAI Responses API.",
        "description": "A turn of a session of yours, as on /v1/chat/completions (`previous_response_id` continues a stored "
        "response's session). `stream: true` answers `text/event-stream` of the documented events (response.created … "
        "response.output_text.delta … response.function_call_arguments.delta … response.completed), each with `sequence_number`; a failure after the start is an "
        "`error` event and `response.failed`. Header `X-Session-ID`: the session.",
        "tags": [tag], "security": security,
        "requestBody": {"required": True, "content": json_of("OpenAIResponseRequest")},
        "responses": {
            "200": {"description": "The response.", "content": {**json_of("OpenAIResponse"), "text/event-stream": {"schema": {"type": "string"}}}},
            "400": error("Invalid body (`param` names the field), a tool type other than function."),
            **auth_errors,
            "404": error("No such agent (`model_not_found`), or no stored response of yours with `previous_response_id` (`previous_response_not_found`)."),
            "405": error("Not POST."), "413": error("The body is larger than the server's limit."), **upstream,
        },
    }}
    paths["/v1/responses/{response_id}"] = {"get": {
        "operationId": "openai_responses_retrieve",
        "summary": "A stored response of yours.",
        "tags": [tag], "security": security,
        "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "", "content": json_of("OpenAIResponse")}, **auth_errors,
                      "404": error("No such response of yours (or it was made with `store: false`).")},
    }, "delete": {
        "operationId": "openai_responses_delete",
        "summary": "Forget a stored response of yours (its turn stays in its session).",
        "tags": [tag], "security": security,
        "parameters": [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "", "content": {"application/json": {"schema": {"type": "object", "properties": {
                          "id": {"type": "string"}, "object": {"type": "string"}, "deleted": {"type": "boolean"}}}}}},
                      **auth_errors, "404": error("No such response of yours.")},
    }}
    paths["/v1/embeddings"] = {"post": {
        "operationId": "openai_embeddings_create",
        "summary": "Embeddings from an embeddings model staff configured (usage counted, budgets applied).",
        "tags": [tag], "security": security,
        "requestBody": {"required": True, "content": json_of("OpenAIEmbeddingsRequest")},
        "responses": {
            "200": {"description": "One embedding per input, in order.", "content": json_of("OpenAIEmbeddings")},
            "400": error("Invalid body; `param` names the field."), **auth_errors,
            "404": error("No embeddings model is configured, or not this one (`model_not_found`)."),
            "405": error("Not POST."), "413": error("The body is larger than the server's limit."), **upstream,
        },
    }}  # fmt: skip
