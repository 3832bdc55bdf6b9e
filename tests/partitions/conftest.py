"""Fixtures for partition maintenance: tables of our own with short test policies, a backup
directory per test, and the real tables put back as they were after tests that change them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from catalog.models import StockMovement
from okada.partitions import ddl, registry
from okada.partitions.registry import PartitionPolicy
from orders.models import OrderEvent
from tests.catalog.factories import ProductFactory
from tests.orders.factories import OrderFactory

UTC = dt.UTC
SCRATCH = "test_readings"
REAL_TABLES = ("catalog_stockmovement", "orders_orderevent")
# What the append-only error of each real table says to do instead (their migrations).
HINTS = {
    "catalog_stockmovement": "record a correcting movement instead",
    "orders_orderevent": "add a note to the order instead",
}


def at(year: int, month: int, day: int = 1, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def partition_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {p.name for p in ddl.partitions(cursor, table)}


def partition_of(table: str, row_id: Any) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT tableoid::regclass::text FROM "{table}" WHERE id = %s', [row_id])  # noqa: S608
        found = cursor.fetchone()
    return found[0] if found else None


def insert_readings(table: str, times: list[dt.datetime]) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in times]
    with connection.cursor() as cursor:
        for i, (row_id, when) in enumerate(zip(ids, times, strict=True)):
            cursor.execute(
                f'INSERT INTO "{table}" (id, created_at, value, note) VALUES (%s, %s, %s, %s)',  # noqa: S608
                [row_id, when, i, f"reading {i}, with a line\nbreak and a tab\t"],
            )
    return ids


def ledger_row(at: dt.datetime) -> StockMovement:
    product = ProductFactory.create()
    return StockMovement.objects.create(
        product_id=product.pk, vendor_id=product.vendor_id, delta=1, kind="restock", created_at=at
    )


def event_row(at: dt.datetime) -> OrderEvent:
    return OrderEvent.objects.create(
        order=OrderFactory.create(), kind="note", created_at=at, data={"note": "x"}
    )


def standalone_tables(prefix: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND relname LIKE %s",
            [prefix + "%"],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture(autouse=True)
def _only_the_tables_these_tests_know() -> Iterator[None]:
    """Policies of other apps' tables (the sync change feed, tested in tests/sync) are left out
    here: these tests count every partition a run makes, detaches and drops."""
    others = {table: p for table, p in registry.declared().items() if table not in REAL_TABLES}
    for table in others:
        registry.unregister(table)
    yield
    for policy in others.values():
        registry.register(policy)


@pytest.fixture
def real_partitions_restored() -> Iterator[None]:
    """The real tables' partitions as they were before the test (transactional tests keep DDL)."""
    before = {table: partition_names(table) for table in REAL_TABLES}
    yield
    with connection.cursor() as cursor:
        for table in REAL_TABLES:
            for name in partition_names(table) - before[table]:
                cursor.execute(f'DROP TABLE "{name}"')


@pytest.fixture
def scratch_table(real_partitions_restored: None) -> Iterator[Callable[..., str]]:
    """`make(with_default=True, **policy)`: a partitioned table `test_readings` (no month partition
    yet) registered with a short test policy. Dropped, with whatever it left, afterwards; the
    months a run made on the real tables (for the test's `now`) are dropped too."""

    def make(*, with_default: bool = True, **policy: Any) -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {SCRATCH} (id uuid NOT NULL, created_at timestamptz NOT NULL, "
                "value integer NOT NULL CHECK (value >= 0), note text NOT NULL DEFAULT '')"
            )
            cursor.execute(f"CREATE INDEX {SCRATCH}_value ON {SCRATCH} (value, created_at)")
            ddl.make_partitioned(cursor, SCRATCH, with_default=with_default)
        registry.register(PartitionPolicy(table=SCRATCH, label="Readings (test)", **policy))
        return SCRATCH

    yield make
    registry.unregister(SCRATCH)
    with connection.cursor() as cursor:
        for name in standalone_tables(SCRATCH):
            cursor.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH} CASCADE")


@pytest.fixture
def scratch_table_atomic() -> str:
    """The scratch table inside the test's transaction (rolled back with it), no policy."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {SCRATCH} (id uuid NOT NULL, created_at timestamptz NOT NULL, "
            "value integer NOT NULL, note text NOT NULL DEFAULT '')"
        )
        ddl.make_partitioned(cursor, SCRATCH)
    return SCRATCH


@pytest.fixture
def backup_dir(settings: Any, tmp_path: Path) -> Path:
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    return settings.OKADA_BACKUP_DIR


@pytest.fixture(autouse=True)
def _quick_locks(settings: Any) -> None:
    """Tests that wait for locks say so; the others give up at once rather than back off."""
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = 5000
    settings.OKADA_PARTITION_LOCK_RETRIES = 1
