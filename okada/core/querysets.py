"""Reads shared by every domain's selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet


def count_up_to(rows: QuerySet[Any], cap: int) -> int:
    """How many rows `rows` holds, counted up to `cap` + 1: a figure above `cap` is shown as
    "`cap`+" (dashboard badges on tables of millions of rows).

    `SELECT count(*) FROM (SELECT id ... LIMIT cap + 1)`: PostgreSQL stops reading after
    `cap` + 1 rows instead of counting them all. The ordering is dropped (a count needs none,
    and an ORDER BY under the LIMIT could make it read and sort every row first).
    """
    return rows.order_by().values("pk")[: cap + 1].count()


def few_keys(rows: QuerySet[Any], cap: int, field: str = "pk") -> list[Any] | None:
    """The `field` of each of `rows`, in no order, when they are `cap` or fewer; None when more.

    For a search of a big list newest first: asked for its matches in order, PostgreSQL walks
    the list's key and tests each row, which reads the whole table for a term few rows (or none)
    match. Asked for a few in no order, it reads them from the search's own index; the list is
    then read by key (`pk__in`). Past `cap`, the search is common and the ordered walk is quick.
    """
    found = list(rows.order_by().values_list(field, flat=True)[: cap + 1])
    return found if len(found) <= cap else None
