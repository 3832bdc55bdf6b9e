"""The health jobs: single-flight through job(), idempotent, scheduled by migration."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from okada.core.jobs import JobSkipped, advisory_lock
from okada.core.models import JobRun
from okada.health.models import Snapshot
from okada.health.tasks import evaluate_alerts, take_snapshot


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_job_is_single_flight():
    with advisory_lock("health.take_snapshot") as held:
        assert held.try_acquire()  # another run holds the job's lock
        with pytest.raises(JobSkipped):
            take_snapshot()
    assert not Snapshot.objects.exists()
    assert list(JobRun.objects.values_list("outcome", flat=True)) == ["skipped"]


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_job_is_idempotent_within_an_hour():
    take_snapshot()
    take_snapshot()
    assert Snapshot.objects.count() == 1
    runs = list(JobRun.objects.filter(name="health.take_snapshot").order_by("started_at"))
    assert [r.outcome for r in runs] == ["success", "success"]
    first, second = runs[0].summary or {}, runs[1].summary or {}
    assert first["taken"] is True and second["taken"] is False
    assert first["pruned"] == 0


@pytest.mark.django_db(transaction=True)
def test_the_alert_job_records_what_it_opened():
    evaluate_alerts()
    run = JobRun.objects.get(name="health.evaluate_alerts")
    assert run.outcome == "success"
    summary = run.summary or {}
    assert set(summary) == {"opened", "cleared", "repeated", "errors"}
    assert summary["errors"] == {}


@pytest.mark.django_db
def test_the_health_jobs_are_scheduled_in_beat():
    snapshot = PeriodicTask.objects.get(task="health.take_snapshot")
    alerts = PeriodicTask.objects.get(task="health.evaluate_alerts")
    assert (snapshot.crontab.minute, snapshot.crontab.hour) == ("2", "*")
    assert (alerts.crontab.minute, alerts.crontab.hour) == ("*", "*")
    assert snapshot.enabled and alerts.enabled
