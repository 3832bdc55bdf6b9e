"""Partition maintenance against the real PostgreSQL: premake, rescue, retention with archives,
interrupted detaches, lock timeouts. Each run commits step by step, so the tests are transactional."""

from __future__ import annotations

import datetime as dt
import fcntl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.utils import translation

from okada.core.db import libpq_env
from okada.core.texts import english, shown
from okada.partitions import archive, ddl
from okada.partitions.models import PartitionAction
from okada.partitions.services import Step, maintenance_plan, maintenance_run
from orders.models import OrderEvent
from tests.append_only import assert_append_only
from tests.filesystems import small_tmpfs
from tests.orders.factories import OrderFactory
from tests.partitions.conftest import (
    HINTS,
    at,
    event_row,
    insert_readings,
    ledger_row,
    partition_names,
    partition_of,
    standalone_tables,
)

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds: a deadline, never a sleep
Kind = PartitionAction.Kind
Outcome = PartitionAction.Outcome


def actions(table: str) -> list[tuple[str, str, str]]:
    return list(
        PartitionAction.objects.filter(table=table)
        .order_by("started_at", "created_at")
        .values_list("kind", "partition", "outcome")
    )


def test_premake_creates_exactly_the_missing_months_and_a_second_run_changes_nothing(
    real_partitions_restored,
):
    ddl.ensure_month_partitions("orders_orderevent", at(2045, 7).date(), at(2045, 7).date())  # one exists
    before = {t: partition_names(t) for t in ("catalog_stockmovement", "orders_orderevent")}

    summary = maintenance_run(now=at(2045, 6, 15, 13))

    made = {t: partition_names(t) - before[t] for t in before}
    assert made == {
        "catalog_stockmovement": {f"catalog_stockmovement_p2045{m:02d}" for m in (6, 7, 8, 9)},
        "orders_orderevent": {f"orders_orderevent_p2045{m:02d}" for m in (6, 8, 9)},
    }
    assert summary["failed"] == [] and summary["deferred"] == []
    logged = PartitionAction.objects.filter(kind=Kind.CREATED, outcome=Outcome.SUCCESS)
    assert {a.partition for a in logged} == made["catalog_stockmovement"] | made["orders_orderevent"]
    with connection.cursor() as cursor:
        for p in ddl.partitions(cursor, "orders_orderevent"):
            if p.name == "orders_orderevent_p204508":  # exact UTC month bounds
                assert (p.starts_at, p.ends_at) == (at(2045, 8), at(2045, 9))
    august = logged.get(partition="orders_orderevent_p204508")
    assert (august.starts_at, august.ends_at, august.rows) == (at(2045, 8), at(2045, 9), 0)

    assert maintenance_plan(now=at(2045, 6, 15, 14)).is_empty
    again = maintenance_run(now=at(2045, 6, 15, 14))
    assert again["done"] == [] and again["steps"] == 0
    assert PartitionAction.objects.count() == logged.count()
    assert {t: partition_names(t) for t in before} == {t: before[t] | made[t] for t in before}


def test_an_insert_beyond_the_horizon_succeeds_in_default_and_the_next_run_moves_it_into_its_month(
    real_partitions_restored,
):
    now = at(2046, 1, 10)
    maintenance_run(now=now)  # horizon: 2046-04
    order = OrderFactory()
    far = OrderEvent.objects.create(order=order, kind="note", created_at=at(2047, 8, 3, 9), data={"n": 1})
    assert partition_of("orders_orderevent", far.pk) == "orders_orderevent_default"

    plan = maintenance_plan(now=now)
    assert [(s.action, s.partition, s.rows) for s in plan.steps] == [
        (Step.RESCUE, "orders_orderevent_p204708", 1)
    ]
    summary = maintenance_run(now=now)

    assert partition_of("orders_orderevent", far.pk) == "orders_orderevent_p204708"
    rescued = PartitionAction.objects.get(kind=Kind.RESCUED)
    assert (rescued.partition, rescued.rows, rescued.outcome) == (
        "orders_orderevent_p204708",
        1,
        Outcome.SUCCESS,
    )
    # Only that month: the months between the horizon and it are left to premake and DEFAULT.
    assert "orders_orderevent_p204705" not in partition_names("orders_orderevent")
    assert summary["done"] == ["rescued orders_orderevent_p204708"]
    assert OrderEvent.objects.filter(pk=far.pk).exists()


