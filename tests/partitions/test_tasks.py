"""The maintenance task: single-flight through job() with real concurrent runs, a real Celery
worker, and its hourly beat entry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, connections
from django_celery_beat.models import PeriodicTask

from okada.core.jobs import JobSkipped, LockLost
from okada.core.models import JobRun
from okada.partitions import ddl
from okada.partitions import services as partition_services
from okada.partitions.models import PartitionAction
from okada.partitions.services import MaintenanceFailed
from okada.partitions.tasks import maintain_partitions
from tests.partitions.conftest import partition_names

WAIT = 30  # seconds: a deadline, never a sleep


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling with a deadline


def waiting_on_a_lock(query_fragment: str) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{query_fragment}%"],
        )
        return bool(cursor.fetchone()[0])


@contextmanager
def run_held_in_its_first_step(table: str) -> Iterator[list[object]]:
    """A maintenance run in another thread, stopped in its first step: another session holds
    the DEFAULT partition that creating a month needs. The block runs while the run waits; on
    the way out the DEFAULT is let go and the run finishes. Yields the run's result (or error)."""
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{ddl.default_name(table)}" IN ACCESS SHARE MODE')
    results: list[object] = []

    def run() -> None:
        try:
            results.append(maintain_partitions())
        except BaseException as exc:
            results.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_until(lambda: waiting_on_a_lock(ddl.default_name(table)), "the run to wait in its first step")
        yield results
    finally:
        holder.rollback()
        holder.close()
        thread.join(WAIT)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_one_works_and_the_other_skips(scratch_table, settings):
    table = scratch_table(premake_months=1)
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = WAIT * 1000  # the first run waits for the DEFAULT

    with run_held_in_its_first_step(table) as first, pytest.raises(JobSkipped):
        maintain_partitions()  # the second run

    assert len(first) == 1 and isinstance(first[0], dict), first
    runs = JobRun.objects.filter(name="partitions.maintain_partitions")
    assert sorted(runs.values_list("outcome", flat=True)) == [JobRun.Outcome.SKIPPED, JobRun.Outcome.SUCCESS]
    # Only the run that worked created the months, each once.
    created = PartitionAction.objects.filter(table=table, kind=PartitionAction.Kind.CREATED)
    assert sorted(created.values_list("partition", flat=True)) == sorted(
        partition_names(table) - {f"{table}_default"}
    )
    assert created.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_run_that_loses_its_lock_stops_before_its_next_step(scratch_table, settings):
    table = scratch_table(premake_months=2)  # three months to make
    settings.OKADA_PARTITION_LOCK_TIMEOUT_MS = WAIT * 1000

    with run_held_in_its_first_step(table) as results, connection.cursor() as cursor:
        # An operator ends the session that holds the job's lock.
        cursor.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'okada job %%'"
        )

    assert len(results) == 1 and isinstance(results[0], LockLost), results
    assert JobRun.objects.get(name="partitions.maintain_partitions").outcome == JobRun.Outcome.FAILED
    # The step under way finished; the next ones were not started.
    assert len(partition_names(table) - {ddl.default_name(table)}) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_step_fails_is_recorded_as_failed_with_what_it_did(scratch_table):
    table = scratch_table(premake_months=0)
    this_month = ddl.utc_month_of(partition_services.clock())
    with connection.cursor() as cursor:  # a table squatting the name of this month's partition
        cursor.execute(f"CREATE TABLE {ddl.partition_name(table, this_month)} (x int)")

    with pytest.raises(MaintenanceFailed):
        maintain_partitions()
    run = JobRun.objects.get(name="partitions.maintain_partitions")
    assert run.outcome == JobRun.Outcome.FAILED
    assert run.summary is not None
    assert len(run.summary["failed"]) == 1 and "is not the" in run.summary["failed"][0]


@pytest.mark.django_db
def test_maintenance_is_scheduled_hourly_in_beat():
    task = PeriodicTask.objects.get(task="partitions.maintain_partitions")
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("7", "*", "*")
    assert str(task.crontab.timezone) == "Africa/Douala"
