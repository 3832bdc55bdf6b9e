"""Every write of the backups app: take a backup, apply retention, run a restore drill, restore on
purpose, and queue backups and drills for staff.

A backup is a file under OKADA_BACKUP_DIR with a `Backup` row. The file gets its final name only
once it is complete, fsynced and checksummed, so a name without `.partial` always means a whole
dump; a run that fails or dies leaves a `.partial` (deleted on failure, or by the next run) and a
row marked failed. Each complete file has two small companions: `<file>.sha256` (for `sha256sum
-c`) and `<file>.json` (the row: checksum, versions, row counts), so a backup can be checked and
restored by hand even when the database that catalogued it is gone.
"""

from __future__ import annotations

import errno
import getpass
import json
import logging
import os
import re
import zoneinfo
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy, gettext_noop

from okada.core.actors import Actor
from okada.core.db import reconnect_if_broken
from okada.core.errors import Conflict, InvalidInput
from okada.core.files import fsync_dir, owner_only_directory
from okada.core.jobs import JobFailed, advisory_lock
from okada.core.texts import Text, shown, text_of
from orders.audit import invariant_audit

from . import pg, retention
from .models import Backup, BackupKind, BackupStatus, BackupVerification, VerificationOutcome
from .pg import Step, quiet
from .selectors import CLOCK_SKEW

log = logging.getLogger(__name__)

BACKUP_JOB = "backups.run_backup"
DRILL_JOB = "backups.run_restore_drill"
RUN_PERMISSION = "backups.run_backup"
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")  # what restore_backup accepts as --target
LOCK_WAIT_SECONDS = 30.0  # a drill waits this long for retention to finish pruning its backup


class BackupNotRestorable(Conflict):
    code = "backup_not_restorable"
    default_message = gettext_lazy("This backup cannot be restored.")


class TargetNotEmpty(Conflict):
    code = "target_not_empty"
    default_message = gettext_lazy("The target database is not empty.")


# --- files ------------------------------------------------------------------------------------


class BackupDirUnusable(JobFailed):
    """OKADA_BACKUP_DIR cannot hold the backup (not a directory, not writable, full); the
    message says which directory and what to do. An operator's matter, not a crash: the job run
    keeps this sentence (no traceback), as for a failed drill."""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for our uid
        return f"uid {os.getuid()}"


def backup_dir() -> Path:
    directory = Path(settings.OKADA_BACKUP_DIR)
    try:
        owner_only_directory(directory)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory))
    except OSError as exc:
        raise BackupDirUnusable(
            Text(
                gettext_noop(
                    "OKADA_BACKUP_DIR (%(dir)s) cannot be used: %(why)s. Point OKADA_BACKUP_DIR at a "
                    "directory the user %(user)s can create or write."
                ),
                dir=str(directory),
                why=exc.strerror or str(exc),
                user=_user(),
            )
        ) from exc
    return directory


def backup_path(backup: Backup) -> Path:
    return Path(settings.OKADA_BACKUP_DIR) / backup.file_name


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + ".sha256"), path.with_name(path.name + ".json")]


