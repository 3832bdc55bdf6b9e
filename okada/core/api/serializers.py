"""Input and output conventions: strict input, RFC 3339 UTC times, query filters."""

from __future__ import annotations

import logging
import re
import string
import threading
import unicodedata
import uuid
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.db.models import F, Func, TextField
from django.utils import translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import get_language, gettext_noop
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.settings import api_settings

from okada.core.errors import InvalidInput
from okada.core.fields import JSON_NUL
from okada.core.texts import Text

log = logging.getLogger(__name__)


class StrictSerializer(serializers.Serializer[Any]):
    """An input serializer that refuses fields it does not declare as writable, naming them.

    DRF drops unknown and read-only fields silently: a client that sends `reserved` or a typo
    (`price` for `price_xaf`) would think it changed something. `read_only_names` lists fields
    of the output a client may not set (answered "read-only" rather than "unknown").
    """

    read_only_names: tuple[str, ...] = ("id", "created_at", "updated_at")

    @cached_property
    def _writable_names(self) -> frozenset[str]:
        # Once per instance, after `fields` (which subclasses may build or adjust in __init__).
        return frozenset(name for name, f in self.fields.items() if not f.read_only)

    @cached_property
    def _read_only_input_names(self) -> frozenset[str]:
        return frozenset(name for name, f in self.fields.items() if f.read_only) | set(self.read_only_names)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            refused = sorted(set(data) - self._writable_names)
            if refused:
                read_only = self._read_only_input_names
                raise serializers.ValidationError(
                    {
                        name: [_("This field is read-only.") if name in read_only else _("Unknown field.")]
                        for name in refused
                    }
                )
            refuse_loosely_typed(self.fields, data)
        return super().to_internal_value(data)


# Controls (BEL, ESC), format characters (zero-width space and joiners, BOM, bidi marks), lone
# surrogates, separators: what a text made only of these, and of spaces, shows is nothing.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


