"""Monthly partitions of the append-only tables (stock ledger, order events): a row for a month
without a partition lands in DEFAULT, creating the month's partition moves it there, bounds are
exact UTC months, and a one-month query reads one partition."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection

from catalog.models import StockMovement
from okada.partitions import ddl
from okada.partitions.ddl import APPEND_ONLY_TRIGGER, ensure_month_partitions, partition_name
from orders.models import OrderEvent
from tests.append_only import assert_append_only
from tests.catalog.factories import ProductFactory
from tests.partitions.conftest import (
    HINTS,
    at,
    event_row,
    insert_readings,
    ledger_row,
    partition_names,
    partition_of,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
FAR_MONTH = dt.date(2040, 3, 1)  # far from the months the migrations create around today


TABLES = [("catalog_stockmovement", ledger_row), ("orders_orderevent", event_row)]


def partitions(table: str) -> set[str]:
    return partition_names(table)


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


def test_month_bounds_are_utc_midnight_whatever_the_session_time_zone():
    table = "orders_orderevent"
    with connection.cursor() as cur:
        cur.execute("SET LOCAL TimeZone = 'Africa/Douala'")
        ddl.create_month_partition(cur, table, FAR_MONTH)
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        found = {p.name: p for p in ddl.partitions(cur, table)}[partition_name(table, FAR_MONTH)]
    assert (found.starts_at, found.ends_at) == (at(2040, 3), at(2040, 4))
    assert found.month == FAR_MONTH
    # The last second of March (UTC) is March's, the first of April is not.
    assert partition_of(table, event_row(at(2040, 3, 31, 23)).pk) == partition_name(table, FAR_MONTH)


def test_every_partition_made_by_the_migrations_has_exact_utc_month_bounds():
    with connection.cursor() as cur:
        for table in ("catalog_stockmovement", "orders_orderevent"):
            parts = ddl.partitions(cur, table)
            assert [p for p in parts if not p.is_default and p.month is None] == []
            assert len([p for p in parts if p.month is not None]) >= 5  # last month to 3 ahead


def test_repair_remakes_partitions_whose_bounds_are_not_utc_months_and_keeps_every_row(scratch_table_atomic):
    table = scratch_table_atomic
    with connection.cursor() as cur:
        # As the old code did in a session whose TimeZone was Africa/Douala (UTC+1).
        cur.execute("SET LOCAL TimeZone = 'Africa/Douala'")
        for start, end in (("2030-01-01", "2030-02-01"), ("2030-02-01", "2030-03-01")):
            name = f"{table}_p{start[:4]}{start[5:7]}"
            cur.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{start}') TO ('{end}')")
        cur.execute("SET LOCAL TimeZone = 'UTC'")
    # 2030-01-31 23:30 UTC is February 1st in Douala: it sat in the "February" partition.
    times = [
        at(2029, 12, 31, 23),
        at(2030, 1, 15),
        at(2030, 1, 31, 23),
        at(2030, 2, 28, 22),
        at(2030, 3, 1, 0),
    ]
    ids = insert_readings(table, times)
    assert partition_of(table, ids[2]) == f"{table}_p203002"

    with connection.cursor() as cur:
        repaired = ddl.repair_month_bounds(cur, table)
        parts = [p for p in ddl.partitions(cur, table) if not p.is_default]

    assert sorted(repaired) == [f"{table}_p203001", f"{table}_p203002"]
    assert [(p.name, p.month) for p in parts] == [
        (f"{table}_p202912", dt.date(2029, 12, 1)),
        (f"{table}_p203001", dt.date(2030, 1, 1)),
        (f"{table}_p203002", dt.date(2030, 2, 1)),
    ]
    assert [partition_of(table, i) for i in ids] == [
        f"{table}_p202912",
        f"{table}_p203001",
        f"{table}_p203001",
        f"{table}_p203002",
        f"{table}_default",
    ]
    with connection.cursor() as cur:
        assert ddl.repair_month_bounds(cur, table) == []  # a no-op once right


@pytest.mark.parametrize(("table", "make_row"), TABLES)
def test_a_one_month_query_plan_reads_only_that_months_partition(table: str, make_row: Any):
    ensure_month_partitions(table, dt.date(2040, 1, 1), dt.date(2040, 6, 1))
    make_row(at(2040, 3, 10))
    model = StockMovement if table == "catalog_stockmovement" else OrderEvent
    month = model.objects.filter(created_at__gte=at(2040, 3), created_at__lt=at(2040, 4))
    assert month.count() == 1
    sql, params = month.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cur.fetchone()[0]
    assert relations(plan[0]["Plan"]) == {partition_name(table, FAR_MONTH)}


def relations(node: dict[str, Any]) -> set[str]:
    found = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= relations(child)
    return found


@pytest.mark.parametrize(("table", "make_row"), TABLES)
def test_rows_moved_out_of_default_into_a_new_month_stay_append_only_there_and_in_default(
    table: str, make_row: Any
):
    month = partition_name(table, FAR_MONTH)
    moved = make_row(dt.datetime(2040, 3, 9, tzinfo=UTC))
    stays = make_row(dt.datetime(2040, 4, 9, tzinfo=UTC))

    # The move deletes from DEFAULT: the guard is lifted for it only, in its transaction.
    assert ensure_month_partitions(table, FAR_MONTH, FAR_MONTH) == [month]

    assert partition_of(table, moved.pk) == month
    assert_append_only(table, moved.pk, partition=month, hint=HINTS[table])
    assert_append_only(table, stays.pk, partition=f"{table}_default", hint=HINTS[table])
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tgrelid::regclass::text, tgenabled FROM pg_trigger WHERE tgname = %s "
            "AND tgrelid = ANY(%s::regclass[])",
            [APPEND_ONLY_TRIGGER, [table, month, f"{table}_default"]],
        )
        assert dict(cur.fetchall()) == {table: "O", month: "O", f"{table}_default": "O"}


@pytest.mark.parametrize("change", [None, "ADD COLUMN unit text", "ALTER COLUMN note DROP NOT NULL"])
def test_a_table_detached_to_be_retired_is_attached_back_only_while_it_fits_the_parent(
    change, scratch_table_atomic
):
    table = scratch_table_atomic
    month = dt.date(2030, 1, 1)
    name = partition_name(table, month)
    with connection.cursor() as cur:
        ddl.create_month_partition(cur, table, month)
    ids = insert_readings(table, [at(2030, 1, 3)])
    with connection.cursor() as cur:
        ddl.detach_partition(cur, table, name, concurrently=False)
        ddl.mark_retiring(cur, name)
        if change:  # the parent's schema changes while the month is detached
            cur.execute(f"ALTER TABLE {table} {change}")
        assert ddl.fits_parent(cur, table, name) is (change is None)
        if change:
            with pytest.raises(ddl.PartitionError, match="exists but is not"):
                ddl.create_month_partition(cur, table, month, reattach=True)
        else:
            assert ddl.create_month_partition(cur, table, month, reattach=True) == 0
        assert ddl.is_marked_retiring(cur, name) is (change is not None)
        assert ddl.count_rows(cur, name) == 1
    assert partition_of(table, ids[0]) == (None if change else name)
