"""The feed upkeep job and the restore hook command."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from okada.core.models import JobRun
from sync.services import generation_current
from sync.tasks import maintain_feed

pytestmark = pytest.mark.django_db


def test_the_feed_upkeep_runs_as_a_job_and_is_scheduled():
    maintain_feed()
    run = JobRun.objects.get(name="sync.maintain_feed")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary is not None and set(run.summary) == {
        "created",
        "dropped",
        "default_rows_pruned",
        "mutations_pruned",
    }
    assert PeriodicTask.objects.filter(task="sync.maintain_feed").exists()


def test_the_restore_hook_command_starts_a_new_generation():
    before = generation_current().token
    out = io.StringIO()
    call_command("sync_new_generation", "--reason", "restore drill", stdout=out)
    assert generation_current().token != before
    assert "devices will download again" in out.getvalue()
