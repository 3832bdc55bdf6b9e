"""`manage.py backup`: take a backup now (then apply retention), as the nightly job does."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from backups.models import BackupKind
from backups.tasks import steps
from okada.core.jobs import JobSkipped, job


class Command(BaseCommand):
    help = "Back up the whole database to OKADA_BACKUP_DIR (pg_dump custom format), then apply retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kind",
            choices=BackupKind.values,
            default=BackupKind.MANUAL,
            help="what the catalog records it as (default: manual)",
        )
        parser.add_argument(
            "--if-migrations-pending",
            action="store_true",
            help="only when migrations are pending on a database that already has some applied "
            "(make migrate: a backup before migrating)",
        )
        parser.add_argument(
            "--if-stale",
            action="store_true",
            help="only when no verified backup is younger than OKADA_BACKUP_MAX_AGE_HOURS (make run)",
        )
        parser.add_argument("--verify", action="store_true", help="run a restore drill of it afterwards")

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_migrations_pending"] and not self._migrations_pending():
            return
        if options["if_stale"]:
            from backups.selectors import backup_status

            status = backup_status()
            if status.newest_verified is not None and not status.too_old:
                return
        from backups.services import BACKUP_JOB, backup_and_prune

        try:
            with job(BACKUP_JOB) as run:
                run.summary = backup_and_prune(kind=options["kind"], on_step=steps(run, self._say))
        except JobSkipped:
            raise CommandError("another backup is running: try again when it has finished") from None
        except Exception as exc:
            raise CommandError(f"backup failed: {exc}") from None
        if options["verify"]:
            call_command("verify_backup", run.summary["backup"], stdout=self.stdout, stderr=self.stderr)

    def _say(self, message: str) -> None:
        self.stdout.write(f"[backup] {message}")

    def _migrations_pending(self) -> bool:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        applied = executor.loader.applied_migrations
        if not applied:
            return False  # a new, empty database: nothing to protect
        if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return False
        if ("backups", "0001_initial") not in applied:
            # The catalog's own tables come first: they change nothing else.
            self._say("creating the backup catalog's tables before the pre-migration backup")
            call_command("migrate", "backups", verbosity=0)
        self._say("migrations are pending: backing up first")
        return True
