"""The API's JSON parser: DRF's, with more kinds of malformed body.

Python's decoder accepts, and PostgreSQL then refuses (a 500 on the first jsonb or text column
they reach, e.g. a product's `attributes` or a sync mutation's `args`):
- a number too large for a float (`1e400` is read as infinity; jsonb has no infinity), as DRF
  already refuses the `NaN` and `Infinity` literals;
- a `\\uD800`-`\\uDFFF` escape that is not half of a pair (an unpaired surrogate is no character:
  it cannot be written as UTF-8), also when the body's charset spells it rather than an escape.
Both are malformed bodies like a syntax error (400 `malformed`), refused before any view runs.

So is an object that names a member twice (`{"price_xaf": 5, "price_xaf": 500000}`): RFC 8259
leaves the meaning to each reader, and Python's keeps the last while others (a proxy, a log
pipeline, the sender's own tooling) keep the first: the API would act on a value they did not see.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from rest_framework import exceptions, parsers
from rest_framework.parsers import get_encoding  # type: ignore[attr-defined]  # not in the stubs yet
from rest_framework.utils.json import strict_constant

# A surrogate escape (`\ud83d`, `\uDC00`), or a surrogate itself: only bodies holding one are
# searched for unpaired ones. UTF-8 cannot spell a surrogate (its decoder refuses one), but other
# text codecs a request may name can (`charset=utf-7`: `+2AA-`; `unicode_escape`: `\ud800`, undone
# before the JSON decoder reads it): the decoded text then holds the surrogate, not an escape.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


class DuplicateMember(ValueError):
    """A JSON object names a member twice."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a member named twice (the decoder would keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise DuplicateMember("a member is named twice")
    return obj


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string in `value` (keys included) holds an unpaired surrogate. Iterative: a
    body nested deep enough for Python's decoder is not deep enough for the recursion limit, but
    this walk must not be the one that finds it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser, and: a body nested thousands of levels deep (`[[[[...`, well under the
    body cap) makes Python's decoder raise RecursionError, which would be a 500; numbers out of
    a float's range, unpaired surrogates and members named twice (see the module docstring).
    All are 400 `malformed`."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})  # DRF's: text codecs only (no bz2_codec)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(
                text, parse_constant=strict_constant, parse_float=_finite, object_pairs_hook=_object
            )
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise exceptions.ParseError() from None
        if _SURROGATE.search(text) and _has_lone_surrogate(data):
            raise exceptions.ParseError()
        return data
