"""job(): single flight across real concurrent runs, and the JobRun log."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from okada.core.jobs import JobSkipped, job
from okada.core.models import JobRun

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