class VisibleCharField(serializers.CharField):
    """A name people read (a product's, a customer's): one made only of invisible characters
    ("\u200b", a BOM, a bidi mark) is blank, as one of spaces is (DRF's `blank`, so sync's stored
    refusals read it back in either language). Such characters inside a visible name stay (an
    emoji's zero-width joiners)."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if (
            isinstance(data, str)
            and not self.allow_blank
            and all(c.isspace() or unicodedata.category(c) in _UNSEEN_CATEGORIES for c in data)
        ):
            self.fail("blank")
        return super().run_validation(data)


def refuse_loosely_typed(fields: Any, data: dict[str, Any]) -> None:
    """A 400 naming each of `fields` whose value in `data` DRF would coerce into something the
    client did not write (`_loosely_typed`). For serializers that are not StrictSerializers but
    read some fields themselves (sync's MutationIn)."""
    loose = {
        name: [ErrorDetail(str(field.error_messages["invalid"]), code="invalid")]
        for name, field in fields.items()
        if name in data and _loosely_typed(field, data[name])
    }
    if loose:
        raise serializers.ValidationError(loose)


# A number sent as a text: ASCII digits only, as a JSON number would be written.
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _loosely_typed(field: serializers.Field, value: Any) -> bool:
    """Whether DRF would coerce `value` into something the client did not write.

    DRF's UUIDField takes an integer (and so `true`) as `UUID(int=...)`: `"device_id": 1`
    registered the device 00000000-0000-0000-0000-000000000001. Its IntegerField reads a text
    with Python's int(), which takes any Unicode digits, spaces and underscores: a stock
    adjustment of `"١٢"` added 12 units, `"1_000"` a thousand. Ids are UUID texts; integers are
    JSON numbers, or texts of ASCII digits (still read, as `limit` in a query is).

    And what DRF reads as the type it wants though the client sent another: an integer sent as a
    fraction (`2.0`, `1e3`: DRF drops the ".0"), a boolean as `1`, `"yes"` or `"on"`, a text as a
    number (`"sku": 12` would be the SKU "12", `12.50` the name "12.5"). JSON has the types: a
    client that sends another one has a bug worth telling it about."""
    if value is None:
        return False  # null: the field's own allow_null says
    if isinstance(field, serializers.UUIDField):
        return not isinstance(value, str)
    if isinstance(field, serializers.IntegerField):
        if isinstance(value, str):
            return _INTEGER_TEXT.fullmatch(value) is None
        return isinstance(value, float)
    if isinstance(field, serializers.BooleanField):
        return not isinstance(value, bool)
    if isinstance(field, serializers.CharField):
        return isinstance(value, (int, float))  # and bool, an int: DRF refuses it too, in the same words
    return False


# --- Validating input -----------------------------------------------------------------------------

# Serializers kept for `validated`, per thread: {(class, language): serializer}.
_kept = threading.local()


def validated(
    serializer_class: type[serializers.Serializer[Any]], data: Any, **kwargs: Any
) -> dict[str, Any]:
    """`data` checked by `serializer_class`: its validated data, or the ValidationError that
    `serializer_class(data=data).is_valid(raise_exception=True)` raises, with the same detail.

    A new DRF serializer deep-copies every declared field (and its nested serializers' fields)
    before it validates anything; on an API's hot path that copy costs more than the checks.
    Validation keeps no state on the fields (DRF's `is_valid` puts `initial_data`, `_errors` and
    `_validated_data` on the serializer it is called on; `run_validation` is the same checks
    without them), so one serializer per class is built once and reused, provided that:
    - it is used by one call at a time: kept per thread, and taken off the shelf while in use
      (a validation that validates the same class again gets a new one);
    - it is kept per language: the min/max messages of DRF's fields are `lazy_format`s that keep
      the text of their first rendering, so a French request must not reuse a serializer that
      once answered in English;
    - it depends on nothing of the request: with keyword arguments (`context=`, `partial=`, whose
      fields may depend on the user) a new serializer is built for this call, as before. A
      class that is always partial says so in its `__init__` (ProductPatchIn);
    - no field has a list or dict default: every request that omits the field would get the
      same object (tests/core/api/test_serializers.py checks the input serializers).
    """
    if kwargs:
        return _run_validation(serializer_class(**kwargs), data)
    shelf: dict[tuple[type[serializers.Serializer[Any]], str | None], serializers.Serializer[Any]]
    shelf = _kept.__dict__.setdefault("shelf", {})
    key = (serializer_class, get_language())
    serializer = shelf.pop(key, None)
    if serializer is None:
        serializer = serializer_class()
    try:
        return _run_validation(serializer, data)
    finally:
        shelf[key] = serializer


def _run_validation(serializer: serializers.Serializer[Any], data: Any) -> dict[str, Any]:
    try:
        value: dict[str, Any] = serializer.run_validation(data)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(_as_serializer_errors(exc.detail)) from None
    return value


def _as_serializer_errors(detail: Any) -> Any:
    """What `Serializer.errors` makes of a validation's detail (DRF's edge case for a null body)."""
    if isinstance(detail, list) and len(detail) == 1 and getattr(detail[0], "code", None) == "null":
        return {api_settings.NON_FIELD_ERRORS_KEY: [ErrorDetail(str(_("No data provided")), code="null")]}
    return detail


def validated_or_texts(
    serializer_class: type[serializers.Serializer[Any]], data: Any, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, list[Text]]]:
    """`data` checked by `serializer_class(**kwargs)`, for input whose refusal is stored (a sync
    mutation's) and read later in another language: its validated data and no errors, or no
    data and `{"field": [Text]}` (the paths of `flatten_errors`), each message as its msgid and
    parameters.

    DRF formats a message as soon as it raises it, in the active language; its ErrorDetail keeps
    the `code` and the words, not the parameters. So the check runs with no language active
    (the words are the msgid's, formatted) and each message is read back against the msgid the
    field raised it from (`error_messages[code]`, lazy: the same msgid in every language).
    """
    from .problems import error_paths

    serializer = serializer_class(**kwargs)
    with translation.override(None):
        try:
            return _run_validation(serializer, data), {}
        except serializers.ValidationError as exc:
            detail = exc.detail
    return {}, {
        path: [error_text(_field_at(serializer, keys), item) for item, keys in items]
        for path, items in error_paths(detail).items()
    }


def error_text(field: Any, detail: Any) -> Text:
    """One message a field raised with no language active, as its msgid and parameters: the
    field's message for the error's code, its parameters read back from the words (DRF's
    messages format theirs with braces, "{max_length}"; ours with %, "%(n)d": a field of ours
    raising one of our Texts lists it under its code). A message the field does not list is
    kept as its words: a lazy message raised as it is ("No such category.") is its own msgid;
    any other stays English."""
    words = str(detail)
    template = getattr(field, "error_messages", {}).get(getattr(detail, "code", None))
    if template is not None:
        percent = False
        try:
            text = Text.of(template)
            percent = _PERCENT_PARAM.search(text.msgid) is not None
            params = (_percent_params_in if percent else _params_in)(text.msgid, words)
        except Exception:  # a message this cannot read back is still stored: as its words
            log.exception("could not read back the message %r", words[:200])
            params = None
        if params is not None and percent:
            return Text(text.msgid, **params)
        if params is not None:
            return Text.braced(text.msgid, **params) if params else text
    return Text(words)


_PERCENT_PARAM = re.compile(r"%\((?P<name>\w+)\)[sdr]|%%")


