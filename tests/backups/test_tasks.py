"""The backup and drill jobs: their beat schedules, their JobRun rows, and a killed worker's rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import Backup, BackupStatus, VerificationOutcome
from backups.services import backup_path, backup_run
from backups.tasks import DrillFailed, run_restore_drill
from okada.core.models import JobRun
from tests.backups.helpers import (
    ROOT,
    WAIT,
    files_in,
    flip_a_byte,
    marketplace,
    pg_dump_connected,
    pg_dump_waits_for_a_lock,
    table_locked,
)
from tests.concurrency import database_url, poll


@pytest.mark.django_db
def test_backup_runs_nightly_at_two_and_the_drill_daily_at_four_douala_time():
    from okada.celery import app

    app.loader.import_default_modules()
    entries = {t.name: t for t in PeriodicTask.objects.select_related("crontab")}
    for name, task, hour in (
        ("Nightly backup", "backups.run_backup", "2"),
        ("Restore drill", "backups.run_restore_drill", "4"),
    ):
        entry = entries[name]
        assert entry.task == task and entry.enabled
        assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("0", hour, "*")
        assert str(entry.crontab.timezone) == "Africa/Douala"
        assert entry.task in app.tasks


@pytest.mark.django_db(transaction=True)
def test_a_failed_drill_fails_its_job_run_with_the_reason():
    marketplace()
    backup = backup_run(kind="manual")
    flip_a_byte(backup_path(backup))

    with pytest.raises(DrillFailed, match="Checksum mismatch"):
        run_restore_drill(backup_id=str(backup.pk))

    run = JobRun.objects.get(name="backups.run_restore_drill")
    assert run.outcome == JobRun.Outcome.FAILED
    assert "Checksum mismatch" in run.error
    assert run.summary is not None and run.summary["outcome"] == VerificationOutcome.FAILED


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_worker_killed_mid_backup_is_rerun_and_the_rerun_makes_exactly_one_backup(backup_dir):
    from okada.celery import app

    marketplace()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "okada.settings.test",
        "DATABASE_URL": database_url(),
        "OKADA_BACKUP_DIR": str(backup_dir),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "okada", "worker", "--pool", "prefork", "--concurrency", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with table_locked("catalog_vendor"):
            app.send_task("backups.run_backup")
            poll(pg_dump_waits_for_a_lock, "the worker's pg_dump to start", WAIT)
            running = JobRun.objects.get(name="backups.run_backup", outcome=JobRun.Outcome.RUNNING)
            os.kill(int(running.host.rsplit(":", 1)[1]), signal.SIGKILL)  # the pool process doing the job
        poll(
            lambda: Backup.objects.filter(status=BackupStatus.COMPLETE).exists(),
            "the rerun to finish the backup",
            WAIT,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(WAIT)
    poll(lambda: not pg_dump_connected(), "every pg_dump to exit", WAIT)

    assert sorted(Backup.objects.values_list("status", flat=True)) == [
        BackupStatus.COMPLETE,
        BackupStatus.FAILED,
    ]
    done = Backup.objects.get(status=BackupStatus.COMPLETE)
    assert files_in(backup_dir) == sorted(
        [done.file_name, f"{done.file_name}.json", f"{done.file_name}.sha256"]
    )
    outcomes = sorted(JobRun.objects.filter(name="backups.run_backup").values_list("outcome", flat=True))
    assert outcomes == [JobRun.Outcome.ABANDONED, JobRun.Outcome.SUCCESS]
