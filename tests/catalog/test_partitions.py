"""Monthly partitions of the append-only tables (stock ledger, order events): a row for a month
without a partition lands in DEFAULT, and creating the month's partition moves it there."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection

from catalog.models import StockMovement
from okada.core.partitions import ensure_month_partitions, partition_name
from orders.models import OrderEvent
from tests.catalog.factories import ProductFactory
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
FAR_MONTH = dt.date(2040, 3, 1)  # far from the months the migrations create around today


def ledger_row(at: dt.datetime) -> StockMovement:
    product = ProductFactory.create()
    return StockMovement.objects.create(
        product_id=product.pk, vendor_id=product.vendor_id, delta=1, kind="restock", created_at=at
    )


def event_row(at: dt.datetime) -> OrderEvent:
    return OrderEvent.objects.create(
        order=OrderFactory.create(), kind="note", created_at=at, data={"note": "x"}
    )


TABLES = [("catalog_stockmovement", ledger_row), ("orders_orderevent", event_row)]


def partition_of(table: str, row_id: uuid.UUID) -> str | None:
    with connection.cursor() as cur:
        cur.execute(f'SELECT tableoid::regclass::text FROM "{table}" WHERE id = %s', [row_id])  # noqa: S608
        found = cur.fetchone()
    return found[0] if found else None


def partitions(table: str) -> set[str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [table],
        )
        return {row[0] for row in cur.fetchall()}


@pytest.mark.parametrize(("table", "make_row"), TABLES)
def test_a_row_for_a_month_without_partition_lands_in_default_and_moves_when_the_month_is_created(
    table: str, make_row: Any
):
    name = partition_name(table, FAR_MONTH)
    assert name not in partitions(table)
    inside = make_row(dt.datetime(2040, 3, 31, 23, 59, 59, tzinfo=UTC))
    first = make_row(dt.datetime(2040, 3, 1, 0, 0, tzinfo=UTC))
    next_month = make_row(dt.datetime(2040, 4, 1, 0, 0, tzinfo=UTC))
    for row in (inside, first, next_month):
        assert partition_of(table, row.pk) == f"{table}_default"

    assert ensure_month_partitions(table, FAR_MONTH, dt.date(2040, 3, 31)) == [name]

    assert name in partitions(table)
    assert partition_of(table, inside.pk) == name
    assert partition_of(table, first.pk) == name
    assert partition_of(table, next_month.pk) == f"{table}_default"  # April has no partition yet
    # Nothing lost or duplicated on the way.
    model = type(inside)
    assert model.objects.filter(pk__in=[inside.pk, first.pk, next_month.pk]).count() == 3


@pytest.mark.parametrize(("table", "make_row"), TABLES)
def test_new_rows_for_a_created_month_go_straight_into_its_partition(table: str, make_row: Any):
    ensure_month_partitions(table, FAR_MONTH, FAR_MONTH)
    row = make_row(dt.datetime(2040, 3, 10, 12, 0, tzinfo=UTC))
    assert partition_of(table, row.pk) == partition_name(table, FAR_MONTH)


def test_ensure_month_partitions_covers_every_month_of_the_range_across_a_year_end():
    table = "catalog_stockmovement"
    created = ensure_month_partitions(table, dt.date(2040, 11, 20), dt.date(2041, 2, 3))
    assert created == [
        "catalog_stockmovement_p204011",
        "catalog_stockmovement_p204012",
        "catalog_stockmovement_p204101",
        "catalog_stockmovement_p204102",
    ]
    assert set(created) <= partitions(table)


def test_ensure_month_partitions_is_idempotent():
    table = "orders_orderevent"
    assert ensure_month_partitions(table, FAR_MONTH, FAR_MONTH) == [partition_name(table, FAR_MONTH)]
    before = partitions(table)
    assert ensure_month_partitions(table, FAR_MONTH, FAR_MONTH) == []
    assert partitions(table) == before


def test_the_current_month_already_has_a_partition_so_service_writes_skip_default():
    product = ProductFactory(initial_stock=3)
    movement = StockMovement.objects.get(product_id=product.pk)
    month = movement.created_at.date().replace(day=1)
    assert partition_of("catalog_stockmovement", movement.pk) == partition_name(
        "catalog_stockmovement", month
    )