def test_rows_dated_in_a_past_month_without_partition_are_rescued_into_it(scratch_table):
    table = scratch_table(premake_months=0)
    ids = insert_readings(table, [at(2030, 2, 1), at(2030, 2, 28, 23), at(2030, 3, 5)])
    assert {partition_of(table, i) for i in ids} == {f"{table}_default"}

    maintenance_run(now=at(2030, 3, 20))

    assert [partition_of(table, i) for i in ids] == [
        f"{table}_p203002",
        f"{table}_p203002",
        f"{table}_p203003",
    ]
    assert sorted((k, p) for k, p, _ in actions(table)) == [
        (Kind.RESCUED, f"{table}_p203002"),
        (Kind.RESCUED, f"{table}_p203003"),
    ]


def test_retention_archives_old_months_then_drops_them_and_the_archive_restores_the_same_rows(
    settings, backup_dir
):
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "2"}
    ddl.ensure_month_partitions("orders_orderevent", at(2001, 3).date(), at(2001, 3).date())
    order = OrderFactory()
    old = [
        OrderEvent.objects.create(
            order=order, kind="note", created_at=at(2001, 3, d, 8), data={"note": f"é {d}"}
        )
        for d in (1, 15, 31)
    ]
    recent_partitions = partition_names("orders_orderevent") - {"orders_orderevent_p200103"}

    plan = maintenance_plan()
    assert [(s.action, s.partition) for s in plan.steps] == [(Step.RETIRE, "orders_orderevent_p200103")]
    summary = maintenance_run()

    assert summary["failed"] == []
    assert partition_names("orders_orderevent") == recent_partitions  # only the old month went
    assert not OrderEvent.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert "orders_orderevent_p200103" not in standalone_tables("orders_orderevent_p2001")
    assert [k for k, _, o in actions("orders_orderevent") if o == Outcome.SUCCESS] == [
        Kind.DETACHED,
        Kind.ARCHIVED,
        Kind.DROPPED,
    ]
    archived = PartitionAction.objects.get(kind=Kind.ARCHIVED)
    path = Path(archived.archive_path)
    assert path.parent == backup_dir / "partitions" / "orders_orderevent"
    assert archived.rows == 3
    assert archived.archive_sha256 == archive.sha256_of(path)
    assert archived.archive_bytes == path.stat().st_size
    assert path.with_name(path.name + ".sha256").read_text() == f"{archived.archive_sha256}  {path.name}\n"

    with scratch_database() as env:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={env['PGDATABASE']}", str(path)],
            env=env,
            check=True,
        )
        with psycopg.connect(
            host=env["PGHOST"],
            port=env["PGPORT"],
            user=env.get("PGUSER"),
            password=env.get("PGPASSWORD"),
            dbname=env["PGDATABASE"],
        ) as conn:
            restored = conn.execute(
                "SELECT id, created_at, order_id, kind, data FROM orders_orderevent_p200103 "
                "ORDER BY created_at"
            ).fetchall()
    assert restored == [(e.pk, e.created_at, order.pk, "note", e.data) for e in old]


@contextmanager
def scratch_database() -> Iterator[dict[str, str]]:
    """An empty database on the same server; yields the libpq environment that reaches it."""
    name = f"okada_test_restore_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**libpq_env(), "PGDATABASE": name}
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("table", "make_row"), [("catalog_stockmovement", ledger_row), ("orders_orderevent", event_row)]
)
def test_months_maintenance_makes_and_rescues_into_are_append_only(table, make_row, real_partitions_restored):
    now = at(2046, 1, 10)
    maintenance_run(now=now)  # premakes up to 2046-04
    premade = make_row(at(2046, 3, 5))
    far = make_row(at(2047, 8, 3))  # beyond the horizon: DEFAULT, then rescued into its month
    summary = maintenance_run(now=now)
    assert summary["done"] == [f"rescued {table}_p204708"]

    for row, partition in ((premade, f"{table}_p204603"), (far, f"{table}_p204708")):
        assert partition_of(table, row.pk) == partition
        assert_append_only(table, row.pk, partition=partition, hint=HINTS[table])


def test_the_stock_ledger_keeps_every_month_whatever_the_age(real_partitions_restored):
    ddl.ensure_month_partitions("catalog_stockmovement", at(2001, 3).date(), at(2001, 3).date())
    assert not [s for s in maintenance_plan().steps if s.action == Step.RETIRE]


