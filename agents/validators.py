"""Validators for the JSON fields of the agents models. Used as model field validators, so the admin
forms, the API serializers and the services (`full_clean`) all apply the same rules, and every
message names the part of the value that is wrong."""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema_rs
from django.conf import settings
from django.core.exceptions import ValidationError

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


# --- Custom-properties JSON Schemas ---------------------------------------------------------------
# Any user may set an agent's schema and everything runs with the GIL held, so checking a schema or a
# value must take bounded time whatever the user wrote:
# - regexes (`pattern`, `patternProperties`) run on jsonschema-rs' linear-time `regex` engine (no
#   backtracking; backreferences and lookaround are refused at save), each compiled into at most
#   REGEX_SIZE_LIMIT bytes, at most SCHEMA_MAX_PATTERNS of them;
# - size and depth are checked before anything recursive runs (settings AGENT_SCHEMA_MAX_*);
# - `$ref`s are local JSON pointers only (nothing is ever fetched), without cycles, and the schema with
#   every `$ref` inlined stays under SCHEMA_MAX_EXPANDED_NODES (`allOf` of two refs to the next
#   definition, 30 deep, is 2**30 evaluations otherwise);
# - a value is checked only when (schema nodes x value weight) stays under VALIDATION_WORK_MAX:
#   evaluation costs up to one step per pair (measured ~25-45 ns), so ~25-45 ms at the limit;
# - building error objects costs ~25 µs each, iter_errors builds them all however few are read, and
#   an anyOf failure carries every branch's errors: so the problems are listed only when that product
#   is under ERRORS_WORK_MAX (~125 ms at worst); past it one message says the value doesn't match.
# Formats are annotations, as in JSON Schema 2020-12 by default (and as before): no `format: regex`
# value is ever compiled.
REGEX_SIZE_LIMIT = 128 * 1024  # enough for `^.{1,120}$` or `^\w{1,900}$`; ~6 ms to compile at most
SCHEMA_MAX_PATTERNS = 32
SCHEMA_MAX_EXPANDED_NODES = 50_000
VALIDATION_WORK_MAX = 1_000_000
ERRORS_WORK_MAX = 5_000
MAX_ERRORS = 20  # messages reported for one value
MAX_MESSAGE_CHARS = 300
_STRING_CHARS_PER_STEP = 32  # a regex scans ~32 characters in the time of one evaluation step


def _where(link: tuple | None, *, limit: int = 0, sep: str = "/") -> str:
    """`a/b/0` from a walk's (parent link, key) chain; `limit` keeps the first parts."""
    parts: list[str] = []
    while link is not None:
        link, key = link
        parts.append(str(key))
    parts.reverse()
    if limit and len(parts) > limit:
        parts = [*parts[:limit], "…"]
    return sep.join(parts) or "(root)"


