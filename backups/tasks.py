"""Backup and restore-drill jobs: thin tasks that call the services inside `job()`.

Both are `acks_late`: a task whose worker dies is delivered again and its rerun finishes the work.
The Celery task id is passed as `request_id`, so a rerun of a task that had in fact finished
returns the backup (or drill) it made instead of making a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task, shared_task
from django.utils.translation import gettext_lazy as _

from okada.core.jobs import JobFailed, RunHandle, job, labelled, started_by_hand_with
from okada.core.texts import Text

from .models import BackupKind
from .services import RUN_PERMISSION

log = logging.getLogger(__name__)


class DrillFailed(JobFailed):
    """Raised after a failed drill is recorded, so its job run and task are marked failed too
    (with the drill's error: the drill ran to its end, nothing crashed)."""


def steps(run: RunHandle, say: Callable[[str], None] = log.info) -> Callable[[str], None]:
    """The services' `on_step` inside a job: say the step, and stop there if the job lost its
    lock (each step is a safe point: another run may have started)."""

    def on_step(message: str) -> None:
        say(message)
        run.check()

    return on_step


@labelled(
    _("Database backup"),
    backup=_("backup"),
    file=_("file"),
    size_bytes=_("size (bytes)"),
    pruned=_("old backups deleted"),
)
@started_by_hand_with(RUN_PERMISSION)
@shared_task(name="backups.run_backup", acks_late=True, bind=True)
def run_backup(self: Task, kind: str = BackupKind.SCHEDULED) -> None:
    from .services import BACKUP_JOB, backup_and_prune

    with job(BACKUP_JOB) as run:
        run.summary = backup_and_prune(kind=kind, request_id=self.request.id or "", on_step=steps(run))


@labelled(
    _("Restore drill"),
    backup=_("backup"),
    outcome=_("outcome"),
    restore_seconds=_("restore (seconds)"),
    checks=_("checks"),
    error=_("error"),
    # the drill's checks (the invariants keep their names: the audit job and the logs use them)
    rows=_("rows"),
    tables=_("tables"),
    checksum=_("checksum"),
    invariants=_("invariants"),
    count_differences=_("row count differences"),
)
@started_by_hand_with(RUN_PERMISSION)
@shared_task(name="backups.run_restore_drill", acks_late=True, bind=True)
def run_restore_drill(self: Task, backup_id: str | None = None) -> None:
    from .models import Backup
    from .services import DRILL_JOB, backup_verify, drill_summary

    with job(DRILL_JOB) as run:
        backup = Backup.objects.get(pk=backup_id) if backup_id else None
        verification = backup_verify(backup=backup, request_id=self.request.id or "", on_step=steps(run))
        run.summary = drill_summary(verification)
        if verification is not None and verification.error:
            raise DrillFailed(Text.load(verification.error))