def test_a_retirement_interrupted_after_the_detach_is_finished_by_the_next_run(
    scratch_table, settings, tmp_path
):
    table = scratch_table(premake_months=0, retention_months=1)
    ids = insert_readings(table, [at(2030, 1, 3), at(2030, 1, 20)])
    archives_fail(settings, tmp_path)

    first = maintenance_run(now=at(2030, 4, 2))

    name = f"{table}_p203001"
    assert [(k, o) for k, p, o in actions(table) if p == name] == [
        (Kind.RESCUED, Outcome.SUCCESS),
        (Kind.DETACHED, Outcome.SUCCESS),
        (Kind.ARCHIVED, Outcome.FAILED),
    ]
    assert len(first["failed"]) == 1
    assert name not in partition_names(table) and name in standalone_tables(name)  # detached, kept
    plan = maintenance_plan(now=at(2030, 4, 2, 1))
    assert [(s.action, s.partition, s.detached) for s in plan.steps] == [(Step.RETIRE, name, True)]

    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    second = maintenance_run(now=at(2030, 4, 2, 1))

    assert second["failed"] == []
    assert name not in standalone_tables(name)
    archived = PartitionAction.objects.get(partition=name, kind=Kind.ARCHIVED, outcome=Outcome.SUCCESS)
    assert archived.rows == len(ids)
    assert archive.archived_rows(Path(archived.archive_path), name=name, schema="public") == len(ids)
    assert PartitionAction.objects.filter(partition=name, kind=Kind.DROPPED, outcome=Outcome.SUCCESS).exists()


@contextmanager
def snapshot_held(table: str) -> Iterator[None]:
    """Another session reads `table` in REPEATABLE READ and keeps its snapshot (and its ACCESS
    SHARE locks) open until the block ends."""
    ready, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
                ready.set()
                assert release.wait(WAIT)
        except BaseException as exc:
            errors.append(exc)
            ready.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert ready.wait(WAIT)
    try:
        yield
    finally:
        release.set()
        thread.join(WAIT)
    assert not errors


def test_an_interrupted_concurrent_detach_is_finalised_by_the_next_run(scratch_table, settings, backup_dir):
    # Without a DEFAULT partition PostgreSQL allows DETACH ... CONCURRENTLY. It waits for every
    # older snapshot; a reader keeps one open past lock_timeout, so the detach stops half way.
    table = scratch_table(with_default=False, premake_months=0, retention_months=1)
    ddl.ensure_month_partitions(table, at(2030, 1).date(), at(2030, 4).date())
    ids = insert_readings(table, [at(2030, 1, 9), at(2030, 1, 10)])
    name = f"{table}_p203001"
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = 300

    with snapshot_held(table):
        first = maintenance_run(now=at(2030, 3, 2))

    with connection.cursor() as cursor:
        pending = {p.name for p in ddl.partitions(cursor, table) if p.detach_pending}
    assert pending == {name}
    assert any("no DEFAULT partition" in w for w in first["warnings"])
    assert [(k, o) for k, p, o in actions(table) if p == name] == [(Kind.DETACHED, Outcome.DEFERRED)]
    assert len(first["deferred"]) == 1
    assert [(s.action, s.partition) for s in maintenance_plan(now=at(2030, 3, 2, 1)).steps] == [
        (Step.FINALIZE, name),
        (Step.RETIRE, name),
    ]

    second = maintenance_run(now=at(2030, 3, 2, 1))

    assert second["failed"] == [] and second["deferred"] == []
    assert name not in partition_names(table) and name not in standalone_tables(name)
    assert [(k, o) for k, p, o in actions(table) if p == name][1:] == [
        (Kind.FINALIZED, Outcome.SUCCESS),
        (Kind.ARCHIVED, Outcome.SUCCESS),
        (Kind.DROPPED, Outcome.SUCCESS),
    ]
    assert PartitionAction.objects.get(partition=name, kind=Kind.ARCHIVED).rows == len(ids)


def test_a_detach_that_waits_past_lock_timeout_is_deferred_and_done_by_a_later_run(
    scratch_table, settings, backup_dir
):
    table = scratch_table(premake_months=0, retention_months=1)
    ddl.ensure_month_partitions(table, at(2030, 1).date(), at(2030, 4).date())
    insert_readings(table, [at(2030, 1, 9)])
    name = f"{table}_p203001"
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = 100
    settings.OKADA_PARTITION_LOCK_RETRIES = 2

    with snapshot_held(table):  # its ACCESS SHARE lock on the table conflicts with DETACH
        first = maintenance_run(now=at(2030, 3, 2))

    deferred = PartitionAction.objects.get(partition=name)
    assert (deferred.kind, deferred.outcome, deferred.attempts) == (Kind.DETACHED, Outcome.DEFERRED, 2)
    assert "lock" in deferred.detail
    assert first["failed"] == [] and len(first["deferred"]) == 1
    assert name in partition_names(table)  # still attached, nothing archived or dropped

    maintenance_run(now=at(2030, 3, 2, 1))
    assert name not in partition_names(table) and name not in standalone_tables(name)


