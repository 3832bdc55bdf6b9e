"""Celery for real: a worker consuming from the Redis broker, and beat's database schedule."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from django_celery_beat.models import PeriodicTask

from okada.celery import app
from okada.core.models import JobRun


@pytest.mark.django_db(transaction=True)
def test_worker_runs_a_job_task_through_the_redis_broker():
    assert app.conf.broker_url.startswith("redis://")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        result = app.send_task("core.prune_job_runs")
        result.get(timeout=60)
    run = JobRun.objects.get(name="core.prune_job_runs")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == {"deleted": 0}


@pytest.mark.django_db
def test_beat_schedule_entries_are_installed_in_the_database_scheduler():
    from django_celery_beat.schedulers import DatabaseScheduler

    tasks = {t.task: t for t in PeriodicTask.objects.filter(enabled=True)}
    assert {"core.prune_job_runs", "core.clean_duplicate_history"} <= set(tasks)
    assert tasks["core.clean_duplicate_history"].crontab.day_of_week == "0"
    assert str(tasks["core.prune_job_runs"].crontab.timezone) == "Africa/Douala"

    # Beat's own entries, built as the scheduler builds them. (Not scheduler.all_as_schedule():
    # django-celery-beat loads only the crontab tasks due within two hours of now, so what it
    # returns depends on the time the test runs.)
    entries = {t.name: DatabaseScheduler.Entry(t, app=app) for t in PeriodicTask.objects.filter(enabled=True)}
    assert {"Prune old job runs", "Clean duplicate history"} <= set(entries)
    # Every scheduled task name is registered with the worker (a typo would never run).
    app.loader.import_default_modules()
    for entry in entries.values():
        assert entry.task in app.tasks, entry.task
