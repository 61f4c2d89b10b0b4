"""The Responses request's tool and output options and image parts, in the Chat Completions shapes
that chat_options.py and images.py check (one set of rules for both APIs):
- `tools` of type function ({type, name, description, parameters, strict}) → Chat Completions function
  tools; any other type (web_search, file_search, computer_use_preview, mcp…) is a 400 naming it;
- `tool_choice` auto / none / required / {type: "function", name} → the Chat Completions choice;
- `text.format` json_object / json_schema ({name, schema, strict, description}) → `response_format`;
- `input_image` parts (`image_url` a data: or https URL) → `image_url` parts; `file_id` is a 400.
A 400 raised by the Chat Completions checks names the Chat Completions field: `responses_param`
names the Responses one."""

from __future__ import annotations

import re
from typing import Any

from assistant.surfaces.openai.errors import OpenAIError, bad_request

FUNCTION_FIELDS = ("name", "description", "parameters", "strict")


def chat_tools(tools: Any) -> Any:
    """The Responses `tools` as Chat Completions ones (None when absent)."""
    if tools is None or not isinstance(tools, list):
        return tools  # chat_options says what is wrong with a non-list
    converted = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise OpenAIError(
                400, f"Tools of type {kind!r} are not supported here: only `function` tools (run by the client).",
                code="unsupported_value", param=f"tools[{index}].type",
            )  # fmt: skip
        converted.append({"type": "function", "function": {k: tool[k] for k in FUNCTION_FIELDS if k in tool}})
    return converted


def chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        if choice.get("type") == "function" and "name" in choice:
            return {"type": "function", "function": {"name": choice["name"]}}
        raise bad_request('`tool_choice` must be "auto", "none", "required" or {"type": "function", "name": …}.', "tool_choice")
    return choice


def chat_response_format(text: Any) -> Any:
    """`text.format` as a Chat Completions `response_format` (None: plain text)."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad_request("`text` must be an object.", "text")
    wanted = text.get("format")
    if wanted is None:
        return None
    if not isinstance(wanted, dict) or wanted.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_request("`text.format.type` must be text, json_object or json_schema.", "text.format.type")
    if wanted["type"] != "json_schema":
        return {"type": wanted["type"]}
    spec = {k: wanted[k] for k in ("name", "schema", "strict", "description") if k in wanted}
    return {"type": "json_schema", "json_schema": spec}


def image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `input_image` part as an `image_url` part (checked later by images.py)."""
    if part.get("file_id") is not None:
        raise OpenAIError(400, "Images by `file_id` are not supported (there is no Files API here): send `image_url`, "
                          "a data: URL or an https URL.", code="unsupported_value", param=f"{param}.file_id")  # fmt: skip
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad_request("An input_image part needs `image_url`: a data: URL or an https URL.", f"{param}.image_url")
    return {"type": "image_url", "image_url": {"url": url}}


_RENAMES = (
    (re.compile(r"^tools\[(\d+)\]\.function\."), r"tools[\1]."),
    (re.compile(r"^tool_choice\.function\."), "tool_choice."),
    (re.compile(r"^response_format\.json_schema\."), "text.format."),
    (re.compile(r"^response_format(\.type)?$"), r"text.format\1"),
    (re.compile(r"\.image_url\.url$"), ".image_url"),
)


def responses_param(param: str) -> str:
    """A Chat Completions param of these options as the Responses request's."""
    for pattern, replacement in _RENAMES:
        param = pattern.sub(replacement, param)
    return param
