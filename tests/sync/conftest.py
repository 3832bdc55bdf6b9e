"""Fixtures of the sync tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from okada.partitions import ddl

PARTITIONED = ("catalog_stockmovement", "orders_orderevent", "sync_change")


def _months(table: str) -> dict[str, ddl.PartitionInfo]:
    with connection.cursor() as cursor:
        return {p.name: p for p in ddl.partitions(cursor, table)}


@pytest.fixture
def partitions_restored() -> Iterator[None]:
    """The partitioned tables' months as they were before the test (a seed or a maintenance run
    in a transactional test makes and drops real partitions, which other tests count)."""
    before = {table: _months(table) for table in PARTITIONED}
    yield
    with connection.cursor() as cursor:
        for table in PARTITIONED:
            after = _months(table)
            for name in set(after) - set(before[table]):
                cursor.execute(f'DROP TABLE "{name}"')
            for name in set(before[table]) - set(after):
                month = before[table][name].month
                if month is not None:
                    ddl.ensure_month_partitions(table, month, month)
