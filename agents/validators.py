"""Validators for the JSON fields of the agents models. Used as model field validators, so the admin
forms, the API serializers and the services (`full_clean`) all apply the same rules, and every
message names the part of the value that is wrong."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,49}$")
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.:*-]{1,128}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MCP_TYPES = ("stdio", "sse", "http")


def validate_tags(value: Any) -> None:
    """Tags are short lower-case words (`code-review`, `python`). The restricted alphabet is also
    what makes `?tag=` filtering exact on every database (see selectors._filter_tag)."""
    if not isinstance(value, list):
        raise ValidationError("Tags must be a list of strings.", code="invalid_tags")
    for position, tag in enumerate(value):
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise ValidationError(
                f"Tag {position + 1} ({tag!r}) must be 1-50 lower-case letters, digits or _ . + - "
                "starting with a letter or digit.",
                code="invalid_tag",
            )


def validate_tool_names(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(name, str) and TOOL_NAME_RE.match(name) for name in value):
        raise ValidationError(
            "Allowed tools must be a list of tool names (letters, digits and _ . : * -).", code="invalid_tools"
        )


def validate_json_schema(value: Any) -> None:
    """The agent's custom-properties schema must itself be a valid JSON Schema (2020-12) object."""
    if not isinstance(value, dict):
        raise ValidationError("The custom properties schema must be a JSON object.", code="invalid_schema")
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise ValidationError(f"Not a valid JSON Schema at {where}: {exc.message}", code="invalid_schema") from exc


def custom_properties_errors(*, schema: dict, values: Any) -> list[str]:
    """Every way `values` breaks `schema`, each naming the property (`project_key: ...`)."""
    messages = []
    for error in sorted(Draft202012Validator(schema or {}).iter_errors(values), key=lambda e: list(e.path)):
        where = ".".join(str(part) for part in error.absolute_path)
        messages.append(f"{where}: {error.message}" if where else error.message)
    return messages


def _check_str_dict(definition: dict, key: str, what: str) -> None:
    value = definition.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError(
            f"{key}: must be an object mapping {what} names to string values.", code="invalid_mcp_server"
        )


def validate_mcp_server(value: Any) -> None:
    """One MCP server: stdio `{"type": "stdio", "command", "args": [..], "env": {..}}` or
    `{"type": "sse" | "http", "url", "headers": {..}}`. `type` defaults to stdio when a command is given."""
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError("The MCP server definition must be a JSON object.", code="invalid_mcp_server")
    server_type = value.get("type", "stdio" if "command" in value else None)
    if server_type not in MCP_TYPES:
        raise ValidationError(
            f"type: must be one of {', '.join(MCP_TYPES)} (got {value.get('type')!r}).", code="invalid_mcp_server"
        )
    if server_type == "stdio":
        allowed = {"type", "command", "args", "env"}
        command = value.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ValidationError(
                "command: a stdio server needs a non-empty command string.", code="invalid_mcp_server"
            )
        args = value.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise ValidationError("args: must be a list of strings.", code="invalid_mcp_server")
        _check_str_dict(value, "env", "variable")
        bad_names = [name for name in value.get("env", {}) if not ENV_NAME_RE.match(name)]
        if bad_names:
            raise ValidationError(f"env: invalid variable name(s): {', '.join(bad_names)}.", code="invalid_mcp_server")
    else:
        allowed = {"type", "url", "headers"}
        url = value.get("url")
        try:
            parsed = urlparse(url) if isinstance(url, str) else None
        except ValueError:  # "Invalid IPv6 URL" (`http://[`)
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValidationError(f"url: a {server_type} server needs an http(s) URL.", code="invalid_mcp_server")
        _check_str_dict(value, "headers", "header")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValidationError(
            f"{', '.join(unknown)}: not allowed in a {server_type} server definition "
            f"(allowed: {', '.join(sorted(allowed))}).",
            code="invalid_mcp_server",
        )
