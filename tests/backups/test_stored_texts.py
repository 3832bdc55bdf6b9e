"""Errors of backups and restore drills read in the viewer's language, whichever process wrote
them: the Celery worker (French, LANGUAGE_CODE) or a management command (English)."""

from __future__ import annotations

import contextlib
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import translation

from backups.models import Backup, BackupStatus, BackupVerification
from backups.tasks import DrillFailed, run_backup, run_restore_drill
from okada.core.models import JobRun
from okada.health.models import Alert
from okada.health.services import alerts_evaluate
from tests.backups.factories import BackupFactory
from tests.languages import reads_in_its_language

pytestmark = pytest.mark.django_db(transaction=True)

CHECKSUM = ("Somme de contrôle différente", "Checksum mismatch")
STOPPED = ("L\u2019exécution s\u2019est arrêtée avant la fin", "The run stopped before it finished")


def by_the_french_worker(task, **kwargs) -> None:
    with translation.override("fr"), contextlib.suppress(DrillFailed):  # as a Celery worker runs it
        task(**kwargs)


def by_the_english_command(*args: str) -> None:
    with contextlib.suppress(CommandError):
        call_command(*args, stdout=StringIO())


@pytest.mark.parametrize("writer", ["worker", "command"])
def test_a_failed_drill_reads_in_the_viewers_language_whoever_ran_it(writer, client, admin_user):
    backup = BackupFactory(with_file=True, sha256="ab" * 32)  # its file does not match its checksum
    if writer == "worker":
        by_the_french_worker(run_restore_drill, backup_id=str(backup.pk))
    else:
        by_the_english_command("verify_backup", str(backup.pk))
    drill = BackupVerification.objects.get()
    run = JobRun.objects.get(name="backups.run_restore_drill")
    assert run.outcome == JobRun.Outcome.FAILED
    with translation.override("fr" if writer == "worker" else "en"):
        alerts_evaluate(kinds=["drill_failed"])
    assert Alert.objects.filter(kind="drill_failed").exists()

    client.force_login(admin_user)
    for url in (
        "/admin/backups/backupverification/",
        f"/admin/backups/backupverification/{drill.pk}/change/",
        f"/admin/backups/backup/{backup.pk}/change/",  # the drills inline
        f"/admin/core/jobrun/{run.pk}/change/",  # its error and its summary
        "/admin/health/alert/",
        f"/admin/health/alert/{Alert.objects.get().pk}/change/",
        "/admin/",  # the alert banner, the dashboard
    ):
        reads_in_its_language(client, url, *CHECKSUM)
    for language, (says, not_that) in {"fr": CHECKSUM, "en": CHECKSUM[::-1]}.items():  # /readyz, to staff
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        detail = client.get("/readyz", HTTP_ACCEPT_LANGUAGE=language).json()["checks"]["backup"]["detail"]
        assert says in detail and not_that not in detail, (language, detail)


@pytest.mark.parametrize("writer", ["worker", "command"])
def test_an_interrupted_backup_reads_in_the_viewers_language_whoever_recovered_it(writer, client, admin_user):
    stale = BackupFactory(status=BackupStatus.RUNNING)  # as a killed worker leaves it
    if writer == "worker":
        by_the_french_worker(run_backup)
    else:
        by_the_english_command("backup")
    stale.refresh_from_db()
    assert stale.status == BackupStatus.FAILED
    assert Backup.objects.filter(status=BackupStatus.COMPLETE).count() == 1

    client.force_login(admin_user)
    reads_in_its_language(client, f"/admin/backups/backup/{stale.pk}/change/", *STOPPED)
