"""The API's JSON parser: DRF's, plus the checks of config/untrusted.py, so a body nested too deeply
or carrying a value the databases refuse is a 400 naming the field, not a 500."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.utils import json as drf_json

from config import untrusted


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            # DRF's parse, with a parser that doesn't depend on the caller's stack (untrusted.json_loads).
            data = untrusted.json_loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except RecursionError:  # deeper than any stack takes: not a ValueError, so DRF lets it through
            raise ParseError(f"JSON parse error - {untrusted.TOO_DEEP}") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None
        try:
            untrusted.check_json(data)
        except untrusted.UnsafeInput as unsafe:
            raise ValidationError(unsafe.fields()) from None
        return data
