"""Cursor (keyset) pagination: `{"results": [...], "next": url|null, "previous": url|null}`.

A page is read with `WHERE (sort key, id) > (last seen)` and `LIMIT n + 1`: the cost of a page
does not grow with how deep it is, and rows inserted meanwhile never shift a page (no OFFSET).
The cursor is the sort key of the page's edge, signed (a tampered cursor is a 400, not a query),
and names the list it was made for: its URL path and whose rows it holds (a vendor's, or the
storefront's). Another list, or another vendor's credential, refuses it (400): read there it was
a position in unrelated rows, a page that silently skipped some. Cursors made before they named
their list (four items) are still read, for the clients paging through a deploy.
`?limit=` defaults to 50, at most 200. `?ordering=` picks one of the view's allowed orderings;
`id` always breaks ties (ids are unique), in the same direction.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from django.core import signing
from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from okada.core.errors import InvalidInput
from okada.core.texts import Text

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_SIGNER = signing.Signer(salt="okada.api.cursor")


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next: str | None
    previous: str | None

    def response(self, results: Any) -> Response:
        return Response({"results": results, "next": self.next, "previous": self.previous})

    def json_response(self, texts: Iterable[str]) -> Response:
        """The page of rows already written as JSON text, one object each (sent as they are)."""
        return self.response(orjson.Fragment("[" + ",".join(texts) + "]"))


# The query parameters of every list, for its @extend_schema(parameters=[*LIST_PARAMETERS, ...]).
LIST_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        description=f"Page size, 1 to {MAX_LIMIT} (default 50).",
    ),
    OpenApiParameter("cursor", str, description="From `next` or `previous` of a page."),
    OpenApiParameter("updated_since", str, description="RFC 3339 time: rows changed at or after it."),
]
LIST_QUERY = tuple(p.name for p in LIST_PARAMETERS)  # for ApiView.query_params of a list


def page_of(serializer: type[serializers.Serializer[Any]]) -> serializers.Serializer[Any]:
    """The schema of a page of `serializer` rows (for @extend_schema)."""
    name = serializer.__name__.removesuffix("Out")
    return inline_serializer(
        name=f"{name}Page",
        fields={
            "results": serializer(many=True),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
        },
    )


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also holds for "²" (int() refuses it) or fullwidth digits.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(
            Text(gettext_noop("limit is an integer from 1 to %(max)d."), max=MAX_LIMIT), field="limit"
        )
    return int(raw)


class CursorPage:
    """`CursorPage(request, orderings=("-updated_at", "name"), default="-updated_at").paginate(qs)`."""

    def __init__(self, request: Request, *, orderings: Sequence[str], default: str) -> None:
        self.request = request
        self.limit = parse_limit(request)
        ordering = request.query_params.get("ordering", default)
        if ordering not in orderings:
            raise InvalidInput(
                Text(gettext_noop("ordering is one of: %(choices)s"), choices=", ".join(orderings)),
                field="ordering",
            )
        self.ordering = ordering
        self.field = ordering.lstrip("-")
        self.descending = ordering.startswith("-")
        self.cursor = self._decode(request.query_params.get("cursor"))

    def _decode(self, raw: str | None) -> tuple[str, Any, str] | None:
        if raw is None:
            return None
        try:
            ordering, direction, value, pk, *named = json.loads(
                base64.urlsafe_b64decode(_SIGNER.unsign(raw).encode())
            )
        except (signing.BadSignature, ValueError, TypeError):
            raise InvalidInput(_("This cursor is not valid."), field="cursor") from None
        if named and named != [self._list]:  # none: made before cursors named their list
            raise InvalidInput(_("This cursor belongs to another list."), field="cursor")
        if ordering != self.ordering or direction not in ("n", "p") or not isinstance(pk, str):
            raise InvalidInput(_("This cursor is not valid for this ordering."), field="cursor")
        return direction, value, pk

    @property
    def _list(self) -> str:
        """The list a cursor is for: the URL path and whose rows (the credential's vendor, or its
        role: the storefront), hashed (a cursor is read by whoever holds the URL; short)."""
        actor = getattr(self.request, "actor", None)
        whose = getattr(actor, "vendor_id", None) or getattr(actor, "role", "")
        return hashlib.sha256(f"{self.request.path}\n{whose}".encode()).hexdigest()[:16]

    @property
    def forward(self) -> bool:
        """Whether this page is read in the list's order (no cursor, or a `next` one)."""
        return self.cursor is None or self.cursor[0] == "n"

    @property
    def read_ordering(self) -> str:
        """The order the page's rows are read in: the list's, or its reverse for a `previous` page
        (read backwards from the cursor, then turned round)."""
        if self.forward:
            return self.ordering
        return self.field if self.descending else f"-{self.field}"

    def position(self, model: type[Model]) -> tuple[Any, Any] | None:
        """The cursor's (sort key, id) as `model`'s Python values (None without a cursor): a page
        holds the rows strictly after it in `read_ordering`."""
        if self.cursor is None:
            return None
        pk: Any = model._meta.pk
        try:
            return self.sort_value(model, self.cursor[1]), pk.to_python(self.cursor[2])
        except Exception:
            raise InvalidInput(_("This cursor is not valid."), field="cursor") from None

    def sort_value(self, model: type[Model], value: Any) -> Any:
        """`value` (e.g. a cursor's, or PostgreSQL's text) as `model`'s Python value of the sort key."""
        field: Any = model._meta.get_field(self.field)
        return field.to_python(value)

    def paginate(self, queryset: QuerySet[Any]) -> Page:
        position = self.position(queryset.model)
        if position is not None:
            queryset = self._after(queryset, *position)
        descending = self.read_ordering.startswith("-")
        sign = "-" if descending else ""
        rows = list(queryset.order_by(f"{sign}{self.field}", f"{sign}pk")[: self.limit + 1])
        return self.page(rows, self._key)

    def _after(self, queryset: QuerySet[Any], value: Any, pk: Any) -> QuerySet[Any]:
        op = "lt" if self.read_ordering.startswith("-") else "gt"
        # The sort key's bound on its own too (implied by the OR): PostgreSQL takes no index
        # condition from that OR, so the index of the sort key was walked from its very first
        # entry to the cursor, all of it filtered out, the deeper the page the longer.
        return queryset.filter(
            Q(**{f"{self.field}__{op}": value}) | Q(**{self.field: value, f"pk__{op}": pk}),
            **{f"{self.field}__{op}e": value},
        )

    def _key(self, row: Any) -> tuple[Any, Any]:
        """(sort key, id) of a model instance or a `.values()` dict (which must hold both)."""
        if isinstance(row, dict):
            return row[self.field], row["id"]
        return getattr(row, self.field), row.pk

    def page(self, rows: list[Any], key: Callable[[Any], tuple[Any, Any]]) -> Page:
        """The page of up to `limit + 1` rows read in `read_ordering` after `position()` (the
        extra row only says there is more); `key(row)` is a row's (sort key, id) for the cursors."""
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if not self.forward:
            rows.reverse()
        has_next = more if self.forward else self.cursor is not None
        has_previous = self.cursor is not None if self.forward else more
        return Page(
            rows=rows,
            next=self._link("n", key(rows[-1])) if has_next and rows else None,
            previous=self._link("p", key(rows[0])) if has_previous and rows else None,
        )

    def _encode(self, direction: str, value: Any, pk: Any) -> str:
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        payload = json.dumps([self.ordering, direction, value, str(pk), self._list], separators=(",", ":"))
        return _SIGNER.sign(base64.urlsafe_b64encode(payload.encode()).decode())

    def _link(self, direction: str, key: tuple[Any, Any]) -> str:
        params = {k: v for k, v in self.request.query_params.items() if k != "cursor"}
        params["cursor"] = self._encode(direction, *key)
        return self.request.build_absolute_uri(f"{self.request.path}?{urlencode(params)}")