def test_a_policy_without_archive_detaches_and_drops(scratch_table, backup_dir):
    table = scratch_table(premake_months=0, retention_months=1, archive=False)
    ddl.ensure_month_partitions(table, at(2030, 1).date(), at(2030, 1).date())
    insert_readings(table, [at(2030, 1, 9)])

    maintenance_run(now=at(2030, 3, 2))

    assert [k for k, p, _ in actions(table) if p == f"{table}_p203001"] == [Kind.DETACHED, Kind.DROPPED]
    assert not backup_dir.exists()


def test_rows_no_month_can_hold_stay_in_default_and_are_reported(scratch_table):
    table = scratch_table(premake_months=0)
    with connection.cursor() as cursor:
        sql = f"INSERT INTO {table} (id, created_at, value) VALUES (%s, 'infinity', 1)"  # noqa: S608
        cursor.execute(sql, [uuid.uuid4()])

    plan = maintenance_plan(now=at(2030, 1, 2))

    assert [s.action for s in plan.steps if s.table == table] == [Step.CREATE]
    assert any("1 row in DEFAULT has" in w.english() for w in plan.warnings)


def test_maintenance_refuses_to_run_inside_a_transaction():
    with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
        maintenance_run()


def test_a_partition_with_bounds_that_are_not_a_utc_month_is_reported_and_left_alone(scratch_table):
    table = scratch_table(premake_months=0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {table}_odd PARTITION OF {table} "
            "FOR VALUES FROM ('2030-01-31 23:00+00') TO ('2030-02-28 23:00+00')"
        )
    plan = maintenance_plan(now=at(2030, 2, 10))
    assert any(f"{table}_odd" in w.english() for w in plan.warnings)
    assert not any(s.partition == f"{table}_odd" for s in plan.steps)
    # February overlaps it: creating the month fails, is logged, and the run goes on.
    summary = maintenance_run(now=at(2030, 2, 10))
    failed = PartitionAction.objects.get(table=table)
    assert (failed.kind, failed.outcome) == (Kind.CREATED, Outcome.FAILED)
    assert f"{table}: {table}_odd overlaps 2030-02" in english(failed.detail) and len(summary["failed"]) == 1
    with translation.override("fr"):
        assert f"{table}\u00a0: {table}_odd chevauche 2030-02" in shown(failed.detail)


def test_a_detached_month_the_retention_now_keeps_is_attached_back_with_its_rows(
    scratch_table, settings, tmp_path
):
    # A retirement stopped after its detach (the archive failed); meanwhile the retention was
    # lengthened: the month is no longer past it. It was once left detached with a warning, never
    # dropped but out of every read of the parent: the month's rows were gone for users.
    table = scratch_table(premake_months=0, retention_months=1)
    ids = insert_readings(table, [at(2030, 1, 3), at(2030, 1, 20)])
    archives_fail(settings, tmp_path)
    maintenance_run(now=at(2030, 4, 2))
    name = f"{table}_p203001"
    assert name in standalone_tables(name)  # detached, its archive failed
    assert {partition_of(table, row_id) for row_id in ids} == {None}  # out of the parent's reads
    late = insert_readings(table, [at(2030, 1, 25)])  # lands in DEFAULT: January has no partition

    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_PARTITION_RETENTION_MONTHS = {table: "forever"}
    plan = maintenance_plan(now=at(2030, 4, 2, 1))
    assert [(s.action, s.partition) for s in plan.steps if s.partition == name] == [(Step.REATTACH, name)]
    assert plan.warnings == []
    summary = maintenance_run(now=at(2030, 4, 2, 1))

    assert summary["failed"] == [] and summary["deferred"] == []
    assert name not in standalone_tables(name)
    assert {partition_of(table, row_id) for row_id in [*ids, *late]} == {name}  # the late one moved in
    with connection.cursor() as cursor:
        assert not ddl.is_marked_retiring(cursor, name)
    reattached = PartitionAction.objects.get(partition=name, kind=Kind.REATTACHED)
    assert (reattached.outcome, reattached.rows) == (Outcome.SUCCESS, 1)
    assert not PartitionAction.objects.filter(partition=name, kind=Kind.DROPPED).exists()
    assert maintenance_plan(now=at(2030, 4, 2, 2)).steps == []  # nothing left to do


