"""Backups for real: pg_dump and pg_restore against the test database, drills in scratch databases.

These tests commit (transaction=True) so that pg_dump, which has its own connection, sees the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import F
from django.utils import timezone

from backups import pg
from backups.models import Backup, BackupKind, BackupStatus, BackupVerification, VerificationOutcome
from backups.services import (
    BACKUP_JOB,
    BackupDirUnusable,
    BackupNotRestorable,
    TargetNotEmpty,
    backup_and_prune,
    backup_dir,
    backup_path,
    backup_restore,
    backup_run,
    backup_verify,
    backups_prune,
    scratch_database,
)
from catalog.models import Stock
from okada.core.errors import InvalidInput
from okada.core.jobs import job
from okada.core.models import JobRun
from okada.core.texts import english
from orders.audit import CHECKS
from orders.models import Order, PaymentStatus, Zone
from tests.backups.factories import BackupFactory, BackupVerificationFactory
from tests.backups.helpers import (
    ROOT,
    WAIT,
    files_in,
    fingerprints,
    flip_a_byte,
    marketplace,
    pg_dump_connected,
    pg_dump_waits_for_a_lock,
    server_query,
    table_locked,
)
from tests.concurrency import database_url, in_thread, poll
from tests.filesystems import small_tmpfs
from tests.orders.factories import ZoneFactory

pytestmark = pytest.mark.django_db(transaction=True)


# --- backup and drill -------------------------------------------------------------------------


def test_backup_then_drill_counts_match_and_the_backup_is_marked_verified(backup_dir):
    marketplace()

    backup = backup_run(kind=BackupKind.MANUAL)

    path = backup_path(backup)
    assert backup.status == BackupStatus.COMPLETE
    assert files_in(backup_dir) == [path.name, f"{path.name}.json", f"{path.name}.sha256"]
    assert path.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format
    assert backup.size_bytes == path.stat().st_size
    assert backup.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (backup_dir / f"{path.name}.sha256").read_text() == f"{backup.sha256}  {path.name}\n"
    assert json.loads((backup_dir / f"{path.name}.json").read_text())["row_counts"] == backup.manifest
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert backup.manifest["public.orders_order"] == Order.objects.count() == 3
    assert backup.manifest["public.catalog_stock"] == Stock.objects.count()
    assert backup.pg_dump_version.startswith("pg_dump (PostgreSQL)")
    assert backup.server_version == server_query("SHOW server_version")[0][0]

    verification = backup_verify()

    assert verification is not None
    assert verification.backup == backup
    assert verification.outcome == VerificationOutcome.PASSED, verification.error
    assert verification.restore_seconds is not None and verification.restore_seconds > 0
    assert verification.checks["checksum"] == "ok"
    assert verification.checks["count_differences"] == {}
    assert verification.checks["tables"] == len(backup.manifest)
    assert verification.checks["rows"] == sum(backup.manifest.values())
    assert verification.checks["invariants"] == dict.fromkeys(CHECKS, 0)  # every check of the audit
    assert len(CHECKS) >= 5 and "invariant_samples" not in verification.checks
    assert list(Backup.objects.verified()) == [backup]
    assert not pg.database_exists(scratch_database(backup))


def test_the_manifest_counts_the_snapshot_pg_dump_dumps_not_rows_written_during_the_run():
    marketplace()
    zones_before = Zone.all_objects.count()

    def write_while_dumping(message: str) -> None:
        if message.startswith("pg_dump started"):
            ZoneFactory.create_batch(3)  # committed after the snapshot was exported

    backup = backup_run(kind=BackupKind.MANUAL, on_step=write_while_dumping)

    assert Zone.all_objects.count() == zones_before + 3
    assert backup.manifest["public.orders_zone"] == zones_before
    verification = backup_verify(backup=backup)
    assert verification is not None
    assert verification.outcome == VerificationOutcome.PASSED, verification.error  # the dump agrees


def test_a_corrupted_byte_fails_the_drill_and_says_why():
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)
    flip_a_byte(backup_path(backup))

    verification = backup_verify()

    assert verification is not None
    assert verification.outcome == VerificationOutcome.FAILED
    assert "Checksum mismatch" in verification.error
    assert backup.sha256 in verification.error
    assert verification.restore_seconds is None
    assert not Backup.objects.verified().exists()
    assert not pg.database_exists(scratch_database(backup))


def test_a_dump_cut_short_fails_the_drill_even_with_a_matching_checksum():
    # As if the file had been cut before its checksum was taken: only restoring finds it.
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)
    path = backup_path(backup)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    Backup.objects.filter(pk=backup.pk).update(sha256=pg.file_sha256(path), size_bytes=path.stat().st_size)

    verification = backup_verify()

    assert verification is not None
    assert verification.outcome == VerificationOutcome.FAILED
    assert "pg_restore" in verification.error
    assert verification.checks["checksum"] == "ok"
    assert not pg.database_exists(scratch_database(backup))


def drill_of_a_copy_broken_by(sql: str, params: list) -> BackupVerification:
    """The failed drill of a backup taken after `sql` broke the marketplace's data."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    backup = backup_run(kind=BackupKind.MANUAL)
    verification = backup_verify(backup=backup)
    assert verification is not None
    assert verification.outcome == VerificationOutcome.FAILED
    assert not pg.database_exists(scratch_database(backup))
    return verification