def _percent_params_in(template: str, words: str) -> dict[str, Any] | None:
    """The parameters that make `words` of the %-format `template`, or None if they do not."""
    pattern, names, at = [], set(), 0
    for found in _PERCENT_PARAM.finditer(template):
        pattern.append(re.escape(template[at : found.start()]))
        at = found.end()
        name = found["name"]
        if name is None:  # "%%"
            pattern.append("%")
        else:
            pattern.append(f"(?P={name})" if name in names else f"(?P<{name}>.+?)")
            names.add(name)
    pattern.append(re.escape(template[at:]))
    matched = re.fullmatch("".join(pattern), words, re.DOTALL)
    return None if matched is None else _read_back(matched.groupdict())


def _field_at(serializer: Any, keys: tuple[str | int, ...]) -> Any:
    """The field that raised the errors found at `keys` in a validation's detail, or None."""
    field = serializer
    for key in keys:
        if key == api_settings.NON_FIELD_ERRORS_KEY:
            break
        fields = getattr(field, "fields", None)
        if isinstance(key, str) and fields is not None and key in fields:
            field = fields[key]
        elif getattr(field, "child", None) is not None:  # a list or dict field, many=True
            field = field.child
        else:
            return None
    return field


def _params_in(template: str, words: str) -> dict[str, Any] | None:
    """The parameters that make `words` of the str.format `template`, or None if they do not."""
    pattern, names = [], set()
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, spec, conversion in parts:
        pattern.append(re.escape(literal))
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            return None  # positional, indexed or formatted: not DRF's {name}
        pattern.append(f"(?P={name})" if name in names else f"(?P<{name}>.+?)")
        names.add(name)
    found = re.fullmatch("".join(pattern), words, re.DOTALL)
    return None if found is None else _read_back(found.groupdict())


def _read_back(params: dict[str, str]) -> dict[str, Any]:
    """Parameters read back from a message's words: a number as one (a limit, a count); anything
    else, the caller's own input among them ("007", five thousand digits), the words it was."""
    number = re.compile(r"-?(0|[1-9][0-9]{0,17})")
    return {k: int(v) if number.fullmatch(v) else v for k, v in params.items()}


class UtcDateTimeField(serializers.DateTimeField):
    """RFC 3339 in UTC with a `Z` (`2026-11-22T09:30:00.123456Z`), whatever the server's zone."""

    def to_representation(self, value: datetime | None) -> str | None:  # type: ignore[override]
        return utc(value)


# The API's one text for a time, written by Python (`utc`) or by PostgreSQL (`utc_sql`, for lists
# read as plain values): side by side so they cannot drift; tests/core/api/test_serializers.py
# compares them on the same instants.


def utc(value: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds and a `Z` (`2026-11-22T09:30:00.000000Z`)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# `utc_sql` as SQL text, for statements written by hand (`{column}`: the column).
UTC_SQL = "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def utc_sql(field: str) -> Func:
    """The column `field` as `utc()` writes it, by PostgreSQL: whatever the session's time zone
    (AT TIME ZONE 'UTC' makes the UTC wall time), six digits of microseconds even when zero."""
    return Func(F(field), template=UTC_SQL.format(column="%(expressions)s"), output_field=TextField())


# --- Query parameters -----------------------------------------------------------------------------


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = parse_datetime(raw.replace(" ", "+"))  # a "+" left unescaped in a URL is a space
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(
            Text(
                gettext_noop("%(name)s is an RFC 3339 time with its offset, e.g. 2026-11-22T09:30:00Z."),
                name=name,
            ),
            field=name,
        )
    return _in_utc(parsed)


def _in_utc(value: datetime) -> datetime:
    """`value` in UTC. Python reads offsets up to 23:59, PostgreSQL's timestamptz takes at most
    15:59 (a 500 on the first query: "time zone displacement out of range"); in UTC every offset
    is the same instant. One Python cannot hold in UTC (before year 1, after 9999, by its
    offset) is a bound: the earliest or the latest time it can hold."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


def query_bool(request: Request, name: str) -> bool | None:
    """`true`/`false` in any case, or `1`/`0` (what PHP's http_build_query and many form
    libraries send for a boolean); the refusal names all four, so it says what is read."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidInput(Text(gettext_noop("%(name)s is true or false (or 1 or 0)."), name=name), field=name)


def query_uuid(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(Text(gettext_noop("%(name)s is a UUID."), name=name), field=name) from None


def query_choice(request: Request, name: str, choices: list[str]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise InvalidInput(
            Text(gettext_noop("%(name)s is one of: %(choices)s"), name=name, choices=", ".join(choices)),
            field=name,
        )
    return raw


def query_text(request: Request, name: str, *, max_length: int = 200) -> str:
    raw = request.query_params.get(name, "").strip()
    if "\x00" in raw:  # PostgreSQL's text cannot hold it
        raise InvalidInput(Text(JSON_NUL), field=name)
    if len(raw) > max_length:
        raise InvalidInput(
            Text(gettext_noop("%(name)s is at most %(n)d characters."), name=name, n=max_length), field=name
        )
    return raw
