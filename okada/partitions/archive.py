"""Archives of retired partitions: `pg_dump -t` (custom format) into the backup directory, a SHA-256
beside each, and a check that the archive reads back with every row.

pg_dump connects exactly as the backups' does (`okada.core.db.libpq_env`: DATABASE_URL is the single
source of truth); the password reaches it through PGPASSWORD in its environment, never on a command
line.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext_noop

from okada.core.db import libpq_env, postgresql_program
from okada.core.files import fsync_dir, fsync_file, owner_only_directory
from okada.core.texts import Text


class ArchiveError(Exception):
    """pg_dump or pg_restore failed, or the archive does not hold what was dumped (raised with a
    Text: it is stored in the action log and shown in each reader's language)."""


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    bytes: int
    rows: int


def _binary(name: str) -> str:
    found = postgresql_program(name)  # the one backups use: pg_dump must not be older than the server
    if not found:
        raise ArchiveError(
            Text(
                gettext_noop("%(tool)s not found: install the PostgreSQL client (postgresql-client)"),
                tool=name,
            )
        )
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(args: list[str], *, pass_fds: tuple[int, ...] = ()) -> None:
    done = subprocess.run(
        args, env=libpq_env(), capture_output=True, text=True, check=False, pass_fds=pass_fds
    )
    if done.returncode:
        raise ArchiveError(
            Text(
                gettext_noop("%(tool)s failed: %(stderr)s"),
                tool=Path(args[0]).name,
                stderr=done.stderr.strip()[-2000:],
            )
        )


def checksum_path(path: Path) -> Path:
    """`<archive>.sha256`, beside the archive (what `sha256sum -c` reads)."""
    return path.with_name(path.name + ".sha256")


def _write_checksum(path: Path, digest: str) -> None:
    """Write and fsync `<path>.sha256`, never over an existing one (another archive's)."""
    checksum = checksum_path(path)
    fd = os.open(checksum, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{digest}  {path.name}\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        checksum.unlink(missing_ok=True)  # created by us just now (O_EXCL): half a digest
        raise


def _partials(directory: Path, name: str) -> list[Path]:
    """The `.partial` files of archives of `name` (any run's stamp) in `directory`."""
    return sorted(directory.glob(f"{glob.escape(name)}-*.dump.partial"))


def _same_file(fd: int, path: Path) -> bool:
    """`fd` is still the file named `path` (not one unlinked, or replaced, since it was opened)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def remove_stale_partials(directory: Path, name: str) -> list[Path]:
    """Delete the `.partial` archives of `name` that no one is writing: those a killed run left
    (each run has its own stamp, so no later run would overwrite them), and the `.sha256` of one
    killed after its digest but before its link (it names an archive that never took its name, and
    would hold that name forever: `_free_name`). Returns what it deleted.

    A run writing an archive holds an exclusive flock on its `.partial` until it has renamed it,
    and so does its pg_dump (it inherits the descriptor), even when the run was killed under it:
    a file whose lock is held is left alone. Maintenance runs are single-flight anyway (job()'s
    advisory lock); the flock also covers a run that lost that lock while pg_dump was writing.
    """
    if not directory.is_dir():
        return []
    removed = []
    for path in _partials(directory, name):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            continue  # gone meanwhile, or a symlink: not a file we wrote
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written right now
            if _same_file(fd, path):
                final = path.with_name(path.name.removesuffix(".partial"))
                digest = checksum_path(final)
                if not final.exists() and digest.exists():  # while the lock is ours: no run writes it
                    digest.unlink()
                    removed.append(digest)
                path.unlink()
                removed.append(path)
        finally:
            os.close(fd)  # releases the flock
    return removed


def _open_locked(partial: Path) -> int:
    """Open (create) `partial` owner-only and hold an exclusive flock on it: a run cleaning stale
    `.partial` files leaves it alone while the descriptor (ours, or pg_dump's copy) is open."""
    for _attempt in range(3):
        # Owner-only from the first byte (pg_dump keeps the mode of the file it truncates).
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArchiveError(
                Text(gettext_noop("%(file)s is being written by another run"), file=partial.name)
            ) from None
        if _same_file(fd, partial):  # not deleted as stale between our open and our lock
            os.fchmod(fd, 0o600)  # a .partial an earlier run left keeps its own mode otherwise
            os.ftruncate(fd, 0)
            return fd
        os.close(fd)
    raise ArchiveError(
        Text(gettext_noop("%(file)s keeps being removed while it is opened"), file=partial.name)
    )


def _free_name(directory: Path, stem: str) -> Path:
    """`<stem>.dump`, or `<stem>-2.dump`, `-3` ... when taken. One run may archive a month twice
    with one stamp (its detached table, then rows of that month rescued from DEFAULT and retired
    too): the second archive must not replace the first, whose table is already dropped."""
    final, n = directory / f"{stem}.dump", 1
    # (a `.partial` of that name: `_open_locked` refuses one being written)
    while final.exists() or checksum_path(final).exists():
        n += 1
        final = directory / f"{stem}-{n}.dump"
    return final


def dump_table(name: str, *, schema: str, directory: Path, stamp: str, lock_wait_ms: int) -> Archive:
    """pg_dump one table into `directory/<name>-<stamp>.dump` (`-2`, `-3` ... before `.dump` when
    that name is taken: `_free_name`), then `verify_archive` it.

    Written under a `.partial` name (locked while written, see `remove_stale_partials`) and
    renamed once complete and synced, never over an existing file: a file with the final name is
    always a whole archive, and an archive is never replaced.
    `<file>.sha256` holds the digest (sha256sum -c reads it). It is written and synced before the
    archive takes its name, and the directory is synced after: an archive under its final name
    always has its digest, and both are on disk when this returns (the caller drops the table
    next: the archive is then the month's only copy). When anything fails, neither is left.
    """
    owner_only_directory(directory)
    final = _free_name(directory, f"{name}-{stamp}")
    partial = final.with_name(final.name + ".partial")
    fd = _open_locked(partial)
    named = False
    try:
        _run(
            [
                _binary("pg_dump"),
                "--format=custom",
                f"--lock-wait-timeout={int(lock_wait_ms)}",
                f"--table={schema}.{name}",
                f"--file={partial}",
            ],
            pass_fds=(fd,),  # pg_dump holds the lock too, for as long as it runs
        )
        os.fsync(fd)
        digest = sha256_of(partial)
        _write_checksum(final, digest)
        try:
            os.link(partial, final)  # never over another archive: FileExistsError rather than a loss
        except BaseException:
            checksum_path(final).unlink()  # ours (O_EXCL), of an archive that will not be there
            raise
        named = True
        partial.unlink()
        fsync_dir(directory)
    except BaseException:
        if not named and _same_file(fd, partial):  # ours and still locked: no one else is writing it
            partial.unlink()
        raise
    finally:
        os.close(fd)
    rows = archived_rows(final, name=name, schema=schema)
    return Archive(path=final, sha256=digest, bytes=final.stat().st_size, rows=rows)


def written_archive(
    name: str, *, schema: str, directory: Path, table_oid: int, expected_rows: int
) -> Archive | None:
    """The newest archive an earlier run wrote of this very table that still checks out, if any:
    a run whose drop failed after a verified archive leaves one, and the next run reuses it
    rather than dump the month a second time.

    It checks out when its `.sha256` names it with its current digest, its table is this table
    (the OID in the archive's table of contents: a partition of the same name made again later,
    e.g. to rescue rows, is another table) and it reads back whole with `expected_rows` rows.
    """
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob(f"{glob.escape(name)}-*.dump"), reverse=True):  # newest stamp first
        try:
            recorded = checksum_path(path).read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            continue  # killed before it was written: not known to be whole and ours
        digest = sha256_of(path)
        if recorded != f"{digest}  {path.name}\n":
            continue
        try:
            if _table_oid(_listing(path), name=name, schema=schema) != table_oid:
                continue
            rows = archived_rows(path, name=name, schema=schema)
        except ArchiveError:
            continue
        if rows == expected_rows:
            _sync_archive(path)  # its run may have stopped before it synced them (or predates that)
            return Archive(path=path, sha256=digest, bytes=path.stat().st_size, rows=rows)
    return None


def _sync_archive(path: Path) -> None:
    """fsync an archive, its `.sha256` and their directory."""
    for written in (path, checksum_path(path)):
        fsync_file(written)
    fsync_dir(path.parent)


def _listing(path: Path) -> str:
    listing = subprocess.run(
        [_binary("pg_restore"), "--list", str(path)], capture_output=True, text=True, check=False
    )
    if listing.returncode:
        raise ArchiveError(
            Text(
                gettext_noop("%(file)s cannot be listed: %(stderr)s"),
                file=path.name,
                stderr=listing.stderr.strip()[-2000:],
            )
        )
    return listing.stdout


def _table_oid(listing: str, *, name: str, schema: str) -> int | None:
    """The OID the table had when it was dumped: `<id>; 1259 <oid> TABLE <schema> <name> <owner>`."""
    for line in listing.splitlines():
        head, _sep, rest = line.partition("; ")
        parts = rest.split(" ")
        if head.isdigit() and parts[2:5] == ["TABLE", schema, name] and parts[0] == "1259":
            return int(parts[1])
    return None


def archived_rows(path: Path, *, name: str, schema: str) -> int:
    """Read the whole archive back (pg_restore to a stream, no database) and count the rows of
    `schema.name` in it. Raises ArchiveError when the archive is unreadable or lacks the table."""
    if f"TABLE DATA {schema} {name} " not in _listing(path):
        raise ArchiveError(
            Text(
                gettext_noop("%(file)s: no data of %(table)s in the archive"),
                file=path.name,
                table=f"{schema}.{name}",
            )
        )
    process = subprocess.Popen(
        [_binary("pg_restore"), "--data-only", f"--table={name}", "--file=-", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rows, copying = 0, False
    for line in process.stdout or ():
        if copying:
            if line == b"\\.\n":
                copying = False
            else:
                rows += 1  # COPY text format: one line per row (newlines in values are escaped)
        elif line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
            copying = True
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.wait() or copying:
        raise ArchiveError(
            Text(
                gettext_noop("%(file)s does not read back whole: %(stderr)s"),
                file=path.name,
                stderr=stderr.strip()[-2000:],
            )
        )
    return rows


def verify_archive(archive: Archive, *, name: str, schema: str, expected_rows: int) -> None:
    """The file is the one we wrote (SHA-256) and holds exactly the rows of the table."""
    if sha256_of(archive.path) != archive.sha256:
        raise ArchiveError(
            Text(gettext_noop("%(file)s: SHA-256 changed since it was written"), file=archive.path.name)
        )
    if archive.rows != expected_rows:
        raise ArchiveError(
            Text(
                gettext_noop("%(file)s holds %(rows)s rows, the table %(expected)s"),
                file=archive.path.name,
                rows=archive.rows,
                expected=expected_rows,
            )
        )
