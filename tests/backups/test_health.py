"""Backups on the health page: a stale backup or a failed drill opens an alert; /metrics gauges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import health
from backups.models import VerificationOutcome
from okada.health import services
from okada.health.models import Alert
from tests.backups.factories import BackupFactory, BackupVerificationFactory

pytestmark = pytest.mark.django_db


def verified_backup(*, hours_old: float, outcome: str = VerificationOutcome.PASSED):
    backup = BackupFactory.create(started_at=timezone.now() - timedelta(hours=hours_old))
    BackupVerificationFactory(
        backup=backup, outcome=outcome, started_at=backup.started_at + timedelta(minutes=5)
    )
    return backup


def test_a_stale_backup_opens_an_alert_and_a_fresh_one_clears_it(settings):
    settings.OKADA_BACKUP_MAX_AGE_HOURS = 36
    verified_backup(hours_old=40)
    services.alerts_evaluate(kinds=["backup_too_old"])
    alert = Alert.objects.open().get(key="backup_too_old:backup")
    assert alert.severity == "critical" and "40.0 h old" in alert.message

    verified_backup(hours_old=1)
    services.alerts_evaluate(kinds=["backup_too_old"])
    alert.refresh_from_db()
    assert alert.cleared_at is not None


def test_a_failed_drill_opens_an_alert_until_a_drill_passes():
    verified_backup(hours_old=2, outcome=VerificationOutcome.FAILED)
    services.alerts_evaluate(kinds=["drill_failed"])
    alert = Alert.objects.open().get(kind="drill_failed")
    assert "checksum mismatch" in alert.message
    verified_backup(hours_old=1)
    services.alerts_evaluate(kinds=["drill_failed"])
    assert not Alert.objects.open().filter(kind="drill_failed").exists()


def test_backup_metrics_give_the_age_of_the_newest_verified_backup():
    verified_backup(hours_old=3)
    metrics = {m.name: m for m in health.backup_metrics()}
    age = metrics["okada_backup_age_seconds"].samples[0][1]
    assert 3 * 3600 - 60 < age < 3 * 3600 + 60
    assert metrics["okada_backup_last_drill_failed"].samples == [({}, 0)]
