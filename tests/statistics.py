"""Thousands of rows for a test of the planner's pick, made so that they leave nothing behind.

Such a test loads thousands of rows and ANALYZEs them. In the test's transaction, the rollback
takes the rows away but not what they left: their pages stay in the table's file (dead, until a
VACUUM) and ANALYZE writes the table's size (pg_class.relpages and reltuples) in place, outside
the transaction. Every later test on the database was then planned for a big table: the orders
tests left orders_order at 1000+ pages, and tests/core/api/test_schema.py's fingerprint of the
data tables (a UNION ALL read in plan order) came back from a Parallel Append in another order,
a 400 seen "changing" orders_order and sync_change. Committed instead (a transactional test),
the rows are taken away by the flush after the test, which truncates the table: a new empty
file, and its statistics reset with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def bulk_analyzed(table: str, insert: str, params: Sequence[Any]) -> None:
    """Run `insert` (thousands of rows for `table`) and ANALYZE `table`, committed: for tests
    marked `django_db(transaction=True)` only (see the module's docstring)."""
    assert connection.get_autocommit(), "bulk rows in the test's transaction would outlive its rollback"
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
        cursor.execute(f"ANALYZE {table}")
