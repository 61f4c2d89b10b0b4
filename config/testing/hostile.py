"""Hypothesis strategies for what a careless or hostile client sends (config/tests/test_hostile_fuzzing.py,
assistant/tests/surfaces/test_websocket_hostile.py): JSON values as raw JSON text, so that what `json.dumps`
can't produce is in too (`1e999`, `NaN`, nesting 100,000 deep, `"\\ud800"`)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from config.untrusted import MAX_DB_INT, MAX_JSON_DEPTH


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


DEPTHS = (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 500, 990, 100_000)

# Each is one JSON value, as text, by the kind of trouble it makes.
RAW_VALUES_BY_KIND = {
    # NUL characters: PostgreSQL refuses them in text and jsonb, in values and in keys
    "nul": [
        '"\\u0000"',
        '"a\\u0000b"',
        '["ok", "\\u0000"]',
        '{"k\\u0000": 1}',
        '{"command": "npx", "args": ["\\u0000"]}',
        '{"type": "object", "properties": {"a\\u0000": {}}}',
    ],
    # lone surrogates (not UTF-8), and unusual but valid text
    "unicode": ['"\\ud800"', '"x\\udfff"', '"\\u202e\\u00e9\\ud83d\\ude00"'],
    # numbers past the databases' integers, past a double, past int()'s digit limit
    "numbers": [
        str(MAX_DB_INT + 1),
        str(-MAX_DB_INT - 2),
        "99999999999999999999",
        "1" + "0" * 4300,
        "1e999",
        "-1e999",
        "1e308",
        "-0.0",
        "NaN",
        "Infinity",
    ],
    # deep nesting: under, at and past the limit, and past the parser's recursion
    "nesting": [*(nested_array(depth) for depth in DEPTHS), *(nested_object(depth) for depth in DEPTHS[:-1])],
    "types": [
        *("null", "true", "false", "0", "-1", "1.5", '""', '" "', '"x"'),
        *("[]", "{}", "[1, 2]", '{"a": "b"}', '[{"a": []}]'),
    ],
    "long": [json.dumps("x" * 100_000), json.dumps(["x"] * 10_000)],
    # URLs urllib can't parse ("Invalid IPv6 URL"), where URLs are expected
    "urls": [
        '"http://["',
        '{"type": "http", "url": "http://["}',
        '{"type": "sse", "url": "http://[::1", "headers": {"a": "b"}}',
    ],
}
RAW_VALUES = [raw for values in RAW_VALUES_BY_KIND.values() for raw in values]

TOO_LARGE = json.dumps("x" * (3 * 2**20))  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)

raw_values = st.one_of(
    # A kind first, then a value of it: every kind comes up, however many values each has.
    st.sampled_from(sorted(RAW_VALUES_BY_KIND)).flatmap(lambda kind: st.sampled_from(RAW_VALUES_BY_KIND[kind])),
    st.text(max_size=50).map(json.dumps),  # any code point, NUL included
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
)

# Whole bodies: a hostile top-level value, or one too large.
raw_bodies = st.one_of(st.sampled_from(RAW_VALUES), st.just(TOO_LARGE), st.just("{nope"), st.just(""))


def raw_object(items: dict[str, str]) -> str:
    """A JSON object from keys and raw JSON values."""
    return "{" + ", ".join(f"{json.dumps(key)}: {raw}" for key, raw in items.items()) + "}"


# Query-string and path values (before percent-encoding).
PARAM_VALUES = [
    "\x00",
    "a\x00b",
    "²",
    "٣",
    "-1",
    "0",
    "1",
    "1.5",
    "1e3",
    " 1",
    str(MAX_DB_INT),
    str(MAX_DB_INT + 1),
    "99999999999999999999",
    "9" * 5000,
    "true",
    "last",
    "\ud800",
    "é🙂",
    "x" * 2000,
    "",
]
param_values = st.one_of(st.sampled_from(PARAM_VALUES), st.text(max_size=20))