def test_a_drill_fails_when_the_restored_copy_breaks_an_invariant():
    # A ledger movement missing from the data (as a faulty dump or a bug would lose it).
    marketplace()
    verification = drill_of_a_copy_broken_by(
        "UPDATE catalog_stock SET on_hand = on_hand + 1 WHERE product_id = %s",
        [Stock.objects.values_list("product_id", flat=True)[0]],
    )
    assert "stock_vs_ledger: 1" in verification.error
    assert verification.checks["invariants"] == dict.fromkeys(CHECKS, 0) | {"stock_vs_ledger": 1}


def test_a_drill_fails_when_the_restored_copy_has_an_order_marked_paid_without_payments():
    # Not one of the drill's two checks of old (stock, subtotals): the audit's paid = payments.
    marketplace()
    order = Order.objects.filter(payment_status=PaymentStatus.UNPAID).first()
    assert order is not None
    verification = drill_of_a_copy_broken_by(
        "UPDATE orders_order SET payment_status = 'paid' WHERE id = %s", [order.pk]
    )
    assert "paid_vs_payments: 1" in verification.error
    assert verification.checks["invariants"] == dict.fromkeys(CHECKS, 0) | {"paid_vs_payments": 1}
    [row] = verification.checks["invariant_samples"]["paid_vs_payments"]
    assert row["number"] == order.number and row["received_xaf"] == 0


def test_an_encrypted_backup_cannot_be_read_without_the_passphrase_and_the_drill_decrypts_it(
    settings, monkeypatch
):
    # Linux's default pipes (64 KiB), and nothing reads gpg's output until the command lines have
    # been read: gpg, unable to write the whole dump into its pipe, is still running then (the
    # copy thread, reading at once, let gpg finish first on a fast run).
    monkeypatch.setattr(pg, "PIPE_BYTES", 64 * 1024)
    scanned = threading.Event()
    copy = pg._copy

    def copy_after_the_scan(source, out):
        scanned.wait(timeout=WAIT)
        return copy(source, out)

    monkeypatch.setattr(pg, "_copy", copy_after_the_scan)
    marketplace()
    settings.OKADA_BACKUP_PASSPHRASE = "correct horse battery staple"
    leaks: list[str] = []
    gpg_seen: list[str] = []

    def look_at_every_command_line(message: str) -> None:
        # While pg_dump and gpg run: no process shows the passphrase (or a password) in `ps`.
        if not message.startswith("pg_dump started"):
            return
        secrets = [settings.OKADA_BACKUP_PASSPHRASE, connection.settings_dict["PASSWORD"]]
        # gpg cannot finish before `scanned` (its output waits in a full pipe), so scanning again
        # until it shows up is bounded; one pass missed it once on CI (a listing of /proc is not
        # a snapshot).
        deadline = time.monotonic() + WAIT
        while not gpg_seen and time.monotonic() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    text = (
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode(errors="replace")
                    )
                except OSError:  # ended since the listing
                    continue
                leaks.extend(text for secret in secrets if secret and secret in text)
                gpg_seen.extend([text] if "--passphrase-fd" in text else [])
        scanned.set()

    backup = backup_run(kind=BackupKind.MANUAL, on_step=look_at_every_command_line)

    assert gpg_seen, "gpg was running while the command lines were read"
    # The premise: far more than the pipes between gpg and us hold.
    assert (backup.size_bytes or 0) > 4 * 64 * 1024
    assert leaks == []
    path = backup_path(backup)
    assert backup.encrypted and path.name.endswith(".dump.gpg")
    assert not path.read_bytes().startswith(b"PGDMP")
    listed = subprocess.run([pg.binary("pg_restore"), "--list", str(path)], capture_output=True)
    assert listed.returncode != 0
    verification = backup_verify(backup=backup)
    assert verification is not None
    assert verification.outcome == VerificationOutcome.PASSED, verification.error
    assert verification.checks["count_differences"] == {}

    settings.OKADA_BACKUP_PASSPHRASE = "wrong"
    again = backup_verify(backup=backup)
    assert again is not None
    assert again.outcome == VerificationOutcome.FAILED
    assert "gpg" in again.error and "decryption failed" in again.error


# --- failures leave no complete-looking file --------------------------------------------------


def backup_with_pg_dump_killed(on_step: Any = None) -> list[BaseException]:
    """Run a backup in a thread and end pg_dump's session while it waits for a locked table;
    what the backup raised."""
    steps = {"on_step": on_step} if on_step else {}
    with table_locked("catalog_vendor"):
        thread, errors = in_thread(lambda: backup_run(kind=BackupKind.MANUAL, **steps))
        poll(pg_dump_waits_for_a_lock, "pg_dump to wait for the locked table", WAIT)
        server_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
        )
    thread.join(WAIT)
    return errors


def test_pg_dump_killed_mid_way_leaves_a_failed_row_and_no_file(backup_dir):
    marketplace()
    errors = backup_with_pg_dump_killed()

    assert len(errors) == 1 and isinstance(errors[0], pg.ToolError)
    backup = Backup.objects.get()
    assert backup.status == BackupStatus.FAILED
    assert english(backup.error).startswith("pg_dump exited with status 1")
    assert backup.finished_at is not None
    assert files_in(backup_dir) == []


