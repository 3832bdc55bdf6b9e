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