def _canonical(value: Any, *, max_depth: int, max_bytes: int) -> tuple[str | None, str]:
    """(compact sorted JSON, "") or (None, why not). json.dumps recurses, so a value nested past
    the interpreter's limit is reported as too deep rather than crashing."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        return None, f"Nested deeper than {max_depth} levels."
    except (TypeError, ValueError) as exc:
        return None, f"Not plain JSON ({exc})."
    size = len(text.encode())
    if size > max_bytes:
        return None, f"Too large: {size} bytes as JSON, at most {max_bytes}."
    return text, ""


class _Shape:
    """What one iterative walk learns about a JSON value (no recursion: a deep value can't overflow)."""

    def __init__(self) -> None:
        self.too_deep_at: tuple | None = None
        self.weight = 0  # nodes, keys and string length / _STRING_CHARS_PER_STEP
        self.patterns = 0
        self.refs: list[tuple[tuple, Any]] = []  # (where, value) of every `$ref`-like key
        self.children: dict[int, list[Any]] = {}  # id(container) -> its container children
        self.ref_of: dict[int, tuple[tuple, Any]] = {}  # id(dict) -> (where, its `$ref`)
        self.own: dict[int, int] = {}  # id(container) -> 1 + its scalar children and keys


def _walk(value: Any, *, max_depth: int, schema: bool = False) -> _Shape:
    shape = _Shape()
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        node, depth, link = stack.pop()
        if isinstance(node, str):
            shape.weight += 1 + len(node) // _STRING_CHARS_PER_STEP
            continue
        if not isinstance(node, (dict, list)):
            shape.weight += 1
            continue
        if depth > max_depth:
            shape.too_deep_at = link
            return shape
        items = node.items() if isinstance(node, dict) else enumerate(node)
        own, kids = 1, []
        for key, child in items:
            if isinstance(key, str):
                own += 1
                shape.weight += 1 + len(key) // _STRING_CHARS_PER_STEP
            if schema and isinstance(node, dict):
                if key == "pattern" and isinstance(child, str):
                    shape.patterns += 1
                elif key == "patternProperties" and isinstance(child, dict):
                    shape.patterns += len(child)
                elif key in ("$ref", "$dynamicRef") or (key == "$id" and link is not None):
                    if isinstance(child, str):
                        shape.refs.append(((link, key), child))
                        if key == "$ref":
                            shape.ref_of[id(node)] = ((link, key), child)
            if isinstance(child, (dict, list)):
                kids.append(child)
                stack.append((child, depth + 1, (link, key)))
            else:
                own += 1
                shape.weight += 1 + (len(child) // _STRING_CHARS_PER_STEP if isinstance(child, str) else 0)
        shape.weight += 1
        shape.own[id(node)] = own
        shape.children[id(node)] = kids
    return shape


def _pointer_target(root: Any, ref: str) -> tuple[bool, Any]:
    """(found, target) of a local `#/a/b~1c` JSON pointer."""
    parts = [unquote(raw).replace("~1", "/").replace("~0", "~") for raw in ref[2:].split("/")] if ref != "#" else []
    return _resolve(root, parts)


def _resolve(root: Any, parts: list) -> tuple[bool, Any]:
    node = root
    for part in map(str, parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdecimal() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _check_refs(schema: dict, shape: _Shape) -> str:
    """"" when every `$ref` is a local pointer, none loops and the inlined schema stays small."""
    for link, ref in shape.refs:
        where = _where(link)
        key = link[1]
        if key == "$id":
            return f"{where}: `$id` is only allowed at the root (it would change what `$ref`s point to)."
        if key == "$dynamicRef":
            return f"{where}: `$dynamicRef` is not supported; use a local `$ref` (\"#/$defs/...\")."
        if not (ref == "#" or ref.startswith("#/")):
            return (
                f"{where}: only local `$ref`s (\"#/$defs/...\") are allowed; nothing is fetched from "
                f"elsewhere (got {ref[:100]!r})."
            )
        if not _pointer_target(schema, ref)[0]:
            return f"{where}: {ref[:100]!r} points to nothing in this schema."
    # Expanded size = own nodes + expanded children + expanded `$ref` target, by an iterative
    # post-order walk; a node met again while still open is a `$ref` cycle.
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(schema, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if not isinstance(node, (dict, list)) or (key in expanded and not done):
            continue
        edges = list(shape.children.get(key, []))
        if key in shape.ref_of:
            target = _pointer_target(schema, shape.ref_of[key][1])[1]
            if isinstance(target, (dict, list)):
                edges.append(target)
        if done:
            open_nodes.discard(key)
            total = shape.own.get(key, 1) + sum(expanded.get(id(edge), 0) for edge in edges)
            if total > SCHEMA_MAX_EXPANDED_NODES:
                return (
                    f"with every `$ref` inlined the schema would have more than {SCHEMA_MAX_EXPANDED_NODES} "
                    "nodes; reuse fewer definitions."
                )
            expanded[key] = total
            continue
        if key in open_nodes:
            continue  # defensive: already being expanded
        open_nodes.add(key)
        stack.append((node, True))
        for edge in edges:
            if id(edge) in open_nodes:
                where = _where(shape.ref_of[key][0]) if key in shape.ref_of else _where(None)
                return f"{where}: recursive `$ref`s are not supported."
            stack.append((edge, False))
    shape.weight = expanded.get(id(schema), shape.weight)
    return ""


def _engine(schema: dict) -> Any:
    """The compiled validator (raises jsonschema_rs.ValidationError for a bad schema or regex)."""
    return jsonschema_rs.Draft202012Validator(
        schema,
        validate_formats=False,
        # jsonschema-rs fetches remote `$ref`s over HTTP by default: never from a user's schema (the
        # checks before refuse them too).
        offline=True,
        pattern_options=jsonschema_rs.RegexOptions(size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=REGEX_SIZE_LIMIT),
    )


@functools.lru_cache(maxsize=16)
def _compiled(canonical: str, max_depth: int) -> tuple[Any, int, str]:
    """(validator, expanded schema nodes, "") or (None, 0, what is wrong) for one canonical schema.
    Cached: compiling is ~70 µs for a small schema (~1% of a session start) but ~20 ms for 32 regexes
    at the size limit, and every session start needs it. 16 entries of at most ~6 MB each (measured)."""
    schema = json.loads(canonical)
    shape = _walk(schema, max_depth=max_depth, schema=True)
    if shape.too_deep_at is not None:
        return None, 0, f"Nested deeper than {max_depth} levels (at {_where(shape.too_deep_at, limit=8)})."
    if shape.patterns > SCHEMA_MAX_PATTERNS:
        return None, 0, f"At most {SCHEMA_MAX_PATTERNS} regular expressions (`pattern`, `patternProperties`)."
    problem = _check_refs(schema, shape)
    if problem:
        return None, 0, problem
    try:
        validator = _engine(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(part) for part in exc.instance_path) or "(root)"
        message = exc.message
        if exc.kind.name == "format" and message.endswith('is not a "regex"'):
            message = (
                f"{json.dumps(exc.instance)[:100]} is not a regular expression this server runs: no "
                f"backreferences or lookaround, at most {REGEX_SIZE_LIMIT // 1024} KiB compiled."
            )
        return None, 0, f"Not a valid JSON Schema at {where}: {message[:MAX_MESSAGE_CHARS]}"
    return validator, shape.weight, ""


def _schema_problem(schema: Any) -> tuple[Any, int, str]:
    max_depth = settings.AGENT_SCHEMA_MAX_DEPTH
    canonical, problem = _canonical(schema, max_depth=max_depth, max_bytes=settings.AGENT_SCHEMA_MAX_BYTES)
    if canonical is None:
        return None, 0, problem
    return _compiled(canonical, max_depth)


def validate_json_schema(value: Any) -> None:
    """The agent's custom-properties schema must itself be a valid JSON Schema (2020-12) object,
    within the size, depth, regex and `$ref` bounds above."""
    if not isinstance(value, dict):
        raise ValidationError("The custom properties schema must be a JSON object.", code="invalid_schema")
    _, _, problem = _schema_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_schema")


def custom_properties_errors(*, schema: dict, values: Any) -> list[str]:
    """Every way `values` breaks `schema` (up to MAX_ERRORS), each naming the property
    (`project_key: ...`)."""
    max_depth = settings.CUSTOM_PROPERTIES_MAX_DEPTH
    canonical, problem = _canonical(values, max_depth=max_depth, max_bytes=settings.CUSTOM_PROPERTIES_MAX_BYTES)
    if canonical is None:
        return [problem]
    shape = _walk(values, max_depth=max_depth)
    if shape.too_deep_at is not None:
        return [f"{_where(shape.too_deep_at, limit=8, sep='.')}: nested deeper than {max_depth} levels."]
    # A schema saved before these bounds (or under larger ones) may break them: say so, don't run it.
    validator, schema_nodes, problem = _schema_problem(schema or {})
    if validator is None:
        return [f"The agent's custom properties schema can't be used; its owner must fix it: {problem}"]
    if schema_nodes * shape.weight > VALIDATION_WORK_MAX:
        return [
            f"Too large to check against this agent's schema ({shape.weight} value nodes x {schema_nodes} "
            f"schema nodes; at most {VALIDATION_WORK_MAX})."
        ]
    if validator.is_valid(values):
        return []
    if schema_nodes * shape.weight > ERRORS_WORK_MAX:
        return [
            "Custom properties don't match the agent's schema (too large to list the problems: "
            f"{shape.weight} value nodes x {schema_nodes} schema nodes, over {ERRORS_WORK_MAX})."
        ]
    errors = itertools.islice(validator.iter_errors(values), MAX_ERRORS)
    messages = []
    for error in sorted(errors, key=lambda e: [str(part) for part in e.instance_path]):
        where = ".".join(str(part) for part in error.instance_path)
        message = _message(error, schema=schema, values=values)[:MAX_MESSAGE_CHARS]
        message = f"{where}: {message}" if where else message
        if message not in messages:
            messages.append(message)
    return messages


def _message(error: Any, *, schema: dict, values: Any) -> str:
    """jsonschema-rs reports `additionalProperties: false` without sibling `properties` as "False
    schema does not allow <value>" at the object: name the unexpected properties instead."""
    path = error.schema_path
    if error.kind.name != "falseSchema" or not path or path[-1] != "additionalProperties":
        return error.message
    found, instance = _resolve(values, error.instance_path)
    found_schema, parent = _resolve(schema, path[:-1])
    if not (found and found_schema and isinstance(instance, dict) and isinstance(parent, dict)):
        return "Additional properties are not allowed"
    if parent.get("patternProperties"):
        return "Additional properties are not allowed"
    unexpected = sorted(set(instance) - set(parent.get("properties") or {}))
    return f"Additional properties are not allowed ({', '.join(map(repr, unexpected))} unexpected)"


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