def own_session_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_failed_backup_whose_database_session_was_also_ended_is_still_marked_failed(backup_dir):
    # The server restarted mid-backup: pg_dump died, and so did the worker's own session. The row
    # could not be marked failed on that dead session and stayed `running` until the next run.
    marketplace()

    def end_our_session(message: str) -> None:
        if message.startswith("pg_dump started"):
            server_query("SELECT pg_terminate_backend(%s)", [own_session_pid()])

    errors = backup_with_pg_dump_killed(end_our_session)

    assert len(errors) == 1 and isinstance(errors[0], pg.ToolError)
    backup = Backup.objects.get()
    assert backup.status == BackupStatus.FAILED
    assert english(backup.error).startswith("pg_dump exited with status 1")
    assert files_in(backup_dir) == []


def test_a_backup_job_whose_session_ends_after_the_dump_records_its_failure_and_the_next_run_adopts_the_file(
    backup_dir,
):
    # pg_terminate_backend of the worker's session once the file is whole: the JobRun could not
    # be written on the dead session and stayed `running` (later `abandoned`), with no error.
    marketplace()

    def end_our_session(message: str) -> None:
        if message.startswith("dump written"):
            server_query("SELECT pg_terminate_backend(%s)", [own_session_pid()])

    with pytest.raises(Exception, match="terminat"), job(BACKUP_JOB):
        backup_and_prune(kind=BackupKind.MANUAL, on_step=end_our_session)

    run = JobRun.objects.get(name=BACKUP_JOB)
    assert run.outcome == JobRun.Outcome.FAILED and "terminating connection" in run.error
    whole = Backup.objects.get()
    assert whole.status == BackupStatus.RUNNING and backup_path(whole).exists()  # renamed: whole

    backup_run(kind=BackupKind.MANUAL)

    whole.refresh_from_db()
    assert whole.status == BackupStatus.COMPLETE and backup_path(whole).exists()


