"""JSON for line-based wire formats."""

from __future__ import annotations

import json
from typing import Any

# Characters JSON leaves raw that many line readers (Python's str.splitlines, some JS code) take
# for line breaks: escaped, so one event stays one line whoever splits it.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085", "\x0b": "\\u000b", "\x0c": "\\u000c",
                "\x1c": "\\u001c", "\x1d": "\\u001d", "\x1e": "\\u001e"}  # fmt: skip
_LINE_BREAK_TABLE = str.maketrans(_LINE_BREAKS)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAK_TABLE)
