"""`manage.py restore_backup <id> --target <db> [--force]`: restore a backup on purpose."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations

from backups.models import Backup
from okada.core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Restore a backup into the database TARGET on the same server. Checks the file's SHA-256 "
        "first; refuses a target that is not empty unless --force (which drops and re-creates it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "backup_id", type=uuid.UUID, help="the backup's id (Backups > Backups in the admin)"
        )
        parser.add_argument("--target", required=True, help="database name (created when missing)")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace a non-empty target (ends its sessions, drops it); it may be the database "
            "the app runs on: stop the web, worker and beat first, later backups leave its catalog",
        )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        from backups.pg import ToolError
        from backups.services import backup_restore

        backup = Backup.objects.filter(pk=options["backup_id"]).first()
        if backup is None:
            raise CommandError(f"no backup {options['backup_id']}")
        try:
            restored = backup_restore(
                backup=backup, target=options["target"], force=options["force"], on_step=self._say
            )
        except (DomainError, ToolError) as exc:
            raise CommandError(str(exc)) from None
        if restored.count_differences:
            raise CommandError(
                f"restored, but row counts differ from the manifest: {restored.count_differences}"
            )
        self._say(
            f"done: {restored.tables} tables, {restored.rows:,} rows, as in the manifest "
            f"({restored.seconds:.1f} s)"
        )
        reconciled = len(restored.marked_pruned) + len(restored.marked_failed)
        self._say(
            f"catalog reconciled with {settings.OKADA_BACKUP_DIR}: {reconciled} backup(s) the "
            f"snapshot listed as complete no longer are ({len(restored.marked_pruned)} file(s) "
            f"gone: marked pruned; {len(restored.marked_failed)} file(s) of another size: marked failed)"
        )
        if restored.unknown_files:
            self._say(
                f"{len(restored.unknown_files)} backup file(s) in {settings.OKADA_BACKUP_DIR} are not "
                "in the restored catalog (taken after this backup): kept, not catalogued; restore "
                f"one by hand if needed (README, Backups): {', '.join(restored.unknown_files)}"
            )

    def _say(self, message: str) -> None:
        self.stdout.write(f"[restore] {message}")
