"""`manage.py migrate` with every lock wait bounded (OKADA_MIGRATE_LOCK_TIMEOUT).

A migration that needs a lock (ALTER TABLE: ACCESS EXCLUSIVE; CREATE TRIGGER: SHARE ROW
EXCLUSIVE) queues behind a long transaction that holds a conflicting one, and every writer of the
table queues behind the migration: without a bound, an outage for as long as that transaction
lasts. Here the session's `lock_timeout` bounds the wait; when it expires the migration's
transaction is rolled back (it stays unapplied) and the command stops with one sentence saying
which migration, why and what to do, instead of a traceback.

The bound is the session's, so non-atomic migrations get it too, except the CONCURRENTLY index
builds and drops of okada.core.operations, which lift it (no writer waits behind them).
Django's own `migrate` does the rest unchanged; the test database is created through this
command as well.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, no_translations
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import OperationalError, connections
from django.db.migrations import Migration

from okada.core.db import is_lock_timeout, session_lock_timeout


class Command(DjangoMigrate):
    help = (
        DjangoMigrate.help + " A lock not granted within OKADA_MIGRATE_LOCK_TIMEOUT seconds stops "
        "the command, the migration that waited unapplied."
    )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        seconds = float(settings.OKADA_MIGRATE_LOCK_TIMEOUT)
        milliseconds = int(seconds * 1000)
        if milliseconds < 1:
            raise CommandError(
                f"OKADA_MIGRATE_LOCK_TIMEOUT={seconds:g}: it must be more than 0 seconds "
                "(PostgreSQL reads 0 as no limit: a migration would wait forever, writers behind it)."
            )
        self._running: tuple[str, Migration] | None = None
        try:
            with session_lock_timeout(connections[options["database"]], milliseconds):
                super().handle(*args, **options)
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            raise CommandError(self._lock_not_granted(seconds)) from None

    def migration_progress_callback(self, action: str, migration: Any = None, fake: bool = False) -> None:
        if action in ("apply_start", "unapply_start"):
            self._running = (action, migration)
        elif action in ("apply_success", "unapply_success"):
            self._running = None
        super().migration_progress_callback(action, migration, fake)

    def _lock_not_granted(self, seconds: float) -> str:
        waited = (
            f"a lock it needs was not granted within {seconds:g} s (OKADA_MIGRATE_LOCK_TIMEOUT): another "
            "session holds a conflicting lock on one of its tables (a long transaction or query)."
        )
        todo = (
            " Find that session in pg_stat_activity (or Admin > Database health > Activity, which "
            "shows who blocks whom), let it finish or end it, then run migrate again."
        )
        if self._running is None:
            return f"migrate stopped: {waited}{todo}"
        action, migration = self._running
        done = "applied" if action == "apply_start" else "unapplied"
        if migration.atomic:
            undone = " Its changes were rolled back."
        else:
            undone = (
                " It is not atomic: its steps before that one stay done, and running migrate again "
                "goes on from there."
            )
        if self.verbosity >= 1:
            self.stdout.write("")  # ends the "Applying <migration>..." line
        return f"Migration {migration.app_label}.{migration.name} was not {done}: {waited}{undone}{todo}"