def test_a_killed_backup_process_leaves_only_a_partial_file_and_the_next_run_marks_it_failed(backup_dir):
    marketplace()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "okada.settings.test",
        "DATABASE_URL": database_url(),
        "OKADA_BACKUP_DIR": str(backup_dir),
    }
    with table_locked("catalog_vendor"):
        process = subprocess.Popen(
            [sys.executable, "manage.py", "backup"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            poll(pg_dump_waits_for_a_lock, "pg_dump to wait for the locked table", WAIT)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(WAIT)
    poll(lambda: not pg_dump_connected(), "the orphaned pg_dump to exit (its output pipe is gone)", WAIT)

    interrupted = Backup.objects.get()
    assert interrupted.status == BackupStatus.RUNNING
    assert files_in(backup_dir) == [f"{interrupted.file_name}.partial"]

    backup = backup_run(kind=BackupKind.MANUAL)

    interrupted.refresh_from_db()
    assert interrupted.status == BackupStatus.FAILED
    assert "before it finished" in interrupted.error
    assert backup.status == BackupStatus.COMPLETE
    assert not any(name.endswith(".partial") for name in files_in(backup_dir))


def test_a_complete_file_whose_row_says_running_is_adopted_by_the_next_run_never_deleted(backup_dir):
    # A database restored by hand from a backup holds that backup's own row as its snapshot saw
    # it: `running`, no checksum. (A run killed between the rename and the row's update leaves
    # the same.) The file has its final name, so it is whole: the next run must keep it.
    marketplace()
    restored_from = backup_run(kind=BackupKind.MANUAL)
    recorded = {
        f: getattr(restored_from, f)
        for f in ("size_bytes", "sha256", "manifest", "pg_dump_version", "server_version")
    }
    Backup.objects.filter(pk=restored_from.pk).update(
        status=BackupStatus.RUNNING,
        finished_at=None,
        size_bytes=None,
        sha256="",
        manifest={},
        pg_dump_version="",
        server_version="",
    )
    steps: list[str] = []

    newer = backup_run(kind=BackupKind.MANUAL, on_step=steps.append)

    restored_from.refresh_from_db()
    assert restored_from.status == BackupStatus.COMPLETE, restored_from.error
    assert {f: getattr(restored_from, f) for f in recorded} == recorded
    assert restored_from.finished_at is not None
    assert backup_path(restored_from).exists()
    assert pg.file_sha256(backup_path(restored_from)) == recorded["sha256"]
    assert any(f"backup {restored_from.pk}" in step and "complete" in step for step in steps)
    assert newer.status == BackupStatus.COMPLETE
    drill = backup_verify(backup=restored_from)
    assert drill is not None and drill.outcome == VerificationOutcome.PASSED, drill and drill.error


def test_a_running_row_whose_final_file_does_not_match_its_companion_is_marked_failed(backup_dir):
    backup = backup_run(kind=BackupKind.MANUAL)
    Backup.objects.filter(pk=backup.pk).update(status=BackupStatus.RUNNING, finished_at=None)
    flip_a_byte(backup_path(backup))

    backup_run(kind=BackupKind.MANUAL)

    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert not any(name.startswith(backup.file_name) for name in files_in(backup_dir))


def test_two_concurrent_backup_jobs_one_runs_and_the_other_is_skipped():
    from backups.tasks import run_backup
    from okada.core.jobs import JobSkipped
    from okada.core.models import JobRun

    marketplace()
    with table_locked("catalog_vendor"):
        thread, errors = in_thread(run_backup)
        poll(pg_dump_waits_for_a_lock, "the first backup's pg_dump to start", WAIT)
        with pytest.raises(JobSkipped):
            run_backup()
    thread.join(WAIT)

    assert errors == []
    assert Backup.objects.filter(status=BackupStatus.COMPLETE).count() == 1
    assert Backup.objects.count() == 1
    outcomes = sorted(JobRun.objects.filter(name="backups.run_backup").values_list("outcome", flat=True))
    assert outcomes == [JobRun.Outcome.SKIPPED, JobRun.Outcome.SUCCESS]


def test_a_redelivered_backup_task_returns_the_backup_it_already_made():
    first = backup_run(kind=BackupKind.SCHEDULED, request_id="task-1")
    again = backup_run(kind=BackupKind.SCHEDULED, request_id="task-1")
    assert again == first
    assert Backup.objects.count() == 1

    drill = backup_verify(request_id="task-2")
    assert backup_verify(request_id="task-2") == drill
    assert BackupVerification.objects.count() == 1


def test_a_task_redelivered_after_its_worker_died_just_after_the_rename_takes_no_second_backup():
    # The worker died between the rename and the row's update: its file is whole, its row
    # `running`. The redelivered task adopted that file, then took a second backup anyway.
    first = backup_run(kind=BackupKind.SCHEDULED, request_id="task-1")
    Backup.objects.filter(pk=first.pk).update(status=BackupStatus.RUNNING, finished_at=None)

    again = backup_run(kind=BackupKind.SCHEDULED, request_id="task-1")

    assert again == first and again.status == BackupStatus.COMPLETE
    assert Backup.objects.count() == 1


def test_the_daily_drill_verifies_the_newest_backup_not_one_dated_in_the_future():
    # A backup taken while the clock was a year ahead was "the newest" for a year: every daily
    # drill verified it again, and no backup taken since was ever verified.
    ahead = backup_run(kind=BackupKind.MANUAL)
    a_year = timedelta(days=365)
    Backup.objects.filter(pk=ahead.pk).update(
        started_at=F("started_at") + a_year, finished_at=F("finished_at") + a_year
    )
    taken = backup_run(kind=BackupKind.SCHEDULED)

    drill = backup_verify()

    assert drill is not None and drill.backup == taken


def test_a_drill_interrupted_by_a_dead_worker_is_marked_failed_and_its_scratch_database_dropped():
    backup = backup_run(kind=BackupKind.MANUAL)
    dead = BackupVerification.objects.create(backup=backup)  # as a killed worker leaves it
    pg.create_database(scratch_database(backup))

    verification = backup_verify()

    dead.refresh_from_db()
    assert dead.outcome == VerificationOutcome.FAILED
    assert "before it finished" in dead.error
    assert verification is not None and verification.outcome == VerificationOutcome.PASSED
    assert not pg.database_exists(scratch_database(backup))


# --- retention --------------------------------------------------------------------------------


def test_pruning_deletes_the_files_and_marks_the_rows_but_keeps_the_newest_verified_backup(
    settings, backup_dir
):
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
    ) = 5, 0, 0
    now = timezone.now()
    nights = [BackupFactory(started_at=now - timedelta(days=n), with_file=True) for n in range(10)]
    oldest = nights[-1]
    BackupVerificationFactory(backup=oldest)  # the only verified backup, outside the policy
    failed = BackupFactory(
        status=BackupStatus.FAILED, started_at=now - timedelta(days=20), size_bytes=None, sha256=""
    )

    pruned = backups_prune()

    assert {b.pk for b in pruned} == {b.pk for b in nights[5:9]}
    for backup in nights:
        backup.refresh_from_db()
    assert [b.status for b in nights] == [BackupStatus.COMPLETE] * 5 + [BackupStatus.PRUNED] * 4 + [
        BackupStatus.COMPLETE
    ]
    assert all(b.pruned_at is not None for b in nights[5:9])
    assert files_in(backup_dir) == sorted(b.file_name for b in [*nights[:5], oldest])
    failed.refresh_from_db()
    assert failed.status == BackupStatus.FAILED
    assert backups_prune() == []  # idempotent


def test_a_backup_later_the_same_day_does_not_prune_the_newest_pre_migration_backups(settings):
    # Once a manual (or the nightly) backup after `make migrate` made its pre-migration backup "not
    # the newest of its day", and the retention run right after it deleted the one backup an
    # operator would restore if the migration had gone wrong.
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
        settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
    ) = 1, 0, 0, 2
    now = timezone.now()
    oldest_pre = BackupFactory(
        kind=BackupKind.PRE_MIGRATION, started_at=now - timedelta(days=3), with_file=True
    )
    older_pre = BackupFactory(
        kind=BackupKind.PRE_MIGRATION, started_at=now - timedelta(days=2), with_file=True
    )
    nightly = BackupFactory(kind=BackupKind.SCHEDULED, started_at=now - timedelta(days=1), with_file=True)
    before_migrating = backup_run(kind=BackupKind.PRE_MIGRATION)

    summary = backup_and_prune(kind=BackupKind.MANUAL)

    manual = Backup.objects.get(pk=summary["backup"])
    assert sorted(summary["pruned"]) == sorted([oldest_pre.file_name, nightly.file_name])
    for backup in (oldest_pre, older_pre, nightly, before_migrating, manual):
        backup.refresh_from_db()
    assert [b.status for b in (before_migrating, older_pre, manual)] == [BackupStatus.COMPLETE] * 3
    assert all(backup_path(b).exists() for b in (before_migrating, older_pre, manual))
    assert [b.status for b in (oldest_pre, nightly)] == [BackupStatus.PRUNED] * 2
    assert not backup_path(oldest_pre).exists() and not backup_path(nightly).exists()
    assert backups_prune() == []  # idempotent


