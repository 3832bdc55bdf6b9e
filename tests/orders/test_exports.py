"""orders.exports.export_run: one run of an export at a time.

A task delivered twice, or redelivered while its first run still writes, ran the export twice at
once: the second run deleted the first one's `.part` file and wrote its own, the first then
failed on its rename and marked the export failed over the second's success. Each run now holds
the export's advisory lock and writes a file of its own; these tests race real runs, each in a
thread with its own database connections, paused at a known point by events (never a sleep).
"""

from __future__ import annotations

import csv
import io
import logging
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from okada.core.errors import NotAllowed
from okada.core.jobs import LockLost, advisory_lock
from okada.core.roles import FINANCE
from okada.core.texts import english, shown
from orders import exports
from orders.models import OrderExport
from tests.catalog.factories import VendorFactory, role_user
from tests.concurrency import WAIT, in_thread, poll
from tests.core.test_jobs import hold_lock
from tests.orders.factories import OrderFactory
from tests.replicas import replica_database


@pytest.fixture
def export(settings, tmp_path) -> tuple[OrderExport, list[str]]:
    """An export of one vendor's three orders (committed: the runs read it from other
    connections), and the order numbers its file must hold, newest first."""
    settings.OKADA_PRIVATE_DIR = tmp_path
    vendor = VendorFactory()
    numbers = [OrderFactory(vendor=vendor).number for _ in range(3)][::-1]
    OrderFactory()  # another vendor's: filtered out
    user = role_user(FINANCE)
    return OrderExport.objects.create(requested_by=user, query=f"vendor__id__exact={vendor.pk}"), numbers


def numbers_in(path: Path) -> list[str]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert rows[0][0] == "numéro"
    return [row[0] for row in rows[1:]]


def parts(export: OrderExport) -> list[Path]:
    """The export's files being written (or left by runs that died)."""
    return sorted(exports.export_dir().glob(f"{export.pk}*.part"))


def paused_rows(
    monkeypatch: pytest.MonkeyPatch, pause_in: str
) -> tuple[threading.Event, threading.Event, dict[str, int]]:
    """`_row` (each order's CSV line) counted per thread; the thread named `pause_in` stops at its
    first row (its `.part` file open, its header written) until `go` is set, after `writing`."""
    writing, go = threading.Event(), threading.Event()
    calls: dict[str, int] = {}
    row = exports._row

    def counted(order: Any) -> list[Any]:
        name = threading.current_thread().name
        calls[name] = calls.get(name, 0) + 1
        if name == pause_in and calls[name] == 1:
            writing.set()
            assert go.wait(WAIT), "the test never let the first run go on"
        return row(order)

    monkeypatch.setattr(exports, "_row", counted)
    return writing, go, calls


def run_named(
    name: str, export_id: Any, results: dict[str, Any]
) -> tuple[threading.Thread, list[BaseException]]:
    def body() -> None:
        threading.current_thread().name = name
        results[name] = exports.export_run(export_id=str(export_id), language="fr")

    return in_thread(body)


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_the_first_writes_leaves_its_file_alone_and_the_export_is_done_once(
    export, monkeypatch, caplog
):
    export, numbers = export
    caplog.set_level(logging.INFO, logger="orders.exports")
    writing, go, calls = paused_rows(monkeypatch, pause_in="first")
    path = exports.export_path(export)
    results: dict[str, Any] = {}
    first, first_errors = run_named("first", export.pk, results)
    try:
        assert writing.wait(WAIT), f"the first run never wrote a row: {first_errors}"
        [partial] = parts(export)
        before = partial.stat()
        second, second_errors = run_named("second", export.pk, results)  # the task delivered again
        second.join(WAIT)
        assert not second.is_alive() and not second_errors, second_errors
        # It returned at once: no row written, the first run's file untouched, no file renamed.
        assert "second" not in calls
        after = partial.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
            before.st_ino,
            before.st_size,
            before.st_mtime_ns,
        )
        assert not path.exists()
        assert results["second"].status == OrderExport.Status.RUNNING  # the first run's
        assert any(
            "skipped: another run is writing it" in r.getMessage()
            for r in caplog.records
            if r.name == "orders.exports"
        )
    finally:
        go.set()
        first.join(WAIT)
    assert not first.is_alive() and not first_errors, first_errors
    done = OrderExport.objects.get(pk=export.pk)
    assert results["first"].status == done.status == OrderExport.Status.DONE, done.error
    assert done.rows == 3 and calls == {"first": 3}
    assert numbers_in(path) == numbers
    assert parts(export) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(exports.export_dir().stat().st_mode) == 0o700

    # A run after the first one ended finds the export done and its file there: nothing written.
    assert exports.export_run(export_id=str(export.pk)).status == OrderExport.Status.DONE
    assert calls == {"first": 3}


