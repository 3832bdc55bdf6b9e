"""The append-only ledgers (stock movements, order events): the database refuses an UPDATE or a
DELETE of their rows, whatever sends it (catalog migration 0011, orders migration 0025)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

RESTRICT_VIOLATION = "23001"


def refused(sql: str, params: Sequence[Any] = ()) -> str:
    """Run raw SQL that must be refused as a change to an append-only table; return the error
    message, after checking its SQLSTATE. A savepoint keeps the test's transaction usable."""
    with pytest.raises(IntegrityError) as exc, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert exc.value.__cause__.sqlstate == RESTRICT_VIOLATION  # type: ignore[union-attr]
    return str(exc.value).splitlines()[0]


def assert_append_only(table: str, row_id: Any, *, partition: str, hint: str) -> None:
    """UPDATE and DELETE of the row `row_id`, through the parent and straight at its partition,
    are all refused with a message naming the table and saying what to do instead."""
    message = f"{table} is append-only: {hint}"
    for target in (table, partition):
        update = f'UPDATE "{target}" SET created_at = created_at WHERE id = %s'  # noqa: S608
        delete = f'DELETE FROM "{target}" WHERE id = %s'  # noqa: S608
        assert refused(update, [row_id]) == message
        assert refused(delete, [row_id]) == message
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}" WHERE id = %s', [row_id])  # noqa: S608
        assert cursor.fetchone()[0] == 1  # still there, unchanged
