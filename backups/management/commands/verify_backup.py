"""`manage.py verify_backup [<id>]`: a restore drill now, as the daily job does."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations

from backups.models import Backup
from backups.tasks import DrillFailed, steps
from okada.core.jobs import JobSkipped, job
from okada.core.texts import Text


class Command(BaseCommand):
    help = (
        "Restore a backup (default: the newest) into a scratch database, check its row counts and "
        "invariants, record the result, drop the scratch database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "backup_id", nargs="?", type=uuid.UUID, help="the backup's id (default: the newest complete one)"
        )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        from backups.services import (
            DRILL_JOB,
            BackupNotRestorable,
            backup_verifiable,
            backup_verify,
            drill_summary,
        )

        backup = None
        if options["backup_id"]:
            backup = Backup.objects.filter(pk=options["backup_id"]).first()
            if backup is None:
                raise CommandError(f"no backup {options['backup_id']}")
            try:
                backup_verifiable(backup)  # before the job: a wrong id is no failed job run
            except BackupNotRestorable as exc:
                raise CommandError(str(exc)) from None
        try:
            with job(DRILL_JOB) as run:
                verification = backup_verify(backup=backup, on_step=steps(run, self._say))
                run.summary = drill_summary(verification)
                if verification is not None and verification.error:  # its job run fails too, as the task's
                    raise DrillFailed(Text.load(verification.error))
        except JobSkipped:
            raise CommandError("another restore drill is running: try again when it has finished") from None
        except DrillFailed as exc:
            raise CommandError(f"restore drill FAILED: {exc}") from None
        except Exception as exc:
            raise CommandError(f"restore drill failed to run: {exc}") from None
        if verification is None:
            self._say("no backup to verify")
            return
        self._say(f"restore drill passed: restored in {verification.restore_seconds:.1f} s")

    def _say(self, message: str) -> None:
        self.stdout.write(f"[drill] {message}")
