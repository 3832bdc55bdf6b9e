"""Index and comment changes on big tables never block writers: indexes dropped and built
CONCURRENTLY, comments changed by COMMENT alone; reversibly."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, migrations, models, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from okada.core.operations import comment_only
from okada.partitions.ddl import create_month_partition, partition_name, utc_month_of
from tests.catalog.factories import ProductFactory
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cur.fetchall())


def test_drop_field_index_drops_the_fields_own_index_and_migrating_back_builds_it_again():
    before = "0004_labels"
    try:
        call_command("migrate", "testapp", before, verbosity=0)
        old = indexes("testapp_shelf")
        full = [name for name, d in old.items() if d.endswith("(deleted_at)")]
        assert len(full) == 1, old  # Django's own index of the field, on every row

        call_command("migrate", "testapp", verbosity=0)
        new = indexes("testapp_shelf")
        assert full[0] not in new
        assert new["testapp_shelf_deleted"].endswith("WHERE (deleted_at IS NOT NULL)")
        assert "USING brin (history_date)" in indexes("testapp_historicalshelf")["testapp_hshelf_date"]

        call_command("migrate", "testapp", before, verbosity=0)
        assert indexes("testapp_shelf") == old  # the same index, under the same name
    finally:
        call_command("migrate", "testapp", verbosity=0)


def column_comment(table: str, column: str) -> str | None:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT col_description(%s::regclass, attnum) FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attname = %s",
            [table, table, column],
        )
        return cur.fetchone()[0]


def test_comments_only_writes_comments_and_nothing_else_and_migrating_back_removes_them():
    before = "0005_index_budget"
    try:
        call_command("migrate", "testapp", before, verbosity=0)
        assert column_comment("testapp_historicalshelf", "history_user_id") is None
        with CaptureQueriesContext(connection) as queries:
            call_command("migrate", "testapp", "0006_data_dictionary", verbosity=0)
        ddl = [
            sql
            for sql in (q["sql"].lstrip() for q in queries.captured_queries)
            if sql.upper().startswith(("ALTER", "COMMENT", "CREATE", "DROP", "LOCK"))
        ]
        # COMMENTs alone, 2 tables and 6 columns of each: no ALTER COLUMN ... TYPE (a lock held to
        # the end of the migration, a foreign key validated again by reading the whole table)
        assert len(ddl) == 14 and all(sql.startswith("COMMENT ON ") for sql in ddl), ddl
        assert (column_comment("testapp_historicalshelf", "history_user_id") or "").startswith(
            "User who made"
        )
        assert (
            column_comment("testapp_historicalshelf", "id")
            == "Id of the testapp_shelf row this is a version of."
        )

        call_command("migrate", "testapp", before, verbosity=0)
        assert column_comment("testapp_historicalshelf", "history_user_id") is None
        # A comment the model had before comes back, not NULL.
        assert column_comment("testapp_historicalshelf", "id") == "Primary key (UUID v7, time-ordered)."
    finally:
        call_command("migrate", "testapp", verbosity=0)


def test_comment_only_refuses_an_operation_that_changes_more_than_the_comment():
    operation = comment_only(
        "testapp",
        migrations.AlterField(
            model_name="shelf", name="code", field=models.CharField(max_length=40, db_comment="Wider.")
        ),
    )
    state = MigrationLoader(connection).project_state(("testapp", "0006_data_dictionary"))
    (run,) = operation.database_operations
    assert isinstance(run, migrations.RunPython)
    with connection.schema_editor() as editor, pytest.raises(ValueError, match="more than the comment"):
        run.code(state.apps, editor)
    assert column_comment("testapp_shelf", "code") == "Shelf code, unique among live shelves."


def index_valid(name: str) -> bool | None:
    with connection.cursor() as cur:
        cur.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        row = cur.fetchone()
        return row[0] if row else None


def test_order_number_migration_runs_again_after_it_stopped_midway():
    """0027 is not atomic: stopped after its first step (a lock not granted in time), a rerun goes
    on from there: the attached constraint kept, the partial index dropped, and an index an
    interrupted CONCURRENTLY build left INVALID built again."""
    OrderFactory.create_batch(2)  # two orders of one status: a unique index on status fails
    # As a deploy stopped in 0027 left it: the migrations after 0028 not run yet (0029 adds a
    # column, which does not run twice as 0028's CREATE OR REPLACE does).
    call_command("migrate", "orders", "0028", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("DROP INDEX orders_order_number_sort")
        cur.execute(
            "CREATE UNIQUE INDEX orders_order_number_live_uniq ON orders_order (number)"
            " WHERE deleted_at IS NULL"
        )
        with pytest.raises(IntegrityError):  # leaves an INVALID index under the sort index's name
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_order_number_sort ON orders_order (status)")
    assert index_valid("orders_order_number_sort") is False
    # 0027 and the migrations after it (they depend on it) as if never applied; they run again.
    recorder = MigrationRecorder(connection)
    for name in recorder.migration_qs.filter(app="orders", name__gte="0027").values_list("name", flat=True):
        recorder.record_unapplied("orders", name)

    call_command("migrate", verbosity=0)  # every app: those that depend on orders too

    assert (
        MigrationRecorder(connection)
        .migration_qs.filter(app="orders", name="0027_order_number_unique_forever")
        .exists()
    )
    found = indexes("orders_order")
    assert "orders_order_number_live_uniq" not in found
    assert found["orders_order_number_uniq"].startswith("CREATE UNIQUE INDEX")
    assert index_valid("orders_order_number_sort") is True
    assert found["orders_order_number_sort"].endswith("(length((number)::text), number)")


LEDGER_INDEXES = ("catalog_stockmove_manual_kind", "catalog_stockmove_manual_ref")


def partition_indexes(table: str, index: str) -> dict[str, tuple[str, int] | None]:
    """Each partition of `table` (DEFAULT included): its index attached to `index` (name, oid)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT part.relname, attached.relname, attached.oid FROM pg_inherits p "
            "JOIN pg_class part ON part.oid = p.inhrelid "
            "LEFT JOIN (pg_inherits ip JOIN pg_class attached ON attached.oid = ip.inhrelid "
            "           JOIN pg_index ai ON ai.indexrelid = ip.inhrelid) "
            "  ON ip.inhparent = to_regclass(%s) AND ai.indrelid = part.oid "
            "WHERE p.inhparent = to_regclass(%s)",
            [index, table],
        )
        return {row[0]: (row[1], row[2]) if row[1] else None for row in cur.fetchall()}


