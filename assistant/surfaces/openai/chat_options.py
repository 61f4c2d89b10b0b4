"""The Chat Completions options that change what the model is asked, checked and in neutral form:
the client's `tools` (functions, as Messages API tool definitions), `tool_choice`,
`parallel_tool_calls` and `response_format` (assistant.llm.types.ToolChoice / ResponseFormat).
Shared by the other OpenAI-shaped APIs (`/v1/responses` reads the same definitions)."""

from __future__ import annotations

import json
import re
from typing import Any

from assistant.llm.types import ResponseFormat, ToolChoice
from assistant.surfaces.openai.errors import bad_request

MAX_TOOLS = 128  # as OpenAI
MAX_TOOL_DESCRIPTION = 16_384  # characters
MAX_SCHEMA_BYTES = 64_000  # one tool's parameters, or a response format's schema, as JSON
MAX_TOOLS_BYTES = 512_000  # all the tools' definitions together, as JSON
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NO_PARAMETERS = {"type": "object", "properties": {}}


def _schema(value: Any, param: str, what: str) -> dict[str, Any]:
    """A JSON schema for an object, bounded in size."""
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON schema object.", param)
    if value.get("type") != "object":
        raise bad_request(f'{what} must describe an object (`"type": "object"` at its root).', f"{param}.type")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_SCHEMA_BYTES:
        raise bad_request(f"{what} is larger than {MAX_SCHEMA_BYTES} bytes as JSON.", param)
    return value


def function_definition(function: Any, param: str) -> dict[str, Any]:
    """A function tool (`{name, description, parameters}`) → a Messages API tool definition."""
    if not isinstance(function, dict):
        raise bad_request("A function tool needs a `function` object.", param)
    name = function.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad_request("A function's `name` must be 1 to 64 letters, digits, `_` or `-`.", f"{param}.name")
    description = function.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_TOOL_DESCRIPTION):
        message = f"`description` must be a string of at most {MAX_TOOL_DESCRIPTION} characters."
        raise bad_request(message, f"{param}.description")
    parameters = function.get("parameters")
    schema = NO_PARAMETERS if parameters is None else _schema(parameters, f"{param}.parameters", "`parameters`")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request("`strict` must be a boolean.", f"{param}.strict")
    return {"name": name, "description": description or "", "input_schema": schema}


def parse_tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `tools` as Messages API tool definitions (names unique)."""
    tools = data.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise bad_request(f"`tools` must be a list of at most {MAX_TOOLS} tools.", "tools")
    if len(json.dumps(tools, separators=(",", ":"))) > MAX_TOOLS_BYTES:
        raise bad_request(f"`tools` is larger than {MAX_TOOLS_BYTES} bytes as JSON.", "tools")
    definitions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise bad_request("Only tools of type `function` are supported.", f"{param}.type")
        definition = function_definition(tool.get("function"), f"{param}.function")
        if definition["name"] in seen:
            raise bad_request(f"Two tools are named `{definition['name']}`.", f"{param}.function.name")
        seen.add(definition["name"])
        definitions.append(definition)
    return definitions


def parse_tool_choice(data: dict[str, Any], tools: list[dict[str, Any]]) -> ToolChoice | None:
    choice = data.get("tool_choice")
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad_request(
            '`tool_choice` must be "auto", "none", "required" or {"type": "function", "function": {"name": …}}.',
            "tool_choice",
        )
    if function["name"] not in {tool["name"] for tool in tools}:
        message = f"`tool_choice` names `{function['name'][:64]}`, which is not in `tools`."
        raise bad_request(message, "tool_choice.function.name")
    return ToolChoice("tool", function["name"])


def parse_parallel_tool_calls(data: dict[str, Any]) -> bool | None:
    value = data.get("parallel_tool_calls")
    if value is not None and not isinstance(value, bool):
        raise bad_request("`parallel_tool_calls` must be a boolean.", "parallel_tool_calls")
    return value


def parse_response_format(data: dict[str, Any]) -> ResponseFormat | None:
    wanted = data.get("response_format")
    if wanted is None:
        return None
    kind = wanted.get("type") if isinstance(wanted, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise bad_request("`response_format.type` must be text, json_object or json_schema.", "response_format.type")
    spec = wanted.get("json_schema")
    if not isinstance(spec, dict):
        raise bad_request("`json_schema` must be an object with `name` and `schema`.", "response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        message = "The schema's `name` must be 1 to 64 letters, digits, `_` or `-`."
        raise bad_request(message, "response_format.json_schema.name")
    description = spec.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_TOOL_DESCRIPTION):
        raise bad_request("`description` must be a string.", "response_format.json_schema.description")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request("`strict` must be a boolean.", "response_format.json_schema.strict")
    schema = _schema(spec.get("schema"), "response_format.json_schema.schema", "The response format's `schema`")
    return ResponseFormat("json_schema", name=name, schema=schema, strict=strict, description=description or "")


def conflict_param(tools: list[dict[str, Any]], message: str) -> str | None:
    """The `tools[i].function.name` a `tool_name_conflict` error's message names."""
    for index, tool in enumerate(tools):
        if f"`{tool['name']}`" in message:
            return f"tools[{index}].function.name"
    return "tools"