def test_a_detached_month_of_order_events_the_retention_now_keeps_is_back_in_the_timeline(
    real_partitions_restored, settings, tmp_path
):
    event = event_row(at(2045, 1, 10))
    timeline = set(event.order.events.values_list("pk", flat=True))  # its own creation's too
    assert event.pk in timeline
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "1"}
    archives_fail(settings, tmp_path)
    maintenance_run(now=at(2045, 4, 2))  # detached; the archive failed
    assert not OrderEvent.objects.filter(pk=event.pk).exists()

    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "forever"}
    maintenance_run(now=at(2045, 4, 2, 1))

    assert set(event.order.events.values_list("pk", flat=True)) == timeline
    assert standalone_tables("orders_orderevent_p") == set()  # every month detached is back


def archives_fail(settings, tmp_path) -> None:
    """A retirement's archive fails from now on (the backup directory is a file): the month it
    detached stays detached, marked, not dropped."""
    settings.OKADA_BACKUP_DIR = tmp_path / "not-a-directory"
    settings.OKADA_BACKUP_DIR.write_text("a file where the backup directory should be")


def detached_to_be_retired(table: str, settings, tmp_path) -> tuple[str, list[uuid.UUID]]:
    """January 2030's partition of `table`, detached by a retirement whose archive failed, then
    kept by a retention lengthened to forever: (its name, its rows' ids)."""
    ids = insert_readings(table, [at(2030, 1, 3), at(2030, 1, 20)])
    archives_fail(settings, tmp_path)
    maintenance_run(now=at(2030, 4, 2))
    name = f"{table}_p203001"
    assert name in standalone_tables(name)  # detached, its archive failed
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_PARTITION_RETENTION_MONTHS = {table: "forever"}
    return name, ids


def readings(name: str) -> dict[uuid.UUID, tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, value, note FROM ONLY "{name}"')  # noqa: S608
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE {t} ADD COLUMN unit text NOT NULL DEFAULT 'kWh'",
        "ALTER TABLE {t} ADD CONSTRAINT {t}_note_short CHECK (length(note) < 1000)",
        # The same CHECK, named {t}_value_check1 (the detached table holds the first name): ATTACH
        # matches the parent's constraints by name.
        "ALTER TABLE {t} DROP COLUMN value; "
        "ALTER TABLE {t} ADD COLUMN value integer NOT NULL DEFAULT 0 CHECK (value >= 0)",
    ],
    ids=["a column added", "a check added", "a check renamed"],
)
def test_a_detached_month_the_parent_no_longer_fits_is_left_detached_with_a_warning_not_failed(
    change, scratch_table, settings, tmp_path
):
    # The parent's schema changed while the month was detached: ATTACH (or moving DEFAULT's rows
    # of that month into it) fails. Trying anyway failed every hourly run; it is left as it is.
    table = scratch_table(premake_months=0, retention_months=1)
    name, ids = detached_to_be_retired(table, settings, tmp_path)
    kept = readings(name)
    with connection.cursor() as cursor:
        cursor.execute(change.format(t=table))
    late = insert_readings(table, [at(2030, 1, 25)])  # lands in DEFAULT: January has no partition

    for hour in (1, 2):  # every run: the same warning, nothing failed, nothing dropped
        plan = maintenance_plan(now=at(2030, 4, 2, hour))
        assert [s for s in plan.steps if s.partition == name] == []
        warned = [w.english() for w in plan.warnings if name in w.english()]
        assert len(warned) == 1 and f"ATTACH PARTITION {name} FOR VALUES FROM" in warned[0]
        summary = maintenance_run(now=at(2030, 4, 2, hour))
        assert summary["failed"] == [] and summary["deferred"] == []
        assert any(name in english(w) for w in summary["warnings"])

    assert name in standalone_tables(name) and readings(name) == kept and set(kept) == set(ids)
    assert partition_of(table, late[0]) == f"{table}_default"  # still read through the parent
    with connection.cursor() as cursor:
        assert ddl.is_marked_retiring(cursor, name)  # a shorter retention would retire it again
    tried = PartitionAction.objects.filter(partition=name, kind__in=[Kind.REATTACHED, Kind.DROPPED])
    assert not tried.exists()


