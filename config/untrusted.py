"""Input from clients, checked where it comes in (the JSON parser, the query string, the websocket's
frames) for what would otherwise fail deep inside, as a 500 or a closed socket:

- JSON nested deeper than Python's parser recurses: `json.loads` raises RecursionError, not
  ValueError. Parsed JSON deeper than MAX_JSON_DEPTH is refused too, so that no later step (the
  JSON encoders of DRF and the database, validators) can run out of stack on it.
- Strings (values or object keys) with a NUL character: PostgreSQL refuses `\\u0000` in text and
  in jsonb. SQLite takes it; it is refused on both, so both behave alike.
- Strings with a lone surrogate (`"\\ud800"` is valid JSON): not encodable as UTF-8, so the database
  driver and the JSON renderer fail on them.
- Numbers that overflow a double (`1e999` parses as infinity; neither JSON nor jsonb has it).
- Integers from query strings: digits `str.isdigit()` accepts and `int()` doesn't (`²`), and ids
  beyond the databases' 64-bit integers (SQLite raises OverflowError, PostgreSQL an error).

Each refusal names where the bad value is, as the error body's `fields` does: `{"a": {"0": [...]}}`.
"""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Wider than any JSON the API takes (custom-properties schemas included), shallow enough that every
# recursive step after parsing stays far from Python's recursion limit (1000 frames).
MAX_JSON_DEPTH = 200
# The largest id or integer either database stores (a signed 64-bit integer).
MAX_DB_INT = 2**63 - 1

NULL_CHARACTER = "Null characters are not allowed."
LONE_SURROGATE = "Not valid Unicode (a lone surrogate, e.g. \\ud800)."
NOT_FINITE = "Numbers must be finite (this one overflows a 64-bit float)."
TOO_DEEP = f"Nested deeper than {MAX_JSON_DEPTH} levels."

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")


class UnsafeInput(ValueError):
    """A value refused at the edge: `path` leads to it (keys and list indexes), `message` says why."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()):
        super().__init__(message)
        self.message = message
        self.path = path

    def fields(self, root: str = "non_field_errors") -> dict[str, Any]:
        """The error body's `fields`: the message under its path (`{"a": {"0": ["..."]}}`); a
        problem with the whole value goes under `root`."""
        if not self.path:
            return {root: [self.message]}
        messages: Any = [self.message]
        for part in reversed(self.path):
            messages = {str(part): messages}
        return messages

    def where(self) -> str:
        """The path as one dotted name (`custom_properties.tags.0`), for messages."""
        return ".".join(str(part) for part in self.path)


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return NULL_CHARACTER
    if _SURROGATE.search(text):
        return LONE_SURROGATE
    return None


def check_json(value: Any) -> None:
    """Raise UnsafeInput for the first NUL-bearing or lone-surrogate string (value or key), the
    first infinite number, or the first container nested deeper than MAX_JSON_DEPTH. Iterative:
    any depth that parsed is walked without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = string_problem(item)
            if problem:
                raise UnsafeInput(problem, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeInput(NOT_FINITE, path)
        elif isinstance(item, (dict, list)):
            if len(path) >= MAX_JSON_DEPTH:
                # The top-level field names it; a path hundreds of levels long would tell no more.
                raise UnsafeInput(TOO_DEEP, path[:1])
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    problem = string_problem(key) if isinstance(key, str) else None
                    if problem:
                        raise UnsafeInput(f"{problem.removesuffix('.')} in a key.", path)
                    children.append((child, (*path, key)))
            else:
                children = [(child, (*path, index)) for index, child in enumerate(item)]
            stack.extend(reversed(children))  # so the first problem in document order is found first


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# A thread whose stack starts empty, for JSON that nests deeper than the caller's stack leaves room for.
_deep_parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deep-json")


def json_loads(text: str | bytes, *, parse_constant=None) -> Any:
    """`json.loads`, whatever the caller's stack depth. Python's parser recurses once per level and
    counts the frames already on the caller's thread: nesting that parses in a shallow caller raised
    RecursionError under a few more middleware. Such input is parsed again on a thread of its own,
    so it is refused (check_json, naming where) or not whatever the stack; RecursionError there means
    deeper than any stack takes."""
    try:
        return json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        return _deep_parser.submit(json.loads, text, parse_constant=parse_constant).result()


def parse_json(text: str | bytes) -> Any:
    """JSON from a client, checked (check_json). Raises UnsafeInput for JSON nested too deeply and
    for values check_json refuses, ValueError for anything else that isn't JSON."""
    try:
        value = json_loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeInput(TOO_DEEP) from None
    check_json(value)
    return value


def query_problem(params: Any) -> tuple[str, str] | None:
    """(name, message) of the first query parameter whose name or value has a NUL character."""
    for name, values in params.lists():
        for text in (name, *values):
            if "\x00" in text:
                return ("non_field_errors" if "\x00" in name else name), NULL_CHARACTER
    return None


def db_int(text: str, *, name: str, maximum: int = MAX_DB_INT) -> int:
    """A non-negative query-string integer up to `maximum` (ASCII digits only: `²` and `٣` pass
    str.isdigit()). Raises UnsafeInput naming the parameter."""
    if not is_ascii_digits(text):
        raise UnsafeInput("Must be a non-negative integer.", (name,))
    # At most 19 significant digits before int(): no conversion of a million-digit number.
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        raise UnsafeInput(f"Must be at most {maximum}.", (name,))
    return int(text)


def is_ascii_digits(text: str) -> bool:
    return bool(_ASCII_DIGITS.fullmatch(text))