def hold_export_lock(export_id: Any, application_name: str) -> psycopg.Connection:
    """A session holding the export's lock that says it is `application_name`: a run's backend."""
    return hold_lock(exports.export_lock_name(export_id), application_name)


def someone_waits_for_export(export_id: Any) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = (hashtextextended(%s, 0) & 4294967295)::oid",
            [f"okada.job:{exports.export_lock_name(export_id)}"],
        )
        return bool(cur.fetchone()[0])


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.django_db(transaction=True)
def test_a_run_that_died_leaves_nothing_claimed_and_the_rerun_writes_the_whole_file(export, caplog):
    export, numbers = export
    caplog.set_level(logging.INFO, logger="orders.exports")
    # The dead run's leftovers: the export marked running, half a file.
    OrderExport.objects.filter(pk=export.pk).update(status=OrderExport.Status.RUNNING)
    path = exports.export_path(export)
    partial = exports.export_dir() / f"{export.pk}.dead.part"
    partial.write_text("numéro;half a line")

    # While a live run holds the lock (this process), a run skips at once and touches nothing.
    with advisory_lock(exports.export_lock_name(export.pk)) as live:
        assert live.try_acquire()
        assert exports.export_run(export_id=str(export.pk)).status == OrderExport.Status.RUNNING
    assert partial.read_text() == "numéro;half a line" and not path.exists()

    # The lock of a run whose process died, its backend not ended yet: the rerun waits for it
    # (skipping would lose the rerun acks_late promises) and writes the file once it is free.
    holder = hold_export_lock(export.pk, f"okada job {dead_pid()}@{socket.gethostname()}")
    results: dict[str, Any] = {}
    rerun, errors = run_named("rerun", export.pk, results)
    try:
        poll(lambda: someone_waits_for_export(export.pk) or not rerun.is_alive(), "the rerun to wait")
        assert rerun.is_alive(), f"the rerun did not wait: {errors}"
    finally:
        holder.close()  # PostgreSQL ends the dead run's session, and its lock with it
    rerun.join(WAIT)
    assert not rerun.is_alive() and not errors, errors
    assert results["rerun"].status == OrderExport.Status.DONE and results["rerun"].rows == 3
    assert numbers_in(path) == numbers and parts(export) == [partial]  # another run's: left alone
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Pruning the export takes its leftovers with it.
    OrderExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert exports.exports_prune(days=7) == 1
    assert not path.exists() and parts(export) == []


def terminate_lock_backend_at_first_row(monkeypatch: pytest.MonkeyPatch, export_id: Any) -> Callable[[], int]:
    """End the session holding the export's lock while the run writes (an operator's
    pg_terminate_backend, a network cut); returns how many rows were written."""
    row, calls = exports._row, [0]

    def terminating(order: Any) -> list[Any]:
        calls[0] += 1
        if calls[0] == 1:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND objid = (hashtextextended(%s, 0) & 4294967295)::oid",
                    [f"okada.job:{exports.export_lock_name(export_id)}"],
                )
                ended = cur.fetchone()
                assert ended is not None and ended[0], "no session held the export's lock"
        return row(order)

    monkeypatch.setattr(exports, "_row", terminating)
    return lambda: calls[0]


@pytest.mark.django_db
def test_a_run_that_lost_its_lock_renames_nothing_and_fails_the_export_when_no_other_run_holds_it(
    export, monkeypatch
):
    export, _ = export
    rows = terminate_lock_backend_at_first_row(monkeypatch, export.pk)
    with pytest.raises(LockLost):
        exports.export_run(export_id=str(export.pk))
    assert rows() == 3
    path = exports.export_path(export)
    assert not path.exists() and parts(export) == []
    failed = OrderExport.objects.get(pk=export.pk)
    assert failed.status == OrderExport.Status.FAILED and "lost its lock" in english(failed.error)
    # Nothing stays claimed: the next run writes it.
    monkeypatch.undo()
    assert exports.export_run(export_id=str(export.pk)).status == OrderExport.Status.DONE


