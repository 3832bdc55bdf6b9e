"""Field helpers shared by domain models: money in XAF, Cameroonian phone numbers, JSON values
taken from clients."""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from .texts import Text

E164_CM_REGEX = r"^\+237[0-9]{9}$"


def normalize_cm_phone(raw: str) -> str:
    """'6 77 12 34 56', '00237677123456', '+237 677-12-34-56' -> '+237677123456'; else ValidationError."""
    return _normalized(str(raw))


# An order's phone is checked by the API's serializer, then by the service (about 50 us each):
# valid numbers are remembered (a failed one raises, and is not).
@functools.lru_cache(maxsize=4096)
def _normalized(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, "CM")
    except phonenumbers.NumberParseException:
        raise ValidationError(_("Enter a valid phone number."), code="invalid_phone") from None
    if number.country_code != 237 or not phonenumbers.is_valid_number(number):
        raise ValidationError(_("Enter a valid Cameroonian (+237) phone number."), code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_cm_phone(value: str) -> None:
    if normalize_cm_phone(value) != value:
        raise ValidationError(
            _("Phone numbers are stored in E.164 form (+237XXXXXXXXX)."), code="invalid_phone"
        )


class PhoneField(models.CharField):
    """E.164 Cameroonian number; models add `phone_check(...)` so PostgreSQL enforces the shape."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 16)
        kwargs.setdefault("validators", [validate_cm_phone])
        super().__init__(*args, **kwargs)


def phone_check(field: str, name: str, *, nullable: bool = False) -> models.CheckConstraint:
    condition = Q(**{f"{field}__regex": E164_CM_REGEX})
    if nullable:
        condition |= Q(**{f"{field}": ""})
    return models.CheckConstraint(condition=condition, name=name)


def money_field(verbose_name: Any, comment: str, **kwargs: Any) -> models.BigIntegerField:
    """Integer XAF (the franc has no minor unit). Columns end in `_xaf`; models add CHECKs."""
    return models.BigIntegerField(verbose_name, db_comment=f"{comment} (integer XAF).", **kwargs)


class AnyOf(models.Lookup):
    """`column::text = ANY('{a,b,c}'::text[])`, for CHECK constraints on choices columns.

    PostgreSQL re-reads and prepares every CHECK of a table for each INSERT or UPDATE statement.
    `column IN ('a', 'b', ...)` (what `__in` writes) is stored as an array of casts, one node per
    value; one array constant is much cheaper to prepare. Measured on order placement (perf, one
    backend): the constraint checks took 13% of the backend's time with `IN` lists, 10% with
    array constants, 8% with no choices check at all.
    """

    lookup_name = "any_of"
    prepare_rhs = False
    SAFE_VALUE = re.compile(r"^[a-z0-9_]+$")  # nothing to quote inside the array literal

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        values = list(self.rhs)
        unsafe = [v for v in values if not self.SAFE_VALUE.match(v)]
        if not values or unsafe:
            raise ValueError(f"any_of takes lowercase identifiers, not {unsafe or values!r}")
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs}::text = ANY(%s::text[])", [*lhs_params, "{" + ",".join(values) + "}"]


def any_of(field: str, values: Any) -> AnyOf:
    return AnyOf(models.F(field), list(values))


def choices_check(field: str, choices: Any, name: str) -> models.CheckConstraint:
    """CHECK that a choices column holds one of its values: the database refuses a typo too."""
    return models.CheckConstraint(condition=any_of(field, [value for value, _label in choices]), name=name)


class NfcNormalized(models.Func):
    """`expression IS NFC NORMALIZED` (PostgreSQL 13+, UTF8 database), for CHECK constraints on
    identity texts: "é" (U+00E9) and "e" + U+0301 look the same and must not be two keys."""

    template = "%(expressions)s IS NFC NORMALIZED"
    arity = 1
    output_field = models.BooleanField()


# --- JSON values taken from clients (product attributes, sync mutation args) ---------------------

MAX_JSON_DEPTH = 32  # far above any real value (attributes are a flat object, usually)
# json_refusal's sentences (a field that raises them names them: catalog.apis.AttributesField).
JSON_NUL = gettext_noop("Text cannot contain NUL characters.")
JSON_TOO_DEEP = gettext_noop("Nested at most %(n)d levels deep.")


def json_refusal(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Text | None:
    """Why PostgreSQL or the server cannot take `value` (a parsed JSON value) as it is, or None.

    - a text (key or value) holding NUL: jsonb and text columns cannot hold U+0000;
    - nesting deeper than `max_depth` (the value itself is level 1): Python's JSON decoder reads
      hundreds of levels from a small body, and any recursive walk over them (a check, a copy,
      the history) exhausts the stack, a RecursionError (a 500) on every retry.
    Walked without recursion, stopping at the first refusal."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return Text(JSON_TOO_DEEP, n=max_depth)
        if isinstance(item, str):
            if "\x00" in item:
                return Text(JSON_NUL)
        elif isinstance(item, dict):
            stack.extend((child, depth + 1) for pair in item.items() for child in pair)
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None