def test_with_every_rule_at_zero_the_backup_just_taken_is_still_kept(settings):
    # 0 is a valid count for each rule (a negative one is refused at start-up); all four at 0 once
    # made the retention run right after a backup delete that very backup.
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
        settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
    ) = 0, 0, 0, 0
    older = BackupFactory(
        kind=BackupKind.SCHEDULED, started_at=timezone.now() - timedelta(days=1), with_file=True
    )

    summary = backup_and_prune(kind=BackupKind.MANUAL)

    taken = Backup.objects.get(pk=summary["backup"])
    assert summary["pruned"] == [older.file_name]
    assert taken.status == BackupStatus.COMPLETE and backup_path(taken).exists()


def test_a_backup_dated_in_the_future_does_not_get_the_backup_just_taken_pruned(settings):
    # A backup taken while the clock was ahead is the "newest" by date: the retention run after
    # the next backup kept it in the place of the backup just taken, and deleted that one.
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
        settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
    ) = 1, 0, 0, 0
    ahead = BackupFactory(started_at=timezone.now() + timedelta(hours=3), with_file=True)

    summary = backup_and_prune(kind=BackupKind.MANUAL)

    taken = Backup.objects.get(pk=summary["backup"])
    assert taken.file_name not in summary["pruned"]
    assert taken.status == BackupStatus.COMPLETE and backup_path(taken).exists()
    ahead.refresh_from_db()
    assert ahead.status == BackupStatus.COMPLETE  # the newest by date: the daily rule keeps it


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_retention_does_not_count_on_a_verified_backup_whose_file_changed_since(settings, damage):
    # The newest verified backup's file was damaged after its drill passed. Retention kept it as
    # "the newest verified backup" and pruned the older verified one: the last good backup.
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
        settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
    ) = 1, 0, 0, 0
    good = backup_run(kind=BackupKind.MANUAL)
    damaged = backup_run(kind=BackupKind.MANUAL)
    for backup in (good, damaged):
        drill = backup_verify(backup=backup)
        assert drill is not None and drill.outcome == VerificationOutcome.PASSED
    path = backup_path(damaged)
    if damage == "cut":
        os.truncate(path, path.stat().st_size // 2)
    else:
        flip_a_byte(path)

    summary = backup_and_prune(kind=BackupKind.MANUAL)

    good.refresh_from_db()
    assert good.file_name not in summary["pruned"]
    assert good.status == BackupStatus.COMPLETE and backup_path(good).exists()
    damaged.refresh_from_db()
    assert damaged.status == BackupStatus.FAILED
    assert english(damaged.error).startswith("Its file is no longer the one its restore drill passed")
    assert path.exists()  # a damaged file is kept for inspection
    assert Backup.objects.verified().order_by("-started_at").first() == good


def test_retention_prunes_nothing_and_fails_no_backup_when_verified_files_are_not_there(settings):
    # The backup directory was not mounted tonight (or a file was deleted): every verified
    # backup's file is missing. Marking them failed one after another would leave no good backup
    # once the disk is back; retention stops instead, says what to do, and changes nothing.
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
        settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
    ) = 1, 0, 0, 0
    older, newer = backup_run(kind=BackupKind.MANUAL), backup_run(kind=BackupKind.MANUAL)
    for backup in (older, newer):
        drill = backup_verify(backup=backup)
        assert drill is not None and drill.outcome == VerificationOutcome.PASSED
    hidden = {b.pk: backup_path(b).read_bytes() for b in (older, newer)}
    for backup in (older, newer):
        backup_path(backup).unlink()

    with pytest.raises(BackupDirUnusable) as refused:
        backups_prune()

    assert f"verify_backup {newer.pk}" in str(refused.value)
    for backup in (older, newer):
        backup.refresh_from_db()
        assert backup.status == BackupStatus.COMPLETE
    # The disk is back: both are verified, and retention prunes the older one again.
    for pk, content in hidden.items():
        backup_path(Backup.objects.get(pk=pk)).write_bytes(content)
    assert [b.pk for b in backups_prune()] == [older.pk]
    # A file deleted for good: its failed drill takes it out of the verified backups.
    backup_path(newer).unlink()
    drill = backup_verify(backup=newer)
    assert drill is not None and drill.outcome == VerificationOutcome.FAILED
    assert backups_prune() == []  # nothing raised: the newest is kept as the newest complete one