@pytest.mark.django_db(transaction=True)
def test_a_run_that_lost_its_lock_leaves_the_export_another_run_finished_meanwhile_done(export, monkeypatch):
    export, numbers = export
    writing, go, calls = paused_rows(monkeypatch, pause_in="lost")
    results: dict[str, Any] = {}
    lost, lost_errors = run_named("lost", export.pk, results)
    try:
        assert writing.wait(WAIT), f"the first run never wrote a row: {lost_errors}"
        with connection.cursor() as cur:  # its lock's session ends (pg_terminate_backend, a cut)
            cur.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND objid = (hashtextextended(%s, 0) & 4294967295)::oid",
                [f"okada.job:{exports.export_lock_name(export.pk)}"],
            )
            assert cur.fetchone()[0], "no session held the export's lock"
        # The task delivered again takes the free lock and finishes the export.
        rerun, rerun_errors = run_named("rerun", export.pk, results)
        rerun.join(WAIT)
        assert not rerun.is_alive() and not rerun_errors, rerun_errors
        assert results["rerun"].status == OrderExport.Status.DONE
    finally:
        go.set()
        lost.join(WAIT)
    assert not lost.is_alive() and [type(e) for e in lost_errors] == [LockLost]
    # The lost run renamed nothing, removed only its own file and failed nothing.
    done = OrderExport.objects.get(pk=export.pk)
    assert (done.status, done.rows, done.error) == (OrderExport.Status.DONE, 3, "")
    assert numbers_in(exports.export_path(export)) == numbers and parts(export) == []
    assert calls == {"lost": 3, "rerun": 3}


@pytest.mark.django_db(transaction=True)
def test_a_run_that_cannot_take_its_lock_fails_the_export_with_words_for_staff(export, monkeypatch, caplog):
    export, _ = export
    take = exports.take_unless_live

    def cut_first(lock: Any, what: str) -> Any:
        # The lock's connection dies under it (a network cut): a real OperationalError follows.
        lock.connection.ensure_connection()
        with connection.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(%s, 10000)", [lock.connection.connection.info.backend_pid]
            )
        return take(lock, what)

    monkeypatch.setattr(exports, "take_unless_live", cut_first)
    with pytest.raises(OperationalError):
        exports.export_run(export_id=str(export.pk))
    failed = OrderExport.objects.get(pk=export.pk)
    assert failed.status == OrderExport.Status.FAILED
    assert english(failed.error) == (
        "The export could not be written (OperationalError): ask for it again. "
        "The worker's log has the details."
    )
    with translation.override("fr"):
        assert shown(failed.error).startswith("L\u2019export n\u2019a pas pu être écrit (OperationalError)")
    assert parts(export) == [] and not exports.export_path(export).exists()
    monkeypatch.undo()
    assert exports.export_run(export_id=str(export.pk)).status == OrderExport.Status.DONE


@pytest.mark.django_db
def test_a_run_for_a_user_who_may_no_longer_read_orders_writes_no_file(export):
    # The export permission kept (a custom role), reading orders taken away after the request:
    # the file would hand over the list, customers' names and phones, to someone who may not see it.
    export, _ = export
    user = export.requested_by
    user.groups.clear()
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="orders", codename="export_orders")
    )
    with pytest.raises(NotAllowed):
        exports.export_run(export_id=str(export.pk))
    failed = OrderExport.objects.get(pk=export.pk)
    assert failed.status == OrderExport.Status.FAILED and failed.rows is None
    assert english(failed.error) == (
        "You do not have the permission “Can view orders” (orders.view_order): ask an administrator "
        "for a role that has it."
    )
    assert parts(export) == [] and not exports.export_path(export).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_with_a_replica_the_export_reads_the_orders_there_and_writes_only_on_the_primary(export, settings):
    export, numbers = export
    # The replica's sessions are read-only: a write sent there would fail.
    with (
        replica_database(settings) as replica,
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connection) as on_primary,
    ):
        done = exports.export_run(export_id=str(export.pk))
    assert done.status == OrderExport.Status.DONE and done.rows == len(numbers)
    assert numbers_in(exports.export_path(done)) == numbers
    assert [q for q in on_replica.captured_queries if 'FROM "orders_order"' in q["sql"]]
    assert not [q for q in on_primary.captured_queries if 'FROM "orders_order"' in q["sql"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_an_unreachable_replica_leaves_the_export_to_the_primary_and_says_so(export, settings, caplog):
    export, numbers = export
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with replica_database(settings, HOST="127.0.0.1", PORT=port), caplog.at_level(logging.WARNING):
        done = exports.export_run(export_id=str(export.pk))
    assert done.status == OrderExport.Status.DONE
    assert numbers_in(exports.export_path(done)) == numbers
    assert "the read replica (DATABASE_REPLICA_URL) cannot be reached" in caplog.text
