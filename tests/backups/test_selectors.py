"""backup_status(): what /readyz, the backup admin and the dashboard say about backups."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from backups.models import Backup, BackupStatus, VerificationOutcome
from backups.selectors import backup_status
from tests.backups.factories import BackupFactory, BackupVerificationFactory

pytestmark = pytest.mark.django_db


def verified_backup(*, hours_old: float, outcome: str = VerificationOutcome.PASSED) -> Backup:
    backup = BackupFactory.create(started_at=timezone.now() - timedelta(hours=hours_old))
    BackupVerificationFactory(
        backup=backup, outcome=outcome, started_at=backup.started_at + timedelta(minutes=5)
    )
    return backup


def test_a_new_install_without_backups_is_ready_during_its_grace_period_then_not():
    first = MigrationRecorder.Migration.objects.order_by("applied").first()
    assert first is not None
    installed = first.applied

    fresh = backup_status()
    assert fresh.newest_verified is None
    assert fresh.in_grace and not fresh.too_old
    assert fresh.problem is None
    assert fresh.grace_until == installed + timedelta(hours=36)

    later = backup_status(now=installed + timedelta(hours=37))
    assert later.too_old
    assert "No verified backup yet" in str(later.problem)


def test_a_recent_verified_backup_is_fine_and_an_old_one_is_too_old(settings):
    backup = verified_backup(hours_old=10)
    status = backup_status()
    assert status.newest_verified == backup
    assert status.age is not None and timedelta(hours=9) < status.age < timedelta(hours=11)
    assert not status.too_old and status.problem is None

    settings.OKADA_BACKUP_MAX_AGE_HOURS = 8
    status = backup_status()
    assert status.too_old
    assert "10.0 h old" in str(status.problem) and "8 h" in str(status.problem)


def test_an_unverified_newer_backup_does_not_count_as_verified():
    verified = verified_backup(hours_old=30)
    newer = BackupFactory(started_at=timezone.now() - timedelta(hours=2))
    status = backup_status()
    assert status.newest == newer
    assert status.newest_verified == verified


def test_a_failed_last_drill_is_a_problem_even_with_a_young_verified_backup():
    verified_backup(hours_old=3)
    broken = BackupFactory(started_at=timezone.now() - timedelta(hours=1))
    BackupVerificationFactory(
        backup=broken,
        outcome=VerificationOutcome.FAILED,
        error="Checksum mismatch",
        started_at=timezone.now() - timedelta(minutes=10),
    )
    status = backup_status()
    assert status.last_drill_failed
    assert not status.too_old
    assert "last restore drill" in str(status.problem) and "Checksum mismatch" in str(status.problem)


def test_a_backup_whose_latest_drill_failed_is_no_longer_verified():
    backup = verified_backup(hours_old=5)
    BackupVerificationFactory(backup=backup, outcome=VerificationOutcome.FAILED, started_at=timezone.now())
    assert backup_status(now=timezone.now() + timedelta(days=3)).newest_verified is None


def test_pruned_and_failed_backups_are_not_the_newest():
    verified_backup(hours_old=20)
    BackupFactory(status=BackupStatus.FAILED, size_bytes=None, sha256="", started_at=timezone.now())
    newest = backup_status().newest
    assert newest is not None and newest.started_at < timezone.now() - timedelta(hours=19)


def test_readyz_has_a_backup_check_that_fails_when_the_newest_verified_backup_is_too_old(
    client, settings, staff_user
):
    verified_backup(hours_old=40)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["backup"] == {
        "status": "fail",
        "ms": body["checks"]["backup"]["ms"],
        "detail": "unavailable",
    }
    assert body["checks"]["database"]["status"] == "ok"

    client.force_login(staff_user)  # staff read why
    assert "40.0" in client.get("/readyz").json()["checks"]["backup"]["detail"]

    settings.OKADA_BACKUP_MAX_AGE_HOURS = 48
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["backup"]["status"] == "ok"


def test_a_verified_backup_dated_in_the_future_does_not_keep_backups_looking_fresh():
    # Taken while the clock was a year ahead: its age was negative, so it counted as fresh for a
    # year, whatever became of the nightly backups meanwhile.
    ahead = verified_backup(hours_old=-24 * 365)
    old = verified_backup(hours_old=40)

    status = backup_status()

    assert status.newest_verified == old
    assert status.too_old
    assert "40.0 h old" in str(status.problem)
    assert status.newest == ahead  # still listed, as the newest backup by date


def test_a_backup_dated_a_few_minutes_ahead_still_counts_a_clock_a_little_off_is_no_alarm():
    slightly_ahead = verified_backup(hours_old=-0.05)
    status = backup_status()
    assert status.newest_verified == slightly_ahead
    assert not status.too_old and status.problem is None
