"""The backup catalog in the admin: read-only rows, the freshness banner, "back up now" and
"verify now" queued to Celery for those allowed to, and refused for the others."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus
from okada.celery import app
from tests.backups.factories import BackupFactory, BackupVerificationFactory
from tests.backups.helpers import WAIT
from tests.concurrency import poll

CHANGELIST = "/admin/backups/backup/"
BACK_UP_NOW = "/admin/backups/backup/back-up-now/"


def queued_tasks() -> list[str]:
    """Names of the tasks waiting in the broker's default queue (the test Redis database)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(m)["headers"]["task"] for m in broker.lrange("celery", 0, -1)]


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user(username="support", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_backup"))
    return user


@pytest.fixture
def operator(viewer):
    viewer.user_permissions.add(Permission.objects.get(codename="run_backup"))
    return viewer


@pytest.mark.django_db
def test_the_catalog_lists_backups_and_warns_when_the_newest_verified_one_is_too_old(client, admin_user):
    backup = BackupFactory(started_at=timezone.now() - timedelta(hours=50), size_bytes=3 * 1024 * 1024)
    BackupVerificationFactory(backup=backup, restore_seconds=42.0)
    client.force_login(admin_user)

    page = client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "The newest verified backup is 50.0 h old" in page
    assert 'class="error"' in page
    assert "3.0\xa0MB" in page
    assert backup.sha256[:12] in page
    assert "42.0 s" in page
    assert "Back up now" in page


@pytest.mark.django_db
def test_the_banner_says_all_is_well_with_a_fresh_verified_backup(client, admin_user):
    BackupVerificationFactory(backup=BackupFactory(started_at=timezone.now() - timedelta(hours=3)))
    client.force_login(admin_user)
    page = client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Newest verified backup: 3\xa0hours old." in page
    assert 'class="error"' not in page


@pytest.mark.django_db
def test_staff_without_the_permission_see_no_button_and_their_posts_are_refused(client, viewer):
    backup = BackupFactory()
    client.force_login(viewer)

    page = client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Back up now" not in page
    assert "verify_now" not in page

    assert client.post(BACK_UP_NOW).status_code == 403
    client.post(CHANGELIST, {"action": "verify_now", "_selected_action": [str(backup.pk)]})
    assert queued_tasks() == []


@pytest.mark.django_db
def test_backup_rows_cannot_be_edited_or_deleted_in_the_admin(client, admin_user):
    backup = BackupFactory()
    client.force_login(admin_user)
    assert client.post(f"/admin/backups/backup/{backup.pk}/change/", {"status": "failed"}).status_code == 403
    assert client.post(f"/admin/backups/backup/{backup.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/backups/backup/add/").status_code == 403
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETE


@pytest.mark.django_db
def test_verify_now_queues_a_drill_of_each_complete_backup_and_refuses_the_others(
    client, operator, django_capture_on_commit_callbacks
):
    complete = BackupFactory()
    failed = BackupFactory(status=BackupStatus.FAILED, size_bytes=None, sha256="")
    client.force_login(operator)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            CHANGELIST,
            {"action": "verify_now", "_selected_action": [str(complete.pk), str(failed.pk)]},
            HTTP_ACCEPT_LANGUAGE="en",
            follow=True,
        )

    page = response.content.decode()
    assert "1 restore drill queued" in page
    assert "only a complete backup can be verified" in page
    assert queued_tasks() == ["backups.run_restore_drill"]


@pytest.mark.django_db(transaction=True)
def test_back_up_now_queues_a_backup_that_a_worker_takes(client, operator):
    client.force_login(operator)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        response = client.post(BACK_UP_NOW, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 302
        poll(lambda: Backup.objects.filter(status=BackupStatus.COMPLETE).exists(), "the queued backup", WAIT)
    backup = Backup.objects.get()
    assert backup.kind == BackupKind.MANUAL


def test_a_drill_is_named_by_its_douala_time(client, admin_user):
    # Its name heads its page and names it in lists: it was the UTC time as stored, an hour behind
    # every other time on the admin's pages (Africa/Douala).
    import datetime as dt

    verification = BackupVerificationFactory(started_at=dt.datetime(2026, 12, 4, 20, 30, tzinfo=dt.UTC))
    assert " @ 2026-12-04 21:30 " in str(verification)
    client.force_login(admin_user)
    page = client.get(f"/admin/backups/backupverification/{verification.pk}/change/").content.decode()
    assert "2026-12-04 21:30" in page and "2026-12-04 20:30" not in page


@pytest.mark.parametrize(("language", "shown"), [("fr", "12,5 s"), ("en", "12.5 s")])
def test_a_backups_restore_time_is_written_in_the_readers_number_format(client, admin_user, language, shown):
    BackupVerificationFactory(restore_seconds=12.5)
    client.force_login(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    body = client.get("/admin/backups/backup/").content.decode()
    assert f">{shown}<" in body, body