def test_pruning_never_deletes_a_backup_while_it_is_being_verified(settings):
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
    ) = 1, 0, 0
    older = backup_run(kind=BackupKind.MANUAL)
    newer = backup_run(kind=BackupKind.MANUAL)
    restoring, release = threading.Event(), threading.Event()

    def pause_while_restoring(message: str) -> None:
        if message.startswith("restoring into"):
            restoring.set()
            assert release.wait(WAIT)

    thread, errors = in_thread(lambda: backup_verify(backup=older, on_step=pause_while_restoring))
    try:
        assert restoring.wait(WAIT)
        assert backups_prune() == []  # the older one is outside the policy, but being verified
    finally:
        release.set()
        thread.join(WAIT)

    assert errors == []
    older.refresh_from_db()
    assert older.status == BackupStatus.COMPLETE and backup_path(older).exists()
    assert older.verifications.get().outcome == VerificationOutcome.PASSED
    assert backups_prune() == []  # now it is the newest verified backup: kept
    newer.refresh_from_db()
    assert newer.status == BackupStatus.COMPLETE


# --- restore on purpose -----------------------------------------------------------------------


@pytest.fixture
def target_database():
    name = "okada_test_restore_target"
    pg.drop_database(name)
    yield name
    connections.close_all()
    pg.drop_database(name)


def test_restore_refuses_a_non_empty_target_without_force_and_with_it_the_target_equals_the_source(
    target_database,
):
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)
    pg.create_database(target_database)
    with pg.database_alias(target_database) as alias, connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE precious (note text)")
        cursor.execute("INSERT INTO precious VALUES ('keep me')")

    with pytest.raises(TargetNotEmpty):
        backup_restore(backup=backup, target=target_database)
    with pg.database_alias(target_database) as alias, connections[alias].cursor() as cursor:
        cursor.execute("SELECT note FROM precious")
        assert cursor.fetchall() == [("keep me",)]

    steps: list[str] = []
    restored = backup_restore(backup=backup, target=target_database, force=True, on_step=steps.append)

    assert restored.count_differences == {}
    assert restored.rows == sum(backup.manifest.values())
    assert any(s.startswith("checking the size and SHA-256") for s in steps)
    assert any("table data" in s for s in steps)  # progress
    catalog = ("public.backups_backup",)  # the source's row changed since (complete now)
    with pg.database_alias(target_database) as alias:
        assert fingerprints(alias, skip=catalog) == fingerprints(DEFAULT_DB_ALIAS, skip=catalog)
        assert Backup.objects.using(alias).get(pk=backup.pk).status == BackupStatus.COMPLETE


OWNER, READER = "okada_test_target_owner", "okada_test_target_reader"


@pytest.fixture
def target_a_dba_made(target_database):
    """The target as a DBA makes it for a restore: empty, owned by a role of its own, CONNECT
    for one other role only, a setting of its own."""
    with pg.server_cursor() as cursor:
        for role in (OWNER, READER):
            cursor.execute(f"DROP ROLE IF EXISTS {role}")
            cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        # A locale of its own, unlike the server's (C.UTF-8, libc): ICU's French of Cameroon,
        # byte order for LC_COLLATE and LC_CTYPE.
        cursor.execute(
            f"CREATE DATABASE {target_database} OWNER {OWNER} TEMPLATE template0 "
            "LOCALE_PROVIDER icu ICU_LOCALE 'fr-CM' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        cursor.execute(f"REVOKE ALL ON DATABASE {target_database} FROM PUBLIC")
        cursor.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {target_database} TO {READER}")
        cursor.execute(f"ALTER DATABASE {target_database} SET statement_timeout = '7min'")
        cursor.execute(f"ALTER DATABASE {target_database} SET search_path = app, public")  # a list
        cursor.execute(f"ALTER ROLE {READER} IN DATABASE {target_database} SET work_mem = '8MB'")
    made = target_properties(target_database)
    yield target_database, made
    connections.close_all()
    pg.drop_database(target_database)
    with pg.server_cursor() as cursor:
        for role in (OWNER, READER):
            cursor.execute(f"DROP ROLE IF EXISTS {role}")


def target_properties(name: str) -> tuple[Any, ...]:
    """Owner, privileges (sorted), settings and locale of the database `name`."""
    [row] = server_query(
        "SELECT pg_get_userbyid(d.datdba), "
        "  concat_ws(' ', pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datlocprovider, "
        "            to_jsonb(d) ->> 'daticulocale', to_jsonb(d) ->> 'datlocale'), "
        "  (SELECT array_agg(x ORDER BY x) FROM unnest(d.datacl::text[]) x), "
        "  (SELECT array_agg(s.setrole::regrole || ': ' || array_to_string(s.setconfig, '; ') ORDER BY 1) "
        "     FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) "
        "FROM pg_database d WHERE d.datname = %s",
        [name],
    )
    return row


def test_a_restore_into_an_empty_database_a_dba_made_keeps_its_owner_privileges_and_settings(
    target_a_dba_made,
):
    target, made = target_a_dba_made
    assert made[:2] == (OWNER, "UTF8 C C i fr-CM")
    assert any(a.startswith(f"{READER}=") for a in made[2]) and len(made[3]) == 2
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)

    restored = backup_restore(backup=backup, target=target)

    assert restored.count_differences == {}
    assert target_properties(target) == made