def index_oid(name: str) -> int | None:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)::oid", [name])
        return cur.fetchone()[0]


def test_a_partitioned_index_is_built_partition_by_partition_runs_again_after_an_interruption_and_goes_back():
    """catalog 0018 (add_partitioned_index): the parent's index ends VALID with one index
    attached per partition, DEFAULT included; stopped midway (the parent's index made, one
    partition's built, another's build failed and left INVALID), a rerun keeps what was done and
    builds the rest; a month made later gets the index; migrating back removes them all."""
    table = "catalog_stockmovement"
    ProductFactory.create_batch(2, initial_stock=5)  # two movements of this month: a UNIQUE build fails
    month = partition_name(table, utc_month_of(timezone.now()))
    default = f"{table}_default"
    failed = f"{LEDGER_INDEXES[0]}_{month[len(table) + 1 :]}"  # this month's, as the operation names it
    try:
        for name in LEDGER_INDEXES:
            assert index_valid(name) is True
            attached = partition_indexes(table, name)
            assert default in attached and month in attached
            assert all(attached.values()), attached

        parent_sql = indexes(table)[LEDGER_INDEXES[0]]  # CREATE INDEX ... ON ONLY ...
        default_sql = indexes(default)[f"{LEDGER_INDEXES[0]}_default"]
        call_command("migrate", "catalog", "0017", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("SELECT relname FROM pg_class WHERE relname LIKE 'catalog\\_stockmove\\_manual\\_%'")
            assert cur.fetchall() == []

            # As a deploy stopped midway left it: the parent's index, the DEFAULT partition's
            # index built (not attached yet), this month's build failed (INVALID).
            cur.execute(parent_sql)
            cur.execute(default_sql)
            with pytest.raises(IntegrityError):
                cur.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {failed} ON {month} (kind)")
        assert index_valid(failed) is False
        assert index_valid(LEDGER_INDEXES[0]) is False
        kept = index_oid(f"{LEDGER_INDEXES[0]}_default")

        call_command("migrate", verbosity=0)  # every app: orders 0035 needs catalog 0019

        for name in LEDGER_INDEXES:
            assert index_valid(name) is True
            attached = partition_indexes(table, name)
            assert all(attached.values()), attached
            assert all(found and index_valid(found[0]) for found in attached.values())
        assert partition_indexes(table, LEDGER_INDEXES[0])[default] == (f"{LEDGER_INDEXES[0]}_default", kept)
        assert indexes(month)[failed].startswith(
            f"CREATE INDEX {failed} ON public.{month} USING btree (kind, id)"
        )

        # A month partition maintenance makes later (CREATE TABLE LIKE, then ATTACH) gets them.
        with transaction.atomic(), connection.cursor() as cur:
            create_month_partition(cur, table, dt.date(2031, 1, 1))
        for name in LEDGER_INDEXES:
            assert partition_indexes(table, name)[f"{table}_p203101"] is not None
            assert index_valid(name) is True
    finally:
        with connection.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}_p203101")
        call_command("migrate", verbosity=0)  # every app: orders 0035 needs catalog 0019
