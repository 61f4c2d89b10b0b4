"""The API's JSON parser: DRF's, plus the checks of config/untrusted.py, so a body nested too deeply
or carrying a value the databases refuse is a 400 naming the field, not a 500."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from config import untrusted


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # json.loads on deep nesting: not a ValueError, so DRF lets it through
            raise ParseError(f"JSON parse error - {untrusted.TOO_DEEP}") from None
        try:
            untrusted.check_json(data)
        except untrusted.UnsafeInput as unsafe:
            raise ValidationError(unsafe.fields()) from None
        return data
