"""The feed upkeep job and the restore hook command."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from okada.core.models import JobRun
from sync.services import generation_current
from sync.tasks import prune_push_results

pytestmark = pytest.mark.django_db


def test_pruning_push_results_runs_as_a_job_and_is_scheduled():
    prune_push_results()
    run = JobRun.objects.get(name="sync.prune_push_results")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == {"deleted": 0}
    assert PeriodicTask.objects.filter(task="sync.prune_push_results").exists()


def test_the_restore_hook_command_starts_a_new_generation():
    before = generation_current().token
    out = io.StringIO()
    call_command("sync_new_generation", "--reason", "restore drill", stdout=out)
    assert generation_current().token != before
    assert "devices will download again" in out.getvalue()
