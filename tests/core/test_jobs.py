"""job(): single flight across real concurrent runs, and the JobRun log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection, connections

from okada.core import jobs
from okada.core.errors import Conflict, InternalError
from okada.core.jobs import JobFailed, JobSkipped, LockLost, advisory_lock, job
from okada.core.models import JobRun
from okada.core.texts import Text, english
from tests.concurrency import database_url, in_thread, poll
from tests.core.test_db import client_keepalive

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds: a deadline for events, never a sleep


def test_second_concurrent_run_is_skipped_and_never_runs_the_body():
    inside = threading.Event()
    release = threading.Event()
    bodies_run: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with job("test.single_flight") as run:
                bodies_run.append("first")
                inside.set()
                assert release.wait(WAIT)
                run.summary = {"done": 1}
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(WAIT)

    with pytest.raises(JobSkipped), job("test.single_flight"):
        bodies_run.append("second")  # must never run

    release.set()
    thread.join(WAIT)
    assert not errors
    assert bodies_run == ["first"]

    runs = {r.outcome: r for r in JobRun.objects.filter(name="test.single_flight")}
    assert set(runs) == {JobRun.Outcome.SUCCESS, JobRun.Outcome.SKIPPED}
    success = runs[JobRun.Outcome.SUCCESS]
    assert success.summary == {"done": 1}
    assert success.finished_at is not None
    assert success.finished_at >= success.started_at

    # Once the first run is over the lock is free again.
    with job("test.single_flight") as run:
        run.summary = "again"
    assert JobRun.objects.filter(name="test.single_flight", outcome="success").count() == 2


def test_different_jobs_do_not_block_each_other():
    with job("test.a"), job("test.b") as inner:
        inner.summary = "both ran"
    assert JobRun.objects.filter(outcome="success").count() == 2


def test_failed_run_records_the_error_and_releases_the_lock():
    with pytest.raises(RuntimeError), job("test.fails"):
        raise RuntimeError("disk full")
    run = JobRun.objects.get(name="test.fails")
    assert run.outcome == JobRun.Outcome.FAILED
    assert "disk full" in run.error
    assert run.finished_at is not None

    with job("test.fails"):
        pass
    assert JobRun.objects.filter(name="test.fails", outcome="success").exists()


def test_a_body_that_finds_problems_fails_the_run_with_its_summary_and_no_traceback(caplog):
    with pytest.raises(JobFailed), job("test.audit") as run:
        run.summary = {"findings": 2}
        raise JobFailed("2 rows break the rules")
    stored = JobRun.objects.get(name="test.audit")
    assert (stored.outcome, stored.summary, stored.error) == (
        "failed",
        {"findings": 2},
        "2 rows break the rules",
    )
    assert stored.finished_at is not None
    [record] = [r for r in caplog.records if r.name == "okada.core.jobs"]
    assert (record.levelname, record.exc_info) == ("ERROR", None)


def refuse_pruned_backup() -> None:
    raise Conflict(Text("Backup %(id)s is pruned.", id="b1"))


def test_a_refusal_fails_the_run_with_its_sentence_and_logs_its_traceback(caplog):
    # e.g. a drill queued for a backup pruned before it ran: the services refused (a 4xx
    # DomainError); the run keeps the sentence in a form each reader sees in their language. A
    # bug can raise a refusal too (a job asking for something wrong): the worker's log keeps
    # where it was raised.
    with pytest.raises(Conflict), job("test.refused"):
        refuse_pruned_backup()
    stored = JobRun.objects.get(name="test.refused")
    assert stored.outcome == "failed"
    assert "Traceback" not in stored.error and english(stored.error) == "Backup b1 is pruned."
    [record] = [r for r in caplog.records if r.name == "okada.core.jobs"]
    assert record.levelname == "ERROR" and "Backup b1 is pruned." in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is Conflict
    assert "in refuse_pruned_backup" in caplog.text  # the traceback, down to the raise


def test_a_server_fault_keeps_its_traceback(caplog):
    with pytest.raises(InternalError), job("test.fault"):
        raise InternalError()
    assert "Traceback" in JobRun.objects.get(name="test.fault").error
    [record] = [r for r in caplog.records if r.name == "okada.core.jobs"]
    assert record.exc_info is not None


def test_lock_dies_with_its_connection_and_leftover_running_rows_are_marked_abandoned():
    # A worker killed mid-run leaves a "running" row and a dropped connection.
    JobRun.objects.create(name="test.crashed")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtextextended('okada.job:test.crashed', 0))")
        assert cur.fetchone()[0]
    connection.close()  # the "worker" dies: PostgreSQL releases its lock

    with job("test.crashed") as run:
        run.summary = "finished the work"
    outcomes = sorted(JobRun.objects.filter(name="test.crashed").values_list("outcome", flat=True))
    assert outcomes == ["abandoned", "success"]


# --- the lock's connection ends: keepalives, safe-point checks ----------------------------------


def test_lock_connection_has_tcp_keepalives_on_both_ends():
    with advisory_lock("test.keepalive") as taken:
        assert taken.try_acquire()
        lock = taken.connection
        with lock.cursor() as cur:  # PostgreSQL reports the values its socket really has
            cur.execute(
                "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
                " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')"
            )
            assert cur.fetchone() == ("30", "10", "3", "60000")
        # The worker's end of the same TCP connection.
        assert client_keepalive(lock.connection) == (1, 30, 10, 3, 60000)


def terminate_backend(pid: int | None) -> None:
    assert pid is not None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])  # waits until it is gone
        assert cur.fetchone()[0]


def test_check_raises_lock_lost_once_the_lock_backend_is_terminated_and_the_run_is_failed():
    with pytest.raises(LockLost), job("test.lost") as run:
        run.check()
        assert run.still_holds_lock()
        terminate_backend(run.lock_backend_pid)
        # The lock is free: another run can start now, which is why the first must stop.
        with job("test.lost") as other:
            other.summary = "the other run"
        assert not run.still_holds_lock()
        run.check()
        pytest.fail("check() must raise")  # pragma: no cover
    failed = JobRun.objects.get(name="test.lost", outcome=JobRun.Outcome.FAILED)
    assert failed.error.startswith("job test.lost lost its lock")
    assert "another run may have started" in failed.error
    assert JobRun.objects.filter(name="test.lost", outcome=JobRun.Outcome.SUCCESS).count() == 1


def test_a_body_that_finishes_after_losing_its_lock_is_not_recorded_as_a_success():
    with pytest.raises(LockLost), job("test.lost_quietly") as run:
        terminate_backend(run.lock_backend_pid)
        run.summary = {"did": "everything"}
    failed = JobRun.objects.get(name="test.lost_quietly")
    assert failed.outcome == JobRun.Outcome.FAILED
    assert failed.summary == {"did": "everything"}
    assert "lost its lock" in failed.error


# --- a lock held by a dead run ------------------------------------------------------------------


def hold_lock(name: str, application_name: str) -> psycopg.Connection:
    """A session that holds job `name`'s lock and says it is `application_name`: what a dead run's
    backend looks like while PostgreSQL has not noticed that its client is gone."""
    db = connection.settings_dict
    conn = psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        application_name=application_name,
        autocommit=True,
    )
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [f"okada.job:{name}"]
    ).fetchone()
    assert row is not None
    assert row[0]
    return conn


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def someone_waits_for(name: str) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = (hashtextextended(%s, 0) & 4294967295)::oid",
            [f"okada.job:{name}"],
        )
        return cur.fetchone()[0] > 0


def run_in_thread(name: str) -> tuple[threading.Thread, list[BaseException]]:
    def body() -> None:
        with job(name) as run:
            run.summary = "ran"

    return in_thread(body)


def test_a_lock_held_by_a_dead_process_of_this_host_is_waited_for_not_skipped():
    pid = dead_pid()
    JobRun.objects.create(name="test.dead_holder", host=f"{socket.gethostname()}:{pid}")
    holder = hold_lock("test.dead_holder", f"okada job {pid}@{socket.gethostname()}")
    thread, errors = run_in_thread("test.dead_holder")
    try:
        poll(lambda: someone_waits_for("test.dead_holder") or not thread.is_alive(), "the run to wait")
        assert thread.is_alive(), f"the run did not wait: {errors}"
    finally:
        holder.close()  # PostgreSQL finally ends the dead run's session
    thread.join(WAIT)
    assert not errors
    outcomes = sorted(JobRun.objects.filter(name="test.dead_holder").values_list("outcome", flat=True))
    assert outcomes == ["abandoned", "success"]


def test_a_wait_for_a_dead_holder_that_never_lets_go_ends_as_skipped(monkeypatch):
    monkeypatch.setattr(jobs, "RERUN_WAIT_SECONDS", 0.5)
    name = f"okada job {dead_pid()}@{socket.gethostname()}"
    holder = hold_lock("test.stuck_holder", name)
    try:
        with pytest.raises(JobSkipped), job("test.stuck_holder"):
            pytest.fail("the body must not run")  # pragma: no cover
    finally:
        holder.close()
    skipped = JobRun.objects.get(name="test.stuck_holder")
    assert skipped.outcome == JobRun.Outcome.SKIPPED
    assert skipped.summary == {"reason": "another run holds the lock", "holder": name, "waited_seconds": 0.5}


def test_a_holder_on_another_host_is_a_live_run_for_a_first_delivery_and_is_skipped_at_once():
    holder = hold_lock("test.remote_holder", "okada job 4242@another-worker-host")
    try:
        started = time.monotonic()
        with pytest.raises(JobSkipped), job("test.remote_holder"):
            pytest.fail("the body must not run")  # pragma: no cover
        assert time.monotonic() - started < jobs.RERUN_WAIT_SECONDS
    finally:
        holder.close()
    skipped = JobRun.objects.get(name="test.remote_holder")
    assert skipped.summary == {
        "reason": "another run holds the lock",
        "holder": "okada job 4242@another-worker-host",
    }


def test_a_task_redelivered_after_its_worker_died_waits_for_the_dead_runs_lock_and_reruns(tmp_path):
    """A real prefork worker: the task's process is killed, Celery delivers the task again
    (acks_late + reject_on_worker_lost), and the lock is still held by a session on a host that
    vanished. The rerun must wait for PostgreSQL to end that session, then run: not be skipped."""
    from okada.celery import app

    holder = hold_lock("test.rerun", "okada job 4242@vanished-worker-host")
    queue = f"test-rerun-{os.getpid()}"
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "okada",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--queues",
                queue,
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            cwd=Path(__file__).resolve().parents[2],
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "okada.settings.test",
                "DATABASE_URL": database_url(),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        app.send_task("testapp.crash_then_run_job", args=["test.rerun"], queue=queue)
        poll(
            lambda: someone_waits_for("test.rerun") or JobRun.objects.filter(name="test.rerun").exists(),
            "the redelivered task to reach the lock",
            90,
        )
        assert not JobRun.objects.filter(name="test.rerun").exists(), (
            f"the rerun did not wait:\n{log.read_text()}"
        )
        terminate_backend(holder.info.backend_pid)  # PostgreSQL notices the vanished host
        poll(lambda: JobRun.objects.filter(name="test.rerun").exists(), "the rerun to finish", 60)
    finally:
        holder.close()
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
    assert "SIGKILL" in log.read_text()  # the first delivery's process really died
    run = JobRun.objects.get(name="test.rerun")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == "rerun finished"