def test_rows_moved_out_of_default_into_a_month_attached_back_go_to_their_columns_by_name(
    scratch_table, settings, tmp_path
):
    # While January was detached, `value` was dropped and added back: it now comes after `note`
    # in the parent and DEFAULT, before it in the detached table. Moved by position, DEFAULT's
    # rows would put each value in the other's column.
    table = scratch_table(premake_months=0, retention_months=1)
    name, ids = detached_to_be_retired(table, settings, tmp_path)
    kept = readings(name)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DROP COLUMN value")
        cursor.execute(
            f"ALTER TABLE {table} ADD COLUMN value integer NOT NULL DEFAULT 0, "
            f"ADD CONSTRAINT {table}_value_check CHECK (value >= 0)"  # the name the detached one has
        )
        cursor.execute(
            f"INSERT INTO {table} (id, created_at, note, value) VALUES (%s, %s, 'late', 7)",  # noqa: S608
            [late := uuid.uuid4(), at(2030, 1, 25)],
        )

    summary = maintenance_run(now=at(2030, 4, 2, 1))

    assert summary["failed"] == [] and summary["warnings"] == []
    assert {partition_of(table, row_id) for row_id in [*ids, late]} == {name}
    assert readings(name) == {**kept, late: (7, "late")}
    reattached = PartitionAction.objects.get(partition=name, kind=Kind.REATTACHED)
    assert (reattached.outcome, reattached.rows) == (Outcome.SUCCESS, 1)


def test_a_run_whose_drop_failed_after_the_archive_is_finished_without_a_second_archive(
    scratch_table, settings, tmp_path
):
    table = scratch_table(premake_months=0, retention_months=1)
    ids = insert_readings(table, [at(2030, 1, 3), at(2030, 1, 20)])
    name = f"{table}_p203001"
    directory = tmp_path / "backups" / "partitions" / table
    archives_fail(settings, tmp_path)
    maintenance_run(now=at(2030, 4, 2))  # detached, its archive failed: a detached table to retire
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = 200

    with snapshot_held(name):  # a reader of the detached table: pg_dump reads on, DROP waits
        second = maintenance_run(now=at(2030, 4, 2, 1))

    assert [english(label).split(":")[0] for label in second["deferred"]] == [f"dropped {name}"]
    assert name in standalone_tables(name)
    [written] = directory.glob("*.dump")

    third = maintenance_run(now=at(2030, 4, 2, 2))

    assert third["failed"] == [] and third["deferred"] == [] and third["done"] == [f"dropped {name}"]
    assert name not in standalone_tables(name)
    assert list(directory.glob("*.dump")) == [written]  # the month archived once, not twice
    [archived] = PartitionAction.objects.filter(partition=name, kind=Kind.ARCHIVED, outcome=Outcome.SUCCESS)
    assert (archived.archive_path, archived.rows) == (str(written), len(ids))
    assert PartitionAction.objects.filter(partition=name, kind=Kind.DROPPED, outcome=Outcome.SUCCESS).exists()


def test_a_run_removes_the_partial_archives_a_killed_run_left_of_its_month_but_not_one_being_written(
    scratch_table, backup_dir
):
    table = scratch_table(premake_months=0, retention_months=1)
    insert_readings(table, [at(2030, 1, 3)])
    name = f"{table}_p203001"
    directory = backup_dir / "partitions" / table
    directory.mkdir(parents=True)
    killed = directory / f"{name}-20300401T000000Z.dump.partial"  # each run has its own stamp
    killed.write_bytes(b"PGDMP half a dump")
    # Killed between its digest and its link: the digest names an archive that never took its name.
    killed_digest = directory / f"{name}-20300401T000000Z.dump.sha256"
    killed_digest.write_text(f"{'0' * 64}  {name}-20300401T000000Z.dump\n")
    other_month = directory / f"{table}_p202912-20300401T000000Z.dump.partial"
    other_month.write_bytes(b"PGDMP")
    writing = directory / f"{name}-20300401T003000Z.dump.partial"
    writing.write_bytes(b"PGDMP")
    writing_digest = directory / f"{name}-20300401T003000Z.dump.sha256"  # written, link to come
    writing_digest.write_text(f"{'1' * 64}  {name}-20300401T003000Z.dump\n")

    with writing.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as a run writing it holds it (another descriptor)
        summary = maintenance_run(now=at(2030, 4, 2))

    assert summary["failed"] == []
    assert not killed.exists() and not killed_digest.exists()
    assert writing.exists() and writing_digest.exists() and other_month.exists()
    archived = PartitionAction.objects.get(partition=name, kind=Kind.ARCHIVED, outcome=Outcome.SUCCESS)
    assert killed.name in archived.detail
    written = Path(archived.archive_path).name
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [written, f"{written}.sha256", writing.name, writing_digest.name, other_month.name]
    )


