"""manage.py backup, verify_backup and restore_backup, run as operators run them."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import translation

from backups import pg
from backups.models import Backup, BackupKind, BackupStatus, VerificationOutcome
from backups.services import backup_path, backup_restore, backup_run
from okada.core.models import JobRun
from okada.core.texts import english, shown
from tests.backups.helpers import ROOT, WAIT, flip_a_byte, marketplace
from tests.concurrency import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_backup_prints_progress_records_a_manual_backup_and_logs_a_job_run():
    marketplace()
    out = run("backup")
    backup = Backup.objects.get()
    assert (backup.kind, backup.status) == (BackupKind.MANUAL, BackupStatus.COMPLETE)
    assert f"[backup] backing up to {backup_path(backup)}" in out
    assert f"[backup] backup {backup.pk} complete" in out  # the id verify_backup and restore_backup take
    job_run = JobRun.objects.get(name="backups.run_backup")
    assert job_run.outcome == JobRun.Outcome.SUCCESS
    assert job_run.summary is not None and job_run.summary["backup"] == str(backup.pk)


def test_backup_before_migrations_only_when_a_migration_is_pending():
    run("backup", "--kind", "pre_migration", "--if-migrations-pending")
    assert not Backup.objects.exists()

    call_command("migrate", "testapp", "zero", verbosity=0)
    try:
        out = run("backup", "--kind", "pre_migration", "--if-migrations-pending")
    finally:
        call_command("migrate", "testapp", verbosity=0)
    assert "migrations are pending: backing up first" in out
    backup = Backup.objects.get()
    assert (backup.kind, backup.status) == (BackupKind.PRE_MIGRATION, BackupStatus.COMPLETE)


def test_backup_if_stale_takes_and_verifies_one_only_when_none_verified_is_recent():
    out = run("backup", "--if-stale", "--verify")
    assert "[drill] restore drill passed" in out
    backup = Backup.objects.get()
    assert backup.verifications.get().outcome == VerificationOutcome.PASSED

    assert run("backup", "--if-stale", "--verify") == ""
    assert Backup.objects.count() == 1


def test_verify_backup_fails_loudly_on_a_corrupted_backup():
    marketplace()
    run("backup")
    backup = Backup.objects.get()
    flip_a_byte(backup_path(backup))

    with pytest.raises(CommandError, match="restore drill FAILED: Checksum mismatch"):
        run("verify_backup", str(backup.pk))
    job_run = JobRun.objects.get(name="backups.run_restore_drill")  # failed, as the task's run
    assert job_run.outcome == JobRun.Outcome.FAILED
    assert english(job_run.error).startswith("Checksum mismatch")
    assert backup.verifications.get().outcome == VerificationOutcome.FAILED


def test_restore_backup_refuses_a_non_empty_target_without_force_and_replaces_it_with_force():
    target = "okada_test_restore_command"
    marketplace()
    run("backup")
    backup = Backup.objects.get()
    pg.drop_database(target)
    try:
        out = run("restore_backup", str(backup.pk), "--target", target)
        assert f"[restore] creating the database {target}" in out
        assert "[restore] done:" in out
        with pytest.raises(CommandError, match="use --force to replace it"):
            run("restore_backup", str(backup.pk), "--target", target)
        out = run("restore_backup", str(backup.pk), "--target", target, "--force")
        assert "--force: dropping and re-creating" in out
        assert "table data 1/" in out
    finally:
        pg.drop_database(target)


@pytest.mark.parametrize(
    "made_by_hand",
    [
        "CREATE FUNCTION kept() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TYPE kept AS ENUM ('a', 'b')",
        "CREATE SCHEMA kept",
    ],
)
def test_restore_backup_refuses_a_target_holding_no_table_but_other_objects_without_force(made_by_hand):
    """Not empty is not only tables: a function, a type or a schema someone made is theirs too.
    Restored over, it was mixed with the backup's objects (or the restore failed half-way on a
    name the backup also has), without --force."""
    target = "okada_test_restore_not_empty"
    marketplace()
    run("backup")
    backup = Backup.objects.get()
    pg.drop_database(target)
    pg.create_database(target)
    try:
        with pg.database_alias(target) as alias, connections[alias].cursor() as cursor:
            cursor.execute(made_by_hand)
        with pytest.raises(CommandError, match="use --force to replace it"):
            run("restore_backup", str(backup.pk), "--target", target)
        with pg.database_alias(target) as alias:
            assert pg.user_objects(alias) == 1  # what was there, and nothing restored
        out = run("restore_backup", str(backup.pk), "--target", target, "--force")
        assert "[restore] done:" in out
    finally:
        pg.drop_database(target)


def test_a_database_restored_from_a_backup_is_recognised_by_the_sync_feed_state():
    """restore_backup re-creates every table, the sync feed state's too (another oid): the copy's
    first pull starts the feed afresh (sync.services.generation_current), whatever the database's
    name or oid, so devices download again instead of keeping rows the backup does not have."""
    from sync.services import _STATE, _numbered_elsewhere, generation_current

    target = "okada_test_restore_sync"
    marketplace()
    generation_current()  # a pull records where the feed state lives
    run("backup")
    backup = Backup.objects.get()
    pg.drop_database(target)
    try:
        run("restore_backup", str(backup.pk), "--target", target)
        with connections["default"].cursor() as cursor:
            cursor.execute(_STATE)
            assert not _numbered_elsewhere(cursor.fetchone())
        with pg.database_alias(target) as alias, connections[alias].cursor() as cursor:
            cursor.execute(_STATE)
            restored = cursor.fetchone()
        assert restored[3] is not None  # the home the backup recorded
        assert restored[3].split(":")[1] != restored[4].split(":")[1]  # the table is another one
        assert _numbered_elsewhere(restored)
    finally:
        pg.drop_database(target)


def test_verify_backup_of_a_pruned_backup_says_what_to_do_in_one_sentence_without_a_traceback(backup_dir):
    # What an operator sees on the terminal: the job's log line of the refusal, with its
    # traceback, came before the command's error.
    run("backup")
    pruned = Backup.objects.get()
    backup_path(pruned).unlink()
    Backup.objects.filter(pk=pruned.pk).update(status=BackupStatus.PRUNED)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "okada.settings.test",
        "DATABASE_URL": database_url(),
        "OKADA_BACKUP_DIR": str(backup_dir),
    }

    done = subprocess.run(
        [sys.executable, "manage.py", "verify_backup", str(pruned.pk)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == (
        f"CommandError: Backup {pruned.pk} was pruned: retention deleted its file, so it cannot be "
        "verified. Verify a complete backup instead."
    )
    assert not pruned.verifications.exists()
    assert not JobRun.objects.filter(name="backups.run_restore_drill").exists()  # no job ran


def test_restore_backup_names_a_missing_backup():
    with pytest.raises(CommandError, match="no backup 01234567-0123-0123-0123-0123456789ab"):
        run("restore_backup", "01234567-0123-0123-0123-0123456789ab", "--target", "okada_nothing")


@pytest.mark.parametrize("command", [("verify_backup",), ("restore_backup", "--target", "okada_nothing")])
def test_a_backup_id_that_is_not_a_uuid_is_a_usage_error_in_english_not_a_traceback(command):
    # An operator pasting a file name or a typo gets one line, as for an unknown id.
    with translation.override("fr"), pytest.raises(CommandError, match="invalid UUID value: 'nope'"):
        run(command[0], "nope", *command[1:])


def test_backup_into_a_path_that_is_not_a_directory_says_so_and_what_to_do(settings, tmp_path):
    settings.OKADA_BACKUP_DIR = tmp_path / "a-file"
    settings.OKADA_BACKUP_DIR.write_text("not a directory")

    with pytest.raises(CommandError) as refused:
        run("backup")

    message = str(refused.value)
    assert f"OKADA_BACKUP_DIR ({settings.OKADA_BACKUP_DIR}) cannot be used" in message
    assert "Point OKADA_BACKUP_DIR at a directory" in message
    assert not Backup.objects.filter(status=BackupStatus.COMPLETE).exists()


def test_an_unusable_backup_dir_fails_the_job_run_with_its_sentence_not_a_traceback(
    settings, tmp_path, caplog
):
    # An operator's mistake, not a crash: the job run keeps the sentence (shown in each reader's
    # language) and the log says it in one line, as for a failed drill.
    settings.OKADA_BACKUP_DIR = tmp_path / "a-file"
    settings.OKADA_BACKUP_DIR.write_text("not a directory")

    with pytest.raises(CommandError):
        run("backup")

    (failed,) = JobRun.objects.filter(name="backups.run_backup", outcome=JobRun.Outcome.FAILED)
    assert "Traceback" not in failed.error
    assert english(failed.error).startswith(f"OKADA_BACKUP_DIR ({settings.OKADA_BACKUP_DIR}) cannot be used")
    with translation.override("fr"):
        assert "OKADA_BACKUP_DIR" in shown(failed.error) and "cannot be used" not in shown(failed.error)
    (logged,) = [r for r in caplog.records if r.name == "okada.core.jobs" and r.levelname == "ERROR"]
    assert logged.exc_info is None and "cannot be used" in logged.getMessage()


def test_a_full_disk_fails_the_backup_with_a_message_naming_the_directory(monkeypatch, backup_dir):
    copy = pg._copy

    def copy_then_disk_full(source, out):
        copy(source, out)  # the whole dump went through the pipe: pg_dump ends normally
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pg, "_copy", copy_then_disk_full)

    with pytest.raises(CommandError) as refused:
        run("backup")

    message = str(refused.value)
    assert f"No space left on the disk of OKADA_BACKUP_DIR ({backup_dir})" in message
    assert "Free some space" in message
    backup = Backup.objects.get()
    assert backup.status == BackupStatus.FAILED and "No space left" in backup.error
    assert list(backup_dir.iterdir()) == []


def test_restore_backup_with_force_replaces_the_database_it_runs_on(backup_dir):
    # The database the command is connected to is the one it replaces: it cannot drop it from a
    # session of its own, so it must work from the server's maintenance database.
    live = "okada_test_live_restore"
    pg.drop_database(live)
    try:
        marketplace()
        backup = Backup.objects.get(pk=run_backup_and_get_id())
        backup_restore(backup=backup, target=live)  # a "live" database holding the backup's catalog
        with pg.database_alias(live) as alias, connections[alias].cursor() as cursor:
            cursor.execute("DELETE FROM orders_orderitem")  # a change the restore must undo
        url = database_url().rsplit("/", 1)[0] + f"/{live}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "okada.settings.test",
            "DATABASE_URL": url,
            "OKADA_BACKUP_DIR": str(backup_dir),
        }
        done = subprocess.run(
            [sys.executable, "manage.py", "restore_backup", str(backup.pk), "--target", live, "--force"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert done.returncode == 0, done.stderr
        assert "as in the manifest" in done.stdout
        with pg.database_alias(live) as alias, connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders_orderitem")
            assert cursor.fetchone()[0] == backup.manifest["public.orders_orderitem"] > 0
    finally:
        connections.close_all()
        pg.drop_database(live)


def run_backup_and_get_id() -> str:
    run("backup")
    return str(Backup.objects.get(status=BackupStatus.COMPLETE).pk)


def test_the_commands_print_english_in_a_french_installation():
    # manage.py activates no language, so Django would translate into LANGUAGE_CODE ("fr"): the
    # services' messages (the drill's error, the target refused) came out French inside the
    # commands' English lines.
    marketplace()
    run("backup")
    backup = Backup.objects.get()
    flip_a_byte(backup_path(backup))
    translation.deactivate()
    assert translation.get_language() == "fr"

    with pytest.raises(CommandError) as refused:
        run("verify_backup", str(backup.pk))
    assert str(refused.value).startswith("restore drill FAILED: Checksum mismatch: the file's SHA-256 is ")
    with pytest.raises(CommandError) as refused:
        run("restore_backup", str(backup.pk), "--target", connections["default"].settings_dict["NAME"])
    assert str(refused.value).startswith("Checksum mismatch: the file's SHA-256 is ")


def test_restore_backup_reconciles_the_restored_catalog_with_the_backup_directory(backup_dir):
    # The restored catalog is the snapshot's: backups pruned since were still listed complete (a
    # drill of one failed on a missing file), and backups taken since were not listed at all.
    target = "okada_test_restore_reconcile"
    marketplace()
    old, changed = backup_run(kind=BackupKind.MANUAL), backup_run(kind=BackupKind.MANUAL)
    snapshot = Backup.objects.get(pk=run_backup_and_get_new_id())  # then retention prunes the two
    assert {b.status for b in Backup.objects.filter(pk__in=[old.pk, changed.pk])} == {BackupStatus.PRUNED}
    backup_path(changed).write_bytes(b"not the dump any more")
    later = backup_run(kind=BackupKind.MANUAL)  # after the snapshot
    pg.drop_database(target)
    try:
        out = run("restore_backup", str(snapshot.pk), "--target", target)
        assert (
            f"[restore] catalog reconciled with {backup_dir}: 2 backup(s) the snapshot listed as "
            "complete no longer are (1 file(s) gone: marked pruned; 1 file(s) of another size: "
            "marked failed)"
        ) in out
        assert f"[restore] 1 backup file(s) in {backup_dir} are not in the restored catalog" in out
        assert later.file_name in out
        with pg.database_alias(target) as alias:
            rows = {b.pk: b for b in Backup.objects.using(alias).all()}
            assert list(Backup.objects.using(alias).complete()) == [rows[snapshot.pk]]
        assert rows[old.pk].status == BackupStatus.PRUNED and rows[old.pk].pruned_at is not None
        assert rows[changed.pk].status == BackupStatus.FAILED
        assert "it was changed or cut" in english(rows[changed.pk].error)
        assert later.pk not in rows and backup_path(later).exists()  # listed, never deleted
    finally:
        connections.close_all()
        pg.drop_database(target)


def run_backup_and_get_new_id() -> str:
    known = set(Backup.objects.values_list("pk", flat=True))
    run("backup")
    return str(Backup.objects.exclude(pk__in=known).get(status=BackupStatus.COMPLETE).pk)
