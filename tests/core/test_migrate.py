"""`manage.py migrate` waits for a lock at most OKADA_MIGRATE_LOCK_TIMEOUT: behind a long
transaction it stops with a sentence, the migration unapplied, instead of queueing every writer
behind it for as long as that transaction lasts. (Non-atomic migrations, CREATE INDEX
CONCURRENTLY, run through this command too: tests/core/test_operations.py migrates testapp's
0005 back and forth.)"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.recorder import MigrationRecorder

from tests.concurrency import WAIT, a_lock_is_awaited, in_thread, poll

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, MIGRATION = "0005_index_budget", "0006_data_dictionary"  # 0006: COMMENT ON, atomic


def applied(name: str) -> bool:
    return ("testapp", name) in MigrationRecorder(connection).applied_migrations()


def table_comment(table: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description(%s::regclass, 'pg_class')", [table])
        return cursor.fetchone()[0]


def lock_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        return cursor.fetchone()[0]


def test_a_migration_behind_a_long_transaction_stops_unapplied_with_a_sentence(settings):
    settings.OKADA_MIGRATE_LOCK_TIMEOUT = 0.5
    call_command("migrate", "testapp", BEFORE, verbosity=0)
    book_comment = table_comment("testapp_historicalbook")  # 0006 comments it first
    session_lock_timeout = lock_timeout()
    holder = connections.create_connection(DEFAULT_DB_ALIAS)  # the long transaction
    messages: list[str] = []

    def migrate() -> None:
        try:
            call_command("migrate", "testapp", MIGRATION, stdout=StringIO())
        except CommandError as exc:
            messages.append(str(exc))

    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE testapp_historicalshelf IN SHARE MODE")  # as CREATE INDEX holds
            thread, errors = in_thread(migrate)
            try:
                # Without a bound, migrate waits as long as the transaction lasts (here: until the
                # deadline below, then the test releases it).
                poll(lambda: not thread.is_alive(), "migrate to give up waiting for the lock", WAIT)
            finally:
                cursor.execute("ROLLBACK")
                thread.join(WAIT)
        assert errors == []
        (message,) = messages
        assert message.startswith(
            f"Migration testapp.{MIGRATION} was not applied: a lock it needs was not granted within "
            "0.5 s (OKADA_MIGRATE_LOCK_TIMEOUT)"
        )
        assert "Its changes were rolled back." in message
        assert "pg_stat_activity" in message and "run migrate again" in message
        assert not applied(MIGRATION)
        assert table_comment("testapp_historicalbook") == book_comment  # the first COMMENT undone
        assert not a_lock_is_awaited()

        call_command("migrate", "testapp", verbosity=0)  # the lock released: it goes through
        assert applied(MIGRATION)
        assert lock_timeout() == session_lock_timeout  # the session's own setting is back
        assert table_comment("testapp_historicalbook") != book_comment
    finally:
        holder.close()
        call_command("migrate", "testapp", verbosity=0)


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_lock_timeout_of_no_time_is_refused(settings, seconds):
    settings.OKADA_MIGRATE_LOCK_TIMEOUT = seconds
    with pytest.raises(CommandError, match=r"OKADA_MIGRATE_LOCK_TIMEOUT=.*more than 0 seconds"):
        call_command("migrate", verbosity=0)


def test_a_concurrent_index_drop_waits_for_an_older_transaction_past_the_bound(settings):
    """DROP/CREATE INDEX CONCURRENTLY queue no writer; they wait for older transactions (a nightly
    pg_dump): migrate's bound is lifted for them, so such a wait ends in the migration applied."""
    settings.OKADA_MIGRATE_LOCK_TIMEOUT = 0.2
    before, budget = "0004_labels", "0005_index_budget"  # 0005 drops indexes CONCURRENTLY first
    call_command("migrate", "testapp", before, verbosity=0)
    holder = connections.create_connection(DEFAULT_DB_ALIAS)  # an older transaction on the table
    messages: list[str] = []

    def migrate() -> None:
        try:
            call_command("migrate", "testapp", budget, verbosity=0)
        except CommandError as exc:
            messages.append(str(exc))

    def waiting_past_the_bound() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'DROP INDEX CONCURRENTLY%%'"
                " AND wait_event_type = 'Lock' AND now() - query_start > interval '1 second')"
            )
            return bool(cursor.fetchone()[0])

    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT count(*) FROM testapp_shelf")
            thread, errors = in_thread(migrate)
            try:
                poll(lambda: waiting_past_the_bound() or not thread.is_alive(), "the drop to wait", WAIT)
            finally:
                cursor.execute("ROLLBACK")
                thread.join(WAIT)
        assert errors == [] and messages == []
        assert applied(budget)
    finally:
        holder.close()
        call_command("migrate", "testapp", verbosity=0)