def test_a_restore_that_stops_empties_the_target_again_as_its_dba_made_it(target_a_dba_made):
    # The cleanup after a failed restore drops the target and creates it again: it came back
    # owned by the role that restores, open to every role, without its settings.
    target, made = target_a_dba_made
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)

    def get_in_the_way(message: str) -> None:
        if message.startswith("restoring into"):
            with pg.database_alias(target) as alias, connections[alias].cursor() as cursor:
                cursor.execute("CREATE TABLE sync_mutation (id int)")

    with pytest.raises(BackupNotRestorable, match="emptied again"):
        backup_restore(backup=backup, target=target, on_step=get_in_the_way)

    assert target_properties(target) == made
    with pg.database_alias(target) as alias:
        assert pg.user_objects(alias) == 0


def test_restore_with_force_re_creates_the_target_as_its_dba_made_it(target_a_dba_made):
    target, made = target_a_dba_made
    with pg.database_alias(target) as alias, connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE old_copy (note text)")
    backup = backup_run(kind=BackupKind.MANUAL)

    backup_restore(backup=backup, target=target, force=True)

    assert target_properties(target) == made


def test_restore_checks_the_checksum_first_and_touches_nothing_when_it_differs(target_database):
    backup = backup_run(kind=BackupKind.MANUAL)
    flip_a_byte(backup_path(backup))

    with pytest.raises(BackupNotRestorable, match="Checksum mismatch"):
        backup_restore(backup=backup, target=target_database)
    assert not pg.database_exists(target_database)


def test_a_restore_that_fails_mid_way_leaves_the_target_empty_not_half_restored(target_database):
    # Something made in the target while pg_restore fills it (here a table of the backup's own)
    # stops pg_restore half way: the target held the tables restored so far, which an app
    # pointed at it would have run on.
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)

    def get_in_the_way(message: str) -> None:
        if message.startswith("restoring into"):
            with pg.database_alias(target_database) as alias, connections[alias].cursor() as cursor:
                cursor.execute("CREATE TABLE sync_mutation (id int)")

    with pytest.raises(BackupNotRestorable, match="emptied again") as stopped:
        backup_restore(backup=backup, target=target_database, on_step=get_in_the_way)

    assert "sync_mutation" in str(stopped.value)  # pg_restore's own words say why
    with pg.database_alias(target_database) as alias:
        assert pg.user_objects(alias) == 0


class Interrupted(BaseException):
    """What Ctrl-C (KeyboardInterrupt) or a stopped worker raise: not an Exception."""


def test_a_restore_interrupted_while_tables_load_leaves_the_target_empty(target_database):
    marketplace()
    backup = backup_run(kind=BackupKind.MANUAL)

    def interrupt(message: str) -> None:
        if "table data" in message:
            raise Interrupted

    with pytest.raises(Interrupted):
        backup_restore(backup=backup, target=target_database, on_step=interrupt)

    with pg.database_alias(target_database) as alias:
        assert pg.user_objects(alias) == 0


def test_restore_refuses_a_backup_that_is_not_complete(target_database):
    failed = BackupFactory(status=BackupStatus.FAILED, size_bytes=None, sha256="")
    with pytest.raises(BackupNotRestorable):
        backup_restore(backup=failed, target=target_database)
    assert not pg.database_exists(target_database)


def test_restore_refuses_a_target_that_is_not_a_plain_database_name():
    backup = BackupFactory()
    with pytest.raises(InvalidInput) as refused:
        backup_restore(backup=backup, target="okada host=elsewhere")
    assert refused.value.errors == {"target": [refused.value.message]}


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("target", ["postgres", "template1", "template0"])
def test_restore_refuses_postgresqls_own_databases(target, force):
    # `--target template1` restored the marketplace into the template every later CREATE DATABASE
    # copies (the test databases included: they then held every table before migrating), and
    # `--target postgres` into the maintenance database, since both hold no table.
    backup = backup_run(kind=BackupKind.MANUAL)
    with pytest.raises(InvalidInput, match=f"{target} is one of PostgreSQL's own databases") as refused:
        backup_restore(backup=backup, target=target, force=force)
    assert refused.value.errors == {"target": [refused.value.message]}


def test_restore_refuses_a_database_marked_as_a_template(target_database):
    backup = backup_run(kind=BackupKind.MANUAL)
    pg.create_database(target_database)

    def is_template(flag: bool) -> None:
        with pg.server_cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{target_database}" IS_TEMPLATE {flag}')

    is_template(True)
    try:
        with pytest.raises(InvalidInput, match="PostgreSQL's own databases"):
            backup_restore(backup=backup, target=target_database, force=True)
        assert pg.database_exists(target_database)
    finally:
        is_template(False)  # DROP DATABASE refuses a template


@pytest.mark.parametrize("passphrase", ["", "wrong"])
def test_restore_with_force_checks_it_can_decrypt_before_it_drops_the_target(
    settings, target_database, passphrase
):
    settings.OKADA_BACKUP_PASSPHRASE = "correct horse battery staple"
    backup = backup_run(kind=BackupKind.MANUAL)
    pg.create_database(target_database)
    with pg.database_alias(target_database) as alias, connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE precious (note text)")
        cursor.execute("INSERT INTO precious VALUES ('keep me')")
    settings.OKADA_BACKUP_PASSPHRASE = passphrase

    with pytest.raises(BackupNotRestorable, match="OKADA_BACKUP_PASSPHRASE"):
        backup_restore(backup=backup, target=target_database, force=True)

    with pg.database_alias(target_database) as alias, connections[alias].cursor() as cursor:
        cursor.execute("SELECT note FROM precious")
        assert cursor.fetchall() == [("keep me",)]


