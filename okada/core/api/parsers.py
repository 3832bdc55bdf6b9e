"""The API's JSON parser: DRF's, with one more kind of malformed body."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser catches only ValueError: a body nested thousands of levels deep (`[[[[...`,
    well under the body cap) makes Python's decoder raise RecursionError, which would be a 500.
    It is a malformed body like any other (400 `malformed`)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError() from None
