"""The backups panel on the operations dashboard: the newest verified backup's age, the last drill."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import VerificationOutcome
from okada.core.roles import OPERATIONS, SUPPORT
from tests.backups.factories import BackupFactory, BackupVerificationFactory
from tests.catalog.factories import role_user

pytestmark = pytest.mark.django_db


def panel(client):
    response = client.get("/admin/")
    assert response.status_code == 200
    return {p.key: p for p in response.context["okada_panels"]}.get("backups.status")


def test_operations_see_the_age_of_the_newest_verified_backup_and_the_last_drill(client):
    backup = BackupFactory(started_at=timezone.now() - timedelta(hours=5))
    BackupVerificationFactory(backup=backup, outcome=VerificationOutcome.PASSED)
    client.force_login(role_user(OPERATIONS))
    shown = panel(client)
    assert shown is not None and not shown.failed
    assert shown.data["age_hours"] == pytest.approx(5, abs=0.1)
    assert shown.data["status"].last_drill.outcome == VerificationOutcome.PASSED
    assert shown.data["problem"] is None
    assert client.get(shown.data["backups_url"]).status_code == 200


def test_a_failed_drill_is_the_problem_shown(client):
    BackupVerificationFactory(outcome=VerificationOutcome.FAILED, error="checksum mismatch")
    client.force_login(role_user(OPERATIONS))
    shown = panel(client)
    assert "checksum mismatch" in shown.data["problem"]
    assert "checksum mismatch" in client.get("/admin/").content.decode()


def test_support_does_not_see_backups(client):
    client.force_login(role_user(SUPPORT))
    assert panel(client) is None
