"""The hourly job that prunes personal tokens: a JobRun through job(), scheduled by migration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from okada.core.models import JobRun
from okada.credentials.models import PersonalToken
from okada.credentials.services import personal_token_issue
from okada.credentials.tasks import prune_tokens
from tests.catalog.factories import UserFactory, VendorFactory

pytestmark = pytest.mark.django_db


def test_the_prune_job_deletes_long_expired_tokens_records_its_run_and_is_scheduled_hourly():
    user, vendor = UserFactory(), VendorFactory()
    user.set_password("pw-12345678")
    user.save()
    vendor.members.create(user=user, role="owner")
    kept = personal_token_issue(username=user.username, password="pw-12345678").token
    gone = personal_token_issue(username=user.username, password="pw-12345678").token
    PersonalToken.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(days=30))

    prune_tokens()

    assert list(PersonalToken.objects.values_list("pk", flat=True)) == [kept.pk]
    run = JobRun.objects.get(name="credentials.prune_tokens")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == {"deleted": 1}
    task = PeriodicTask.objects.get(task="credentials.prune_tokens")
    assert (task.crontab.minute, task.crontab.hour) == ("25", "*")
    assert task.crontab.timezone.key == "Africa/Douala"
