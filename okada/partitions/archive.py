"""Archives of retired partitions: `pg_dump -t` (custom format) into the backup directory, a SHA-256
beside each, and a check that the archive reads back with every row.

pg_dump connects exactly as the backups' does (`okada.core.db.libpq_env`: DATABASE_URL is the single
source of truth); the password reaches it through PGPASSWORD in its environment, never on a command
line.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from okada.core.db import libpq_env


class ArchiveError(Exception):
    """pg_dump or pg_restore failed, or the archive does not hold what was dumped."""


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    bytes: int
    rows: int


def _binary(name: str) -> str:
    found = shutil.which(name) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), default=None)
    if not found:
        raise ArchiveError(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(args: list[str]) -> None:
    done = subprocess.run(args, env=libpq_env(), capture_output=True, text=True, check=False)
    if done.returncode:
        raise ArchiveError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")


def _owner_only_directory(directory: Path) -> None:
    """Create `directory` and any missing parent with mode 0700, as the backups make theirs: it
    may be the first thing written under OKADA_BACKUP_DIR."""
    missing = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode goes through the umask


def dump_table(name: str, *, schema: str, directory: Path, stamp: str, lock_wait_ms: int) -> Archive:
    """pg_dump one table into `directory/<name>-<stamp>.dump`, then `verify_archive` it.

    Written under a `.partial` name and renamed once complete and synced: a file with the final
    name is always a whole archive. `<file>.sha256` holds the digest (sha256sum -c reads it).
    """
    _owner_only_directory(directory)
    final = directory / f"{name}-{stamp}.dump"
    partial = final.with_name(final.name + ".partial")
    # Owner-only from the first byte (pg_dump keeps the mode of the file it truncates).
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(partial, 0o600)  # a .partial an earlier run left keeps its own mode otherwise
    _run(
        [
            _binary("pg_dump"),
            "--format=custom",
            f"--lock-wait-timeout={int(lock_wait_ms)}",
            f"--table={schema}.{name}",
            f"--file={partial}",
        ]
    )
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    digest = sha256_of(final)
    checksum = final.with_name(final.name + ".sha256")
    with os.fdopen(os.open(checksum, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(f"{digest}  {final.name}\n")
    rows = archived_rows(final, name=name, schema=schema)
    return Archive(path=final, sha256=digest, bytes=final.stat().st_size, rows=rows)


def archived_rows(path: Path, *, name: str, schema: str) -> int:
    """Read the whole archive back (pg_restore to a stream, no database) and count the rows of
    `schema.name` in it. Raises ArchiveError when the archive is unreadable or lacks the table."""
    listing = subprocess.run(
        [_binary("pg_restore"), "--list", str(path)], capture_output=True, text=True, check=False
    )
    if listing.returncode or f"TABLE DATA {schema} {name} " not in listing.stdout:
        raise ArchiveError(
            f"{path.name}: no data of {schema}.{name} in the archive ({listing.stderr.strip()})"
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
        raise ArchiveError(f"{path.name} does not read back whole: {stderr.strip()[-2000:]}")
    return rows


def verify_archive(archive: Archive, *, name: str, schema: str, expected_rows: int) -> None:
    """The file is the one we wrote (SHA-256) and holds exactly the rows of the table."""
    if sha256_of(archive.path) != archive.sha256:
        raise ArchiveError(f"{archive.path.name}: SHA-256 changed since it was written")
    if archive.rows != expected_rows:
        raise ArchiveError(f"{archive.path.name} holds {archive.rows} rows, the table {expected_rows}")