def test_a_month_retired_twice_in_one_run_keeps_both_archives(scratch_table, settings, tmp_path):
    # A retirement whose archive failed leaves January detached; a late row of January then lands
    # in DEFAULT. The next run retires the detached table, rescues the late row into a new
    # January partition and retires that too: two archives of one name in one run (one stamp).
    table = scratch_table(premake_months=0, retention_months=1)
    ids = insert_readings(table, [at(2030, 1, 3), at(2030, 1, 20)])
    name = f"{table}_p203001"
    archives_fail(settings, tmp_path)
    maintenance_run(now=at(2030, 4, 2))
    assert name in standalone_tables(name)
    late = insert_readings(table, [at(2030, 1, 25)])
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"

    summary = maintenance_run(now=at(2030, 4, 2, 1))

    assert summary["failed"] == []
    assert name not in standalone_tables(name) and name not in partition_names(table)
    archived = PartitionAction.objects.filter(partition=name, kind=Kind.ARCHIVED, outcome=Outcome.SUCCESS)
    assert sorted(a.rows or 0 for a in archived) == [len(late), len(ids)]
    for action in archived:  # each archive the log names is still the file it verified
        path = Path(action.archive_path)
        assert archive.sha256_of(path) == action.archive_sha256
        assert archive.archived_rows(path, name=name, schema="public") == action.rows