def test_pruning_never_deletes_a_backup_while_it_is_being_restored(settings, target_database):
    (
        settings.OKADA_BACKUP_KEEP_DAILY,
        settings.OKADA_BACKUP_KEEP_WEEKLY,
        settings.OKADA_BACKUP_KEEP_MONTHLY,
    ) = 1, 0, 0
    older = backup_run(kind=BackupKind.MANUAL)
    backup_run(kind=BackupKind.MANUAL)  # the newest of the day: the policy keeps only this one
    restoring, release = threading.Event(), threading.Event()

    def pause_while_restoring(message: str) -> None:
        if message.startswith("restoring into"):
            restoring.set()
            assert release.wait(WAIT)

    thread, errors = in_thread(
        lambda: backup_restore(backup=older, target=target_database, on_step=pause_while_restoring)
    )
    try:
        assert restoring.wait(WAIT)
        assert backups_prune() == []  # outside the policy, but being restored
    finally:
        release.set()
        thread.join(WAIT)

    assert errors == []
    older.refresh_from_db()
    assert older.status == BackupStatus.COMPLETE and backup_path(older).exists()
    assert [b.pk for b in backups_prune()] == [older.pk]  # the restore is over: pruned now


@pytest.mark.parametrize("force", [False, True])
def test_a_second_restore_into_a_target_being_restored_is_refused_and_the_first_finishes(
    target_database, force
):
    marketplace()
    first, second = backup_run(kind=BackupKind.MANUAL), backup_run(kind=BackupKind.MANUAL)
    restoring, release = threading.Event(), threading.Event()

    def pause_while_restoring(message: str) -> None:
        if message.startswith("restoring into"):  # the target is created, empty, pg_restore next
            restoring.set()
            assert release.wait(WAIT)

    results: list[Any] = []
    thread, errors = in_thread(
        lambda: results.append(
            backup_restore(backup=first, target=target_database, on_step=pause_while_restoring)
        )
    )
    try:
        assert restoring.wait(WAIT)
        # With --force it would drop the database the first is restoring into; without, it would
        # restore into it at the same time (the target is still empty).
        with pytest.raises(BackupNotRestorable, match=f"Another restore into {target_database}"):
            backup_restore(backup=second, target=target_database, force=force)
    finally:
        release.set()
        thread.join(WAIT)

    assert errors == []
    assert results[0].count_differences == {}
    assert results[0].rows == sum(first.manifest.values())


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: a dump fills it."""
    with small_tmpfs(tmp_path) as mountpoint:
        yield mountpoint


def test_a_backup_whose_directory_turns_read_only_mid_run_is_marked_failed_with_the_cause(
    settings, full_disk, backup_dir
):
    # The disk went read-only (an I/O error remounts it so) before the rename: deleting the
    # partial file failed too, and that second error left the row `running` with no word of why.
    subprocess.run(["mount", "-o", "remount,size=16m", str(full_disk)], check=True)
    settings.OKADA_BACKUP_DIR = full_disk

    def read_only(message: str) -> None:
        if message.startswith("dump written"):
            subprocess.run(["mount", "-o", "remount,ro", str(full_disk)], check=True)

    try:
        with pytest.raises(OSError, match="Read-only file system"):
            backup_run(kind=BackupKind.MANUAL, on_step=read_only)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(full_disk)], check=True)

    failed = Backup.objects.get()
    assert failed.status == BackupStatus.FAILED and "Read-only file system" in failed.error
    assert not (full_disk / failed.file_name).exists()  # nothing left looks like a whole backup


def test_a_backup_that_fills_the_disk_is_marked_failed_leaves_no_file_and_the_next_run_works(
    settings, full_disk, backup_dir
):
    marketplace()
    settings.OKADA_BACKUP_DIR = full_disk

    with pytest.raises(Exception, match="No space left"):
        backup_and_prune(kind=BackupKind.MANUAL)

    failed = Backup.objects.get()
    assert failed.status == BackupStatus.FAILED and "No space left" in english(failed.error)
    assert files_in(full_disk) == []  # no partial left to fill the disk, nothing that looks whole

    settings.OKADA_BACKUP_DIR = backup_dir
    backup = backup_run(kind=BackupKind.MANUAL)
    assert backup.status == BackupStatus.COMPLETE and backup_path(backup).exists()


def test_the_backup_directory_and_the_parents_it_makes_are_the_owners_only(settings, tmp_path):
    # Parents were made with the umask's mode (0755 here): readable by every local user, who
    # could list and time the dumps of every customer's phone number.
    settings.OKADA_BACKUP_DIR = str(tmp_path / "okada" / "backups")
    made = backup_dir()
    assert made == tmp_path / "okada" / "backups"
    assert [oct(p.stat().st_mode & 0o777) for p in (made.parent, made)] == ["0o700", "0o700"]