def _file_name(backup: Backup) -> str:
    stamp = backup.started_at.astimezone(zoneinfo.ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".dump.gpg" if backup.encrypted else ".dump"
    return f"okada-{stamp}-{backup.kind}-{backup.pk.hex[-8:]}{suffix}"


def _write_atomically(path: Path, text: str) -> None:
    temporary = _partial(path)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _remove_files(path: Path) -> None:
    for leftover in (path, _partial(path), *_companions(path), *map(_partial, _companions(path))):
        leftover.unlink(missing_ok=True)


def _remove_files_after_failure(path: Path) -> None:
    """`_remove_files` when a run failed: a file that cannot be deleted (the disk went read-only)
    is logged, never raised, so the row is still marked failed with the cause. What is left is a
    `.partial` or a companion: nothing that looks like a whole backup (the rename never ran)."""
    try:
        _remove_files(path)
    except OSError as exc:
        log.warning("could not delete the files of a failed backup (%s): delete %s.* by hand", exc, path)


def _describe(exc: BaseException) -> Text:
    """Why a run failed, as stored: our own sentence (translated when shown), or what a library
    said, verbatim, after the exception's type."""
    if isinstance(exc, (pg.ToolError, BackupDirUnusable, DrillProblem)):
        return text_of(exc)
    return Text(f"{type(exc).__name__}: {exc}")


def _no_space(directory: Path) -> BackupDirUnusable:
    return BackupDirUnusable(
        Text(
            gettext_noop(
                "No space left on the disk of OKADA_BACKUP_DIR (%(dir)s): the partial dump was deleted. "
                "Free some space there or point OKADA_BACKUP_DIR at a larger disk, then back up again."
            ),
            dir=str(directory),
        )
    )


# --- backup -----------------------------------------------------------------------------------


def backup_run(*, kind: str, request_id: str = "", on_step: Step = quiet) -> Backup:
    """Dump the whole database into OKADA_BACKUP_DIR and catalog it; return the complete Backup.

    Run it inside `job(BACKUP_JOB)` (one backup at a time). Rows left `running` by a run that died
    are marked failed first and their files removed. A task redelivered after its backup completed
    (`request_id`, the Celery task id) returns that backup instead of taking another. On failure
    the row is marked failed with the reason, no file is left, and the error is raised.
    """
    # Recovery first: a run killed just after its rename left its row `running` with a whole file,
    # which recovery marks complete; a redelivery of that run's task then returns it.
    _recover_interrupted_backups(on_step)
    if request_id:
        done = Backup.objects.filter(request_id=request_id, status__in=[BackupStatus.COMPLETE]).first()
        if done is not None:
            on_step(f"backup {done.pk} was already taken for this request")
            return done
    directory = backup_dir()
    passphrase = settings.OKADA_BACKUP_PASSPHRASE
    backup = Backup(kind=kind, request_id=request_id, encrypted=bool(passphrase))
    backup.file_name = _file_name(backup)
    backup.save()
    path = directory / backup.file_name
    on_step(f"backing up to {path}")
    try:
        dump = pg.dump(_partial(path), passphrase=passphrase, on_step=on_step)
        backup.size_bytes, backup.sha256, backup.manifest = dump.size, dump.sha256, dump.manifest
        backup.pg_dump_version, backup.server_version = dump.pg_dump_version, dump.server_version
        _write_atomically(_companions(path)[0], f"{dump.sha256}  {backup.file_name}\n")
        _write_atomically(_companions(path)[1], json.dumps(_describe_backup(backup), indent=2) + "\n")
        on_step(f"dump written: {dump.size:,} bytes, SHA-256 {dump.sha256}")  # a safe point
        os.replace(_partial(path), path)  # last: a complete name means a complete, checksummed file
        fsync_dir(directory)
    except BaseException as exc:
        _remove_files_after_failure(path)
        reconnect_if_broken()  # the failure may be that our session was ended: record it anyway
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            full = _no_space(directory)
            _finish(backup, BackupStatus.FAILED, error=text_of(full))
            raise full from exc
        _finish(backup, BackupStatus.FAILED, error=_describe(exc))
        raise
    _finish(backup, BackupStatus.COMPLETE)
    on_step(
        f"backup {backup.pk} complete: {dump.size:,} bytes, {sum(dump.manifest.values()):,} rows counted"
        " (verify_backup and restore_backup take this id)"
    )
    return backup


def _finish(backup: Backup, status: str, *, error: Text | None = None) -> None:
    backup.status = status
    backup.error = error.stored if error is not None else ""
    backup.finished_at = timezone.now()
    backup.save()


def _describe_backup(backup: Backup) -> dict[str, Any]:
    """What the `.json` companion holds: enough to check and restore the file without the catalog."""
    return {
        "backup_id": str(backup.pk),
        "kind": backup.kind,
        "started_at": backup.started_at.isoformat(),
        "file": backup.file_name,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "encrypted": backup.encrypted,
        "pg_dump_version": backup.pg_dump_version,
        "server_version": backup.server_version,
        "row_counts": backup.manifest,
    }


def _recover_interrupted_backups(on_step: Step) -> None:
    # Called under the backup lock: a row still `running` belongs to a run that died, or it is
    # the row a restored database holds of the very backup it was restored from (its snapshot
    # caught it running). A file under its final name is whole: adopt it, never delete it.
    for backup in Backup.objects.filter(status=BackupStatus.RUNNING):
        if _adopt_finished_file(backup):
            on_step(f"backup {backup.pk}: its file is whole and matches its companions: marked complete")
            continue
        _remove_files(backup_path(backup))
        _finish(
            backup,
            BackupStatus.FAILED,
            error=Text(gettext_noop("The run stopped before it finished (recovered by the next run).")),
        )
        on_step(f"backup {backup.pk} was interrupted: marked failed, its partial file removed")


def _adopt_finished_file(backup: Backup) -> bool:
    """Mark `backup` complete from its `.json` companion when its file has its final name and the
    size and SHA-256 the companion records (written before the rename); False otherwise."""
    path = backup_path(backup)
    try:
        described = json.loads(_companions(path)[1].read_text())
        if described.get("backup_id") != str(backup.pk) or described.get("file") != backup.file_name:
            return False
        if path.stat().st_size != described["size_bytes"] or pg.file_sha256(path) != described["sha256"]:
            return False
    except (OSError, ValueError, KeyError, AttributeError):
        return False
    backup.size_bytes, backup.sha256 = described["size_bytes"], described["sha256"]
    backup.manifest = described.get("row_counts") or {}
    backup.pg_dump_version = described.get("pg_dump_version") or ""
    backup.server_version = described.get("server_version") or ""
    _finish(backup, BackupStatus.COMPLETE)
    return True


def backups_prune(
    *, now: datetime | None = None, keep: Collection[Any] = (), on_step: Step = quiet
) -> list[Backup]:
    """Apply the retention policy (OKADA_BACKUP_KEEP_DAILY/WEEKLY/MONTHLY/PRE_MIGRATION): delete the
    files of the complete backups it does not keep and mark their rows pruned; return them.

    Always kept: the backups whose ids are in `keep` (the one just taken: a backup dated later by
    a clock that was ahead would otherwise be "the newest" in its place), the newest complete
    one (even with every rule set to 0), and the newest verified one whose file is still the one
    its drill restored (size and SHA-256 checked: one whose file changed since is marked failed,
    its file kept for inspection, and the next verified one is kept instead). A backup being
    verified is skipped (its drill holds the backup's lock; pruning takes it too, so the two
    never overlap).
    """
    now = now or timezone.now()
    newest_verified = _newest_intact_verified(on_step)
    candidates = list(Backup.objects.complete().order_by("started_at"))
    kept = retention.to_keep(
        {b.pk: b.started_at for b in candidates},
        retention.Policy.from_settings(),
        zoneinfo.ZoneInfo(settings.TIME_ZONE),
        pre_migration={b.pk for b in candidates if b.kind == BackupKind.PRE_MIGRATION},
    )
    kept.update(keep)
    if candidates:
        kept.add(candidates[-1].pk)
    if newest_verified is not None:
        kept.add(newest_verified.pk)
    pruned = []
    for backup in candidates:
        if backup.pk in kept:
            continue
        with _backup_lock(backup, wait=False) as held:
            if not held:
                on_step(f"backup {backup.pk} is being verified: not pruned this time")
                continue
            backup.refresh_from_db()
            if backup.status != BackupStatus.COMPLETE:
                continue
            _remove_files(backup_path(backup))
            fsync_dir(backup_dir())
            backup.status = BackupStatus.PRUNED
            backup.pruned_at = now
            backup.save()
        pruned.append(backup)
        on_step(f"pruned {backup.file_name}")
    return pruned


def _newest_intact_verified(on_step: Step) -> Backup | None:
    """The newest verified backup whose file still has the size and SHA-256 its drill checked.

    Retention counts on it to keep one restorable backup; a file cut or changed since its drill
    passed would make that promise empty. Such a backup is marked failed (its file is kept for
    inspection) and the next verified one is looked at. A file that is not there at all stops
    retention instead (BackupDirUnusable, nothing pruned): a backup directory not mounted tonight
    looks the same, and must not turn every good backup into a failed one."""
    for backup in Backup.objects.verified().order_by("-started_at"):
        if not backup_path(backup).exists():
            raise BackupDirUnusable(
                Text(
                    gettext_noop(
                        "The file of verified backup %(id)s is not in %(dir)s, so retention pruned "
                        "nothing. If the backup directory is not mounted, mount it; if the file was "
                        "deleted, run `manage.py verify_backup %(id)s`: its failed drill takes it out "
                        "of the verified backups, and the next run prunes again."
                    ),
                    id=str(backup.pk),
                    dir=str(settings.OKADA_BACKUP_DIR),
                )
            )
        try:
            _check_file(backup)
        except DrillProblem as exc:
            error = Text(
                gettext_noop(
                    "Its file is no longer the one its restore drill passed (found by retention, "
                    "which no longer counts on it; any file left is kept for inspection): %(why)s"
                ),
                why=text_of(exc),
            )
            Backup.objects.filter(pk=backup.pk, status=BackupStatus.COMPLETE).update(
                status=BackupStatus.FAILED, error=error.stored, updated_at=timezone.now()
            )
            on_step(f"backup {backup.pk}: {error.english()}: marked failed")
            continue
        return backup
    return None


def backup_and_prune(*, kind: str, request_id: str = "", on_step: Step = quiet) -> dict[str, Any]:
    """A backup, then retention (only after a backup that worked): what the backup job runs."""
    backup = backup_run(kind=kind, request_id=request_id, on_step=on_step)
    pruned = backups_prune(keep={backup.pk}, on_step=on_step)
    return {
        "backup": str(backup.pk),
        "file": backup.file_name,
        "size_bytes": backup.size_bytes,
        "pruned": [b.file_name for b in pruned],
    }


@contextmanager
def _backup_lock(backup: Backup, *, wait: bool) -> Iterator[bool]:
    """The lock a drill holds on its backup from start to end, and retention holds while it prunes
    one (a session advisory lock: it dies with a killed worker). With `wait`, wait up to
    LOCK_WAIT_SECONDS: pruning holds it for the moment it takes to delete a file."""
    with advisory_lock(f"backups.backup:{backup.pk}") as lock:
        yield lock.try_acquire() or (wait and lock.wait(LOCK_WAIT_SECONDS))


# --- restore drill ----------------------------------------------------------------------------


class DrillProblem(Exception):
    """What a drill found wrong, raised with a Text: stored as the verification's error."""


def scratch_database(backup: Backup) -> str:
    return f"okada_drill_{backup.pk.hex}"


def backup_verify(
    *, backup: Backup | None = None, request_id: str = "", on_step: Step = quiet
) -> BackupVerification | None:
    """Restore drill: restore `backup` (default: the newest complete one) into a scratch database,
    compare every table's row count with the manifest, run every check of the invariant audit
    (`orders.audit.invariant_audit`: stock = ledger, totals = items, reserved = open items, paid =
    payments, unpaid mobile money still pending), record the restore time, drop the scratch
    database, and record the outcome.

    Run it inside `job(DRILL_JOB)`. Returns None when there is no backup to verify. A drill that
    finds a problem is recorded as failed (the error says why) and returned, not raised.
    """
    if request_id:
        done = BackupVerification.objects.filter(request_id=request_id).exclude(
            outcome=VerificationOutcome.RUNNING
        )
        if (earlier := done.first()) is not None:
            on_step(f"drill {earlier.pk} already ran for this request")
            return earlier
    _recover_interrupted_drills(on_step)
    # The newest, but not one dated in the future (taken while the clock was ahead): it would be
    # "the newest" every day until the clock caught up, and no later backup would be verified.
    complete = Backup.objects.complete().order_by("-started_at")
    chosen = (
        backup or complete.filter(started_at__lte=timezone.now() + CLOCK_SKEW).first() or complete.first()
    )
    if chosen is None:
        on_step("no backup to verify yet")
        return None
    with _backup_lock(chosen, wait=True) as held:
        chosen.refresh_from_db()
        if chosen.status != BackupStatus.COMPLETE:
            if backup is None:  # retention pruned the newest meanwhile: take the next newest
                return backup_verify(request_id=request_id, on_step=on_step)
            backup_verifiable(chosen)
        if not held:
            raise BackupNotRestorable(
                Text(gettext_noop("Backup %(id)s is locked by retention or another drill."), id=chosen.pk)
            )
        verification = BackupVerification.objects.create(backup=chosen, request_id=request_id)
        checks: dict[str, Any] = {}
        try:
            verification.restore_seconds = _drill(chosen, checks, on_step)
            verification.outcome = VerificationOutcome.PASSED
        except Exception as exc:
            verification.outcome = VerificationOutcome.FAILED
            verification.error = _describe(exc).stored
        verification.checks = checks
        verification.finished_at = timezone.now()
        verification.save()
    on_step(f"drill {verification.get_outcome_display()}: {shown(verification.error) or checks}")
    return verification


def _drill(backup: Backup, checks: dict[str, Any], on_step: Step) -> float:
    path = backup_path(backup)
    on_step(f"checking the SHA-256 of {path}")
    _check_file(backup)
    checks["checksum"] = "ok"
    dbname = scratch_database(backup)
    pg.drop_database(dbname)
    pg.create_database(dbname)
    try:
        on_step(f"restoring into the scratch database {dbname}")
        seconds = pg.restore(
            path,
            dbname=dbname,
            encrypted=backup.encrypted,
            passphrase=settings.OKADA_BACKUP_PASSPHRASE,
            jobs=settings.OKADA_BACKUP_RESTORE_JOBS,
            keep_owners=False,
        )
        checks["restore_seconds"] = round(seconds, 3)
        with pg.database_alias(dbname) as alias:
            on_step("counting rows and checking invariants")
            differences = _count_differences(backup, alias, checks)
            findings = _invariants(alias, checks)
        if differences:
            raise DrillProblem(
                Text(
                    gettext_noop("Row counts differ from the manifest: %(tables)s"),
                    tables=", ".join(f"{t} {e} -> {f}" for t, (e, f) in list(differences.items())[:10]),
                )
            )
        if findings:
            raise DrillProblem(
                Text(
                    gettext_noop("Invariants broken in the restored copy: %(findings)s"),
                    findings=", ".join(f"{name}: {n}" for name, n in findings.items()),
                )
            )
        return seconds
    finally:
        pg.drop_database(dbname)


def _check_file(backup: Backup) -> None:
    path = backup_path(backup)
    if not path.exists():
        raise DrillProblem(Text(gettext_noop("The backup file %(path)s is missing."), path=str(path)))
    size = path.stat().st_size
    if size != backup.size_bytes:
        raise DrillProblem(
            Text(
                gettext_noop(
                    "The file is %(found)s bytes, the catalog says %(expected)s: it was changed or cut."
                ),
                found=size,
                expected=backup.size_bytes,
            )
        )
    digest = pg.file_sha256(path)
    if digest != backup.sha256:
        raise DrillProblem(
            Text(
                gettext_noop(
                    "Checksum mismatch: the file's SHA-256 is %(found)s, the catalog says %(expected)s."
                ),
                found=digest,
                expected=backup.sha256,
            )
        )


def _count_differences(backup: Backup, alias: str, checks: dict[str, Any]) -> dict[str, list[int | None]]:
    with connections[alias].cursor() as cursor:
        found = pg.count_rows(cursor, pg.tables(cursor))
    differences = pg.count_differences(backup.manifest, found)
    checks["tables"] = len(found)
    checks["rows"] = sum(found.values())
    checks["count_differences"] = differences
    return differences


def _invariants(alias: str, checks: dict[str, Any]) -> dict[str, int]:
    """Every check of the nightly audit (orders.audit), on the restored copy: each check's count
    goes into `checks["invariants"]`, the first offending rows of those that found any into
    `checks["invariant_samples"]`; returns the checks that found something."""
    report = invariant_audit(using=alias)
    checks["invariants"] = dict(report.counts)
    if report.samples:
        checks["invariant_samples"] = report.samples
    return {name: n for name, n in report.counts.items() if n}


def _recover_interrupted_drills(on_step: Step) -> None:
    # Called under the drill lock: a drill still `running` died; drop what it left behind.
    for verification in BackupVerification.objects.filter(outcome=VerificationOutcome.RUNNING).select_related(
        "backup"
    ):
        pg.drop_database(scratch_database(verification.backup))
        verification.outcome = VerificationOutcome.FAILED
        verification.error = Text(
            gettext_noop("The drill stopped before it finished (recovered by the next drill).")
        ).stored
        verification.finished_at = timezone.now()
        verification.save()
        on_step(f"drill {verification.pk} was interrupted: marked failed, scratch database dropped")


# --- restore on purpose -----------------------------------------------------------------------


@dataclass
class Restored:
    seconds: float
    tables: int
    rows: int
    count_differences: dict[str, list[int | None]] = field(default_factory=dict)
    # The restored catalog against OKADA_BACKUP_DIR (`_reconcile_restored_catalog`).
    marked_pruned: list[str] = field(default_factory=list)  # complete rows whose file is gone
    marked_failed: list[str] = field(default_factory=list)  # complete rows whose file changed size
    unknown_files: list[str] = field(default_factory=list)  # files of backups the catalog lacks


def backup_restore(*, backup: Backup, target: str, force: bool = False, on_step: Step = quiet) -> Restored:
    """Restore `backup` into the database `target` on the settings' server, on purpose.

    Checks the file's size and SHA-256 first. A target that exists and holds any object (table,
    view, sequence, function, type, schema, extension: pg.user_objects) is refused unless
    `force`, which drops and re-creates it (every session in it is ended; its owner, privileges
    and settings are kept: `pg.recreate_database`), so the target then equals the backup.
    Afterwards every table's rows are counted against the manifest. In the restored catalog, the
    backup's own row (caught `running` by its snapshot) is recorded as it is now, complete.
    """
    if not DATABASE_NAME.fullmatch(target):
        raise InvalidInput(
            Text(
                gettext_noop("A database name is letters, digits, _ and $ (at most 63), not %(target)r."),
                target=target,
            ),
            field="target",
        )
    # Empty, so a plain restore would go ahead: into the template every new database is copied
    # from (the test databases then hold every table), or into where the tools stand to CREATE
    # and DROP databases.
    if target in pg.MAINTENANCE_DATABASES or target == "template0" or pg.is_template(target):
        raise InvalidInput(
            Text(
                gettext_noop(
                    "%(target)s is one of PostgreSQL's own databases (the maintenance database, or a "
                    "template new databases are copied from): restore into a database of its own, "
                    "e.g. okada_restored."
                ),
                target=target,
            ),
            field="target",
        )
    # One restore into a target at a time: a second would restore into the database the first is
    # filling (created empty, so not refused as non-empty), or with --force drop it under it.
    with advisory_lock(f"backups.restore-target:{target}") as target_lock:
        if not target_lock.try_acquire():
            raise BackupNotRestorable(
                Text(
                    gettext_noop(
                        "Another restore into %(target)s is running right now: nothing was done. Wait "
                        "for it to end (its command prints “done”), then check the database before "
                        "restoring into it again."
                    ),
                    target=target,
                )
            )
        return _restore_locked(backup, target, force=force, on_step=on_step)


def _restore_locked(backup: Backup, target: str, *, force: bool, on_step: Step) -> Restored:
    # Retention takes this lock to prune the backup, a drill holds it: the file stays for the
    # whole restore (pg_restore's parallel workers open it again by name).
    with _backup_lock(backup, wait=True) as held:
        backup.refresh_from_db()
        if backup.status != BackupStatus.COMPLETE:
            raise BackupNotRestorable(
                Text(
                    gettext_noop("Backup %(id)s is %(status)s: only a complete backup can be restored."),
                    id=backup.pk,
                    status=Text.of(BackupStatus(backup.status).label),
                )
            )
        if not held:
            raise BackupNotRestorable(
                Text(
                    gettext_noop(
                        "Backup %(id)s is being verified or pruned right now: try again when that is over."
                    ),
                    id=backup.pk,
                )
            )
        return _restore_held(backup, target, force=force, on_step=on_step)


def _restore_held(backup: Backup, target: str, *, force: bool, on_step: Step) -> Restored:
    on_step(f"checking the size and SHA-256 of {backup_path(backup)} ({backup.size_bytes:,} bytes)")
    try:
        _check_file(backup)
    except DrillProblem as exc:
        raise BackupNotRestorable(text_of(exc)) from None
    pg.binary("pg_restore")  # missing tools and a wrong passphrase stop us before the target changes
    if backup.encrypted and not pg.decrypts(backup_path(backup), settings.OKADA_BACKUP_PASSPHRASE):
        raise BackupNotRestorable(
            Text(
                gettext_noop(
                    "Backup %(id)s is encrypted and OKADA_BACKUP_PASSPHRASE does not decrypt it: set it "
                    "to the passphrase the backup was taken with."
                ),
                id=backup.pk,
            )
        )
    _prepare_target(target, force=force, on_step=on_step)
    on_step(f"restoring into {target}")
    total = len(backup.manifest)
    loaded = 0

    def progress(line: str) -> None:
        nonlocal loaded
        if "processing data for table" in line:
            loaded += 1
            on_step(f"  table data {loaded}/{total}: {line.split('table', 1)[1].strip()}")
        elif "error:" in line:
            on_step(line)

    try:
        seconds = pg.restore(
            backup_path(backup),
            dbname=target,
            encrypted=backup.encrypted,
            passphrase=settings.OKADA_BACKUP_PASSPHRASE,
            jobs=settings.OKADA_BACKUP_RESTORE_JOBS,
            keep_owners=True,
            on_line=progress,
        )
    except pg.ToolError as exc:
        # Half a database is worse than none: an app pointed at it would run on part of the data.
        # The target was empty when pg_restore started (created, or re-created by --force).
        on_step(f"the restore stopped: emptying {target} again")
        pg.recreate_database(target)
        raise BackupNotRestorable(
            Text(
                gettext_noop(
                    "The restore into %(target)s stopped, and %(target)s was emptied again (nothing "
                    "half restored): %(why)s"
                ),
                target=target,
                why=text_of(exc),
            )
        ) from exc
    except BaseException:
        # Ctrl-C on the command (pg_restore gets the signal too) or the task stopped: the same
        # cleanup, then the interruption goes on. A process killed outright cannot clean up.
        on_step(f"the restore was interrupted: emptying {target} again")
        pg.recreate_database(target)
        raise
    on_step(f"restored in {seconds:.1f} s; counting rows against the manifest")
    checks: dict[str, Any] = {}
    with pg.database_alias(target) as alias:
        differences = _count_differences(backup, alias, checks)
        _record_in_restored_catalog(backup, alias)
        restored = Restored(
            seconds=seconds, tables=checks["tables"], rows=checks["rows"], count_differences=differences
        )
        _reconcile_restored_catalog(alias, restored, on_step)
    return restored


def _prepare_target(target: str, *, force: bool, on_step: Step) -> None:
    if not pg.database_exists(target):
        on_step(f"creating the database {target}")
        pg.create_database(target)
        return
    with pg.database_alias(target) as alias:
        objects = pg.user_objects(alias)
    if not objects:
        return
    if not force:
        raise TargetNotEmpty(
            Text(
                gettext_noop(
                    "The database %(target)s holds %(n)s objects (tables, views, sequences, functions, "
                    "types, schemas or extensions): use --force to replace it."
                ),
                target=target,
                n=objects,
            )
        )
    on_step(f"--force: dropping and re-creating {target} ({objects} objects, its sessions ended)")
    connections.close_all()  # ours too, in case the target is the database we run on
    pg.recreate_database(target)


def _record_in_restored_catalog(backup: Backup, alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT to_regclass('backups_backup') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return
    Backup.objects.using(alias).filter(pk=backup.pk).update(
        status=backup.status,
        finished_at=backup.finished_at,
        size_bytes=backup.size_bytes,
        sha256=backup.sha256,
        pg_dump_version=backup.pg_dump_version,
        server_version=backup.server_version,
        manifest=backup.manifest,
    )


def _reconcile_restored_catalog(alias: str, restored: Restored, on_step: Step) -> None:
    """The restored catalog is the snapshot's: bring it in line with OKADA_BACKUP_DIR as it is now.

    A backup complete in the snapshot whose file retention deleted since is marked pruned (a drill
    of it would fail on a missing file, and it would count as a backup one can restore); one whose
    file no longer has the catalog's size is marked failed, its file kept for inspection. Backup
    files the catalog does not know (backups taken after the snapshot) are listed, never deleted.
    """
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT to_regclass('backups_backup') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return
    directory = Path(settings.OKADA_BACKUP_DIR)
    now = timezone.now()
    # Only the columns read and written here, and UPDATEs: the restored catalog has the snapshot's
    # schema, which may lack columns the model gained since.
    catalog = Backup.objects.using(alias)
    rows = catalog.complete().order_by("started_at").values_list("pk", "file_name", "size_bytes")
    for pk, file_name, size_bytes in rows:
        path = directory / file_name
        try:
            size: int | None = path.stat().st_size
        except FileNotFoundError:
            size = None
        if size is None:
            catalog.filter(pk=pk).update(status=BackupStatus.PRUNED, pruned_at=now, updated_at=now)
            restored.marked_pruned.append(file_name)
            on_step(f"backup {pk}: its file {file_name} is gone (pruned since): marked pruned")
        elif size != size_bytes:
            error = Text(
                gettext_noop(
                    "After a restore, the file was %(found)s bytes and the catalog said %(expected)s: "
                    "it was changed or cut (the file is kept for inspection)."
                ),
                found=size,
                expected=size_bytes,
            )
            catalog.filter(pk=pk).update(status=BackupStatus.FAILED, error=error.stored, updated_at=now)
            restored.marked_failed.append(file_name)
            on_step(f"backup {pk}: {error.english()}: marked failed")
    known = set(Backup.objects.using(alias).values_list("file_name", flat=True))
    if directory.is_dir():
        restored.unknown_files = sorted(
            p.name
            for p in directory.iterdir()
            if p.name.endswith((".dump", ".dump.gpg")) and p.is_file() and p.name not in known
        )


# --- staff: queue a backup or a drill ---------------------------------------------------------


def backup_request(*, actor: Actor) -> None:
    """Queue a manual backup (then retention) on the Celery workers. Needs `backups.run_backup`."""
    actor.require(RUN_PERMISSION)
    from .tasks import run_backup

    transaction.on_commit(lambda: run_backup.delay(kind=BackupKind.MANUAL))


def backup_verifiable(backup: Backup) -> None:
    """Raise BackupNotRestorable, saying why and what to do instead, unless `backup` is complete
    (a drill restores its file). `verify_backup <id>` asks before its job starts: a refusal
    there is the operator's wrong id, not a failed job run (whose log line has a traceback)."""
    if backup.status == BackupStatus.COMPLETE:
        return
    if backup.status == BackupStatus.PRUNED:
        raise BackupNotRestorable(
            Text(
                gettext_noop(
                    "Backup %(id)s was pruned: retention deleted its file, so it cannot be verified. "
                    "Verify a complete backup instead."
                ),
                id=backup.pk,
            )
        )
    raise BackupNotRestorable(
        Text(
            gettext_noop("Backup %(id)s is %(status)s: only a complete backup can be verified."),
            id=backup.pk,
            status=Text.of(BackupStatus(backup.status).label),
        )
    )


def verification_request(*, backup: Backup, actor: Actor) -> None:
    """Queue a restore drill of `backup` on the Celery workers. Needs `backups.run_backup`."""
    actor.require(RUN_PERMISSION)
    backup_verifiable(backup)
    from .tasks import run_restore_drill

    backup_id = str(backup.pk)
    transaction.on_commit(lambda: run_restore_drill.delay(backup_id=backup_id))


def drill_summary(verification: BackupVerification | None) -> dict[str, Any]:
    """A drill as the JobRun summary and the command show it."""
    if verification is None:
        return {"outcome": gettext_noop("nothing to verify")}  # shown translated in the admin
    return {
        "backup": str(verification.backup_id),
        "outcome": verification.outcome,
        "restore_seconds": verification.restore_seconds,
        "checks": verification.checks,
        "error": verification.error,
    }