def test_a_step_whose_database_session_is_ended_is_logged_failed_and_the_run_goes_on(scratch_table):
    # pg_terminate_backend of the maintenance session (an operator, a server restart): the step
    # fails, is logged on a new session, the others are done, and the next run does it again.
    scratch_table(premake_months=2)
    ended: list[int] = []

    def terminate_once() -> None:
        if ended:
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            ended.append(cursor.fetchone()[0])
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [ended[0]])
        finally:
            other.close()

    summary = maintenance_run(now=at(2030, 1, 15), between_steps=terminate_once)

    [label] = summary["failed"]
    first = english(label).split(":")[0]
    assert len(summary["done"]) == summary["steps"] - 1 and first not in summary["done"]
    failed = PartitionAction.objects.get(outcome=Outcome.FAILED)
    assert f"created {failed.partition}" == first and "terminating connection" in english(failed.detail)
    assert maintenance_run(now=at(2030, 1, 15))["done"] == [first]


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: an archive fills it."""
    with small_tmpfs(tmp_path) as mountpoint:
        yield mountpoint


def test_an_archive_that_fills_the_disk_drops_nothing_and_the_next_run_retires_the_month(
    scratch_table, settings, full_disk, tmp_path
):
    table = scratch_table(premake_months=0, retention_months=1)
    insert_readings(table, [at(2030, 1, 3)])
    with connection.cursor() as cursor:  # an archive larger than the disk
        cursor.execute(
            f"INSERT INTO {table} (id, created_at, value, note) "  # noqa: S608
            "SELECT gen_random_uuid(), '2030-01-05', n, md5(n::text) || md5((n * 7)::text) "
            "FROM generate_series(1, 5000) n"
        )
    name = f"{table}_p203001"
    settings.OKADA_BACKUP_DIR = full_disk

    first = maintenance_run(now=at(2030, 4, 2))

    [failure] = first["failed"]
    assert english(failure).startswith(f"archived {name}")
    assert name in standalone_tables(name) and readings_count(name) == 5001  # detached, kept whole
    assert list((full_disk / "partitions" / table).iterdir()) == []  # no partial left behind

    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    second = maintenance_run(now=at(2030, 4, 2, 1))

    assert second["failed"] == [] and name not in standalone_tables(name)
    archived = PartitionAction.objects.get(partition=name, kind=Kind.ARCHIVED, outcome=Outcome.SUCCESS)
    assert archived.rows == 5001


def test_an_archive_whose_digest_cannot_be_written_drops_nothing_and_leaves_no_archive_behind(
    scratch_table, settings, tmp_path
):
    # A disk of one page: the month's archive (about 1.6 KB) fits, its `.sha256` does not. The
    # run used to keep the `.dump` without its digest: a file no run reuses or deletes, one more
    # at every try, each holding a customer month in clear.
    table = scratch_table(premake_months=0, retention_months=1)
    insert_readings(table, [at(2030, 1, 3)])
    name = f"{table}_p203001"
    with small_tmpfs(tmp_path, size="4k") as disk:
        settings.OKADA_BACKUP_DIR = disk

        first = maintenance_run(now=at(2030, 4, 2))

        [failure] = first["failed"]
        assert english(failure).startswith(f"archived {name}") and "No space left" in english(failure)
        assert name in standalone_tables(name) and readings_count(name) == 1  # detached, kept whole
        assert list((disk / "partitions" / table).iterdir()) == []
    assert not PartitionAction.objects.filter(partition=name, kind=Kind.DROPPED).exists()

    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    second = maintenance_run(now=at(2030, 4, 2, 1))

    assert second["failed"] == [] and name not in standalone_tables(name)
    [made] = (tmp_path / "backups" / "partitions" / table).glob("*.dump")
    assert made.with_name(made.name + ".sha256").read_text() == f"{archive.sha256_of(made)}  {made.name}\n"


def readings_count(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM ONLY "{name}"')  # noqa: S608
        return cursor.fetchone()[0]


def test_a_clock_jumped_years_ahead_retires_nothing_and_says_why(scratch_table, monkeypatch, backup_dir):
    # A worker whose clock jumped ahead saw this month as years old: past retention, it was
    # detached, archived and dropped out of the live table.
    from okada.partitions import services

    table = scratch_table(premake_months=0, retention_months=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        database_now = cursor.fetchone()[0]
    this_month = ddl.utc_month_of(database_now)
    ids = insert_readings(table, [database_now])
    maintenance_run(now=database_now)  # the month is made, its row in it
    name = ddl.partition_name(table, this_month)
    assert partition_of(table, ids[0]) == name
    monkeypatch.setattr(services, "clock", lambda: database_now + dt.timedelta(days=3 * 365))

    plan = maintenance_plan()
    summary = maintenance_run()

    assert not [s for s in plan.steps if s.action == Step.RETIRE]
    assert any("ahead of the database server" in w for w in map(english, summary["warnings"]))
    assert partition_of(table, ids[0]) == name
    assert not PartitionAction.objects.filter(kind__in=[Kind.DETACHED, Kind.DROPPED]).exists()


def test_a_writer_of_the_month_being_rescued_waits_and_its_row_lands_in_the_new_partition(scratch_table):
    # Rows of the current month caught by DEFAULT (premake had lapsed) are rescued while writers
    # go on writing that month. A writer that reached DEFAULT while the rescue held its lock
    # failed once the month was attached ("violates partition constraint"): an order lost.
    from tests.concurrency import in_thread, poll

    table = scratch_table()
    insert_readings(table, [at(2030, 1, 3)])
    late: list[uuid.UUID] = []
    with transaction.atomic(), connection.cursor() as cursor:
        moved = ddl.create_month_partition(cursor, table, at(2030, 1).date())
        assert moved == 1
        thread, errors = in_thread(lambda: late.extend(insert_readings(table, [at(2030, 1, 20)])))
        poll(lambda: _waiting_for_a_lock(), "the writer to wait for the rescue's lock", WAIT)
    thread.join(WAIT)

    assert errors == []
    assert partition_of(table, late[0]) == f"{table}_p203001"


def test_a_writer_of_a_started_month_made_before_its_first_row_waits_and_lands_in_it(scratch_table):
    # Premake lapsed and the month has begun by the server's clock, but DEFAULT holds none of its
    # rows yet: a writer reaching DEFAULT while the month is made must wait, not fail.
    from tests.concurrency import in_thread, poll

    table = scratch_table()
    late: list[uuid.UUID] = []
    with transaction.atomic(), connection.cursor() as cursor:
        assert ddl.create_month_partition(cursor, table, at(2001, 1).date()) == 0
        thread, errors = in_thread(lambda: late.extend(insert_readings(table, [at(2001, 1, 20)])))
        poll(lambda: _waiting_for_a_lock(), "the writer to wait for the month's lock", WAIT)
    thread.join(WAIT)

    assert errors == []
    assert partition_of(table, late[0]) == f"{table}_p200101"


def test_a_writer_of_a_future_month_being_made_ahead_waits_and_lands_in_it(scratch_table):
    # A month made ahead, not begun by the server's clock, no row of it in DEFAULT: a writer of
    # it anyway (a web server whose clock runs ahead of the database's, at the turn of the month,
    # while a worker as far ahead makes that month) that reached DEFAULT while the month was
    # made failed once it was attached ("violates partition constraint"): its write was lost.
    from tests.concurrency import in_thread, poll

    table = scratch_table()
    late: list[uuid.UUID] = []
    with transaction.atomic(), connection.cursor() as cursor:
        assert ddl.create_month_partition(cursor, table, at(2090, 1).date()) == 0
        thread, errors = in_thread(lambda: late.extend(insert_readings(table, [at(2090, 1, 20)])))
        poll(lambda: _waiting_for_a_lock(), "the writer to wait for the month's lock", WAIT)
    thread.join(WAIT)

    assert errors == []
    assert partition_of(table, late[0]) == f"{table}_p209001"


def _waiting_for_a_lock() -> bool:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO \"test_readings\"%%')"
            )
            return bool(cursor.fetchone()[0])
    finally:
        other.close()
