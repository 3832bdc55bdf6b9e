"""pg_dump, pg_restore and gpg as child processes, and the row counts that check what they did.

The tools connect where Django does (DATABASES["default"], i.e. DATABASE_URL). The password and TLS
settings reach them through their environment (PGPASSWORD, PGSSLMODE ...), never the command line,
which any user of the machine can read with `ps`; nothing here logs that environment. Likewise the
GPG passphrase goes through a pipe (`--passphrase-fd`), not an argument.

Nothing here knows about the backup catalog: `backups.services` decides what to dump and where.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.utils.translation import gettext_noop

from okada.core.db import libpq_env, postgresql_program
from okada.core.texts import Text, text_of

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per read when copying and hashing
PIPE_BYTES = 1 << 20  # buffer of the pipes between the tools and us (Linux's default: 64 KiB)

Step = Callable[[str], None]


def quiet(message: str) -> None:
    """The default `on_step`: say nothing."""


class ToolError(Exception):
    """A tool failed or is missing, raised with a Text that names it and quotes its last error
    lines (verbatim)."""


# --- finding the tools ------------------------------------------------------------------------


def binary(name: str) -> str:
    """`name` of the newest installed PostgreSQL (okada.core.db.postgresql_program)."""
    found = postgresql_program(name)
    if not found:
        raise ToolError(
            Text(
                gettext_noop(
                    "%(tool)s not found: install it with `sudo apt-get install -y postgresql-client`"
                ),
                tool=name,
            )
        )
    return found


def gpg_binary() -> str:
    found = shutil.which("gpg")
    if not found:
        raise ToolError(
            Text(
                gettext_noop(
                    "gpg not found (needed by OKADA_BACKUP_PASSPHRASE): `sudo apt-get install -y gnupg`"
                )
            )
        )
    return found


def version(name: str) -> str:
    """`name --version`, e.g. "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"."""
    done = subprocess.run([binary(name), "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


# --- child processes --------------------------------------------------------------------------


class Processes:
    """The processes of one pipeline, upstream first. Each one's stderr goes to a temporary file
    (no pipe to fill up); leaving the block kills any still running, so a failure never leaves a
    pg_dump writing behind us."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes] | None]] = []

    def __enter__(self) -> Processes:
        return self

    def start(self, cmd: list[str], *, stderr: Any = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        log = tempfile.TemporaryFile() if stderr is None else None  # noqa: SIM115 (closed in __exit__)
        proc = subprocess.Popen(cmd, stderr=log if log is not None else stderr, **kwargs)
        self.started.append((Path(cmd[0]).name, proc, log))
        if proc.stdout is not None:
            widen_pipe(proc.stdout)
        return proc

    def wait(self) -> None:
        """Wait for every process; raise ToolError for the first (most upstream) that failed."""
        failures = []
        for name, proc, log in self.started:
            code = proc.wait()
            if code:
                failures.append(_failure(name, code, _tail(log)))
        if failures:
            raise ToolError(failures[0])

    def __exit__(self, *exc: object) -> None:
        for _name, proc, log in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if log is not None:
                log.close()


def widen_pipe(pipe: IO[bytes]) -> int:
    """Give `pipe` a buffer of PIPE_BYTES (up to the system's limit); return its size in bytes.

    With the default 64 KiB, pg_dump stops every 64 KiB until the thread that hashes and writes
    the stream has run; on a busy machine each of those stops can wait for a free core, which a
    bare pg_dump writing its own file never does. A wider pipe lets it run on between reads.
    """
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text()) if os.getuid() else PIPE_BYTES
    try:
        return fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, min(PIPE_BYTES, limit))
    except OSError:  # over the limit of an unprivileged user's pipes: keep the buffer it has
        return fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ)


def _tail(log: IO[bytes] | None, lines: int = 8) -> str:
    if log is None:
        return ""
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def _failure(name: str, code: int, detail: str) -> Text:
    if code < 0:
        if detail:
            return Text(
                gettext_noop("%(tool)s was killed by signal %(signal)s: %(detail)s"),
                tool=name,
                signal=-code,
                detail=detail,
            )
        return Text(gettext_noop("%(tool)s was killed by signal %(signal)s"), tool=name, signal=-code)
    if detail:
        return Text(
            gettext_noop("%(tool)s exited with status %(code)s: %(detail)s"),
            tool=name,
            code=code,
            detail=detail,
        )
    return Text(gettext_noop("%(tool)s exited with status %(code)s"), tool=name, code=code)


@contextmanager
def _gpg(passphrase: str, *args: str) -> Iterator[tuple[list[str], int]]:
    """gpg's command line for one run, and the descriptor it reads the passphrase from.

    Each run gets a throwaway home (no keyrings of the machine's user are read or written); the
    agent gpg starts there is stopped afterwards.
    """
    gpg = gpg_binary()
    home = tempfile.mkdtemp(prefix="okada-gpg-")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, passphrase.encode())  # far below the pipe's buffer: never blocks
    os.close(write_fd)
    try:
        yield (
            [
                gpg,
                "--homedir",
                home,
                "--batch",
                "--quiet",
                "--no-tty",
                "--no-symkey-cache",
                "--pinentry-mode",
                "loopback",
                "--passphrase-fd",
                str(read_fd),
                *args,
            ],
            read_fd,
        )
    finally:
        os.close(read_fd)
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


# --- tables and row counts --------------------------------------------------------------------


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string constant for statements that take no parameters (CREATE DATABASE's options);
    standard_conforming_strings is on, as it is by default since PostgreSQL 9.1."""
    return "'" + value.replace("'", "''") + "'"


TABLES_SQL = """
    SELECT n.nspname, c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r'
       AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d   -- tables of extensions are not dumped
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     ORDER BY 1, 2
"""


def tables(cursor: Any) -> list[tuple[str, str]]:
    """Every table whose rows pg_dump dumps: ordinary tables and partitions (a partitioned parent
    holds no rows of its own), without the system's and the extensions' tables."""
    cursor.execute(TABLES_SQL)
    return [(schema, name) for schema, name in cursor.fetchall()]


def count_rows(cursor: Any, names: list[tuple[str, str]]) -> dict[str, int]:
    """Exact row counts, {"schema.table": n}, as the cursor's transaction sees them."""
    counts = {}
    for schema, name in names:
        cursor.execute(f"SELECT count(*) FROM ONLY {quote(schema)}.{quote(name)}")  # noqa: S608 (quoted)
        counts[f"{schema}.{name}"] = int(cursor.fetchone()[0])
    return counts


def count_differences(expected: dict[str, int], found: dict[str, int]) -> dict[str, list[int | None]]:
    """{"schema.table": [expected, found]} for every table whose count differs (None: no such table)."""
    return {
        table: [expected.get(table), found.get(table)]
        for table in sorted(expected.keys() | found.keys())
        if expected.get(table) != found.get(table)
    }


# --- dump -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dump:
    size: int
    sha256: str
    manifest: dict[str, int]
    server_version: str
    pg_dump_version: str


def dump(out: Path, *, passphrase: str = "", on_step: Step = quiet) -> Dump:
    """pg_dump (custom format) of the whole database into `out`, with exact row counts per table
    taken in the very snapshot pg_dump dumps.

    A REPEATABLE READ transaction exports its snapshot, pg_dump imports it (`--snapshot`), and
    the rows are counted in that transaction while pg_dump runs. pg_dump writes to a pipe (through
    gpg when `passphrase` is set) that a thread hashes and writes to `out`, so the file is read
    once and a process killed anywhere along the pipe stops the others. `out` is fsynced; the
    caller renames it into place. On failure `out` may hold a part: the caller deletes it.
    """
    pg_dump = binary("pg_dump")
    with ExitStack() as stack:
        conn = own_connection()
        stack.callback(conn.close)
        cursor = stack.enter_context(conn.cursor())
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, server_version = cursor.fetchone()
        names = tables(cursor)
        copier = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-copy"))
        processes = stack.enter_context(Processes())  # exits first: kills, so the copy thread ends
        dumper = processes.start(
            [pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}"],
            stdout=subprocess.PIPE,
            env=libpq_env(),
        )
        source = cast(IO[bytes], dumper.stdout)  # stdout=PIPE
        if passphrase:
            gpg, fd = stack.enter_context(
                _gpg(passphrase, "--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none")
            )
            encryptor = processes.start(gpg, stdin=dumper.stdout, stdout=subprocess.PIPE, pass_fds=(fd,))
            source.close()  # gpg reads it now: if gpg dies, pg_dump's next write fails
            source = cast(IO[bytes], encryptor.stdout)
        copied = copier.submit(_copy, source, out)
        on_step(f"pg_dump started on snapshot {snapshot}; counting the rows of {len(names)} tables in it")
        manifest = count_rows(cursor, names)
        size, sha256 = copied.result()
        processes.wait()
        cursor.execute("COMMIT")
    return Dump(
        size=size,
        sha256=sha256,
        manifest=manifest,
        server_version=server_version,
        pg_dump_version=version("pg_dump"),
    )


def _copy(source: IO[bytes], out: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    # Owner-only from the first byte: a dump holds every customer's data.
    with source, os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as target:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            target.write(chunk)
            size += len(chunk)
        target.flush()
        os.fsync(target.fileno())
    return size, digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- restore ----------------------------------------------------------------------------------


def restore(
    path: Path,
    *,
    dbname: str,
    encrypted: bool,
    passphrase: str = "",
    jobs: int = 1,
    keep_owners: bool = True,
    on_line: Step = quiet,
) -> float:
    """pg_restore `path` into the existing database `dbname`; return the seconds it took.

    Stops at the first error. An encrypted file is decrypted by gpg into pg_restore's input (one
    process: parallel restore needs a file it can seek); a plain file is restored with `jobs`
    processes. `on_line` gets pg_restore's verbose output line by line (progress).
    """
    command = [binary("pg_restore"), "--exit-on-error", "--no-password", "--verbose", f"--dbname={dbname}"]
    if not keep_owners:
        command += ["--no-owner", "--no-privileges"]
    errors: deque[str] = deque(maxlen=8)
    started = time.monotonic()
    with ExitStack() as stack:
        processes = stack.enter_context(Processes())
        if encrypted:
            if not passphrase:
                raise ToolError(
                    Text(gettext_noop("the backup is encrypted: set OKADA_BACKUP_PASSPHRASE to decrypt it"))
                )
            gpg, fd = stack.enter_context(_gpg(passphrase, "--decrypt", str(path)))
            decryptor = processes.start(gpg, stdout=subprocess.PIPE, pass_fds=(fd,))
            restorer = processes.start(
                command, stdin=decryptor.stdout, stderr=subprocess.PIPE, env=libpq_env(dbname)
            )
            cast(IO[bytes], decryptor.stdout).close()  # pg_restore reads it now
        else:
            restorer = processes.start(
                [*command, f"--jobs={max(1, jobs)}", str(path)], stderr=subprocess.PIPE, env=libpq_env(dbname)
            )
        for raw in restorer.stderr:  # type: ignore[union-attr]
            line = raw.decode(errors="replace").rstrip()
            if "error:" in line or line.startswith(("DETAIL", "HINT", "Command was")):
                errors.append(line)
            on_line(line)
        try:
            processes.wait()
        except ToolError as exc:
            if not errors:
                raise
            # A layout, not a sentence: the failure (translated) above pg_restore's own lines.
            raise ToolError(
                Text("%(failure)s\n%(errors)s", failure=text_of(exc), errors="\n".join(errors))
            ) from None
    return time.monotonic() - started


def decrypts(path: Path, passphrase: str) -> bool:
    """Whether `passphrase` decrypts the encrypted dump `path` into a pg_dump archive: gpg decrypts
    its first bytes only (a wrong passphrase fails before any output), then is stopped."""
    if not passphrase:
        return False
    with _gpg(passphrase, "--decrypt", str(path)) as (gpg, fd), Processes() as processes:
        decryptor = processes.start(gpg, stdout=subprocess.PIPE, pass_fds=(fd,))
        head = cast(IO[bytes], decryptor.stdout).read(5)
    return head == b"PGDMP"


# --- databases on the same server -------------------------------------------------------------


def own_connection(dbname: str | None = None, alias: str = DEFAULT_DB_ALIAS) -> BaseDatabaseWrapper:
    """A Django connection of our own to `dbname` (default: the settings' database) on the same
    server, never from a pool: a pooled session would keep our transaction's snapshot alive after
    close(), or hand us a session in another state."""
    default = connections[DEFAULT_DB_ALIAS]
    settings = copy.deepcopy(default.settings_dict)
    settings["OPTIONS"].pop("pool", None)
    if dbname:
        settings["NAME"] = dbname
    return load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias)


MAINTENANCE_DATABASES = ("postgres", "template1")  # where to stand to drop the settings' own database


@contextmanager
def server_cursor(*, outside: str | None = None) -> Iterator[Any]:
    """A cursor on a connection of its own (autocommit), for CREATE/DROP DATABASE.

    It connects to the settings' database, unless that is `outside` (a database to drop, which
    no session may be connected to): then to the server's maintenance database, as Django's own
    test runner does."""
    names: tuple[str | None, ...] = (None,)
    if outside is not None and outside == connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]:
        names = MAINTENANCE_DATABASES
    for i, dbname in enumerate(names):
        conn = own_connection(dbname)
        try:
            conn.ensure_connection()
        except Error:
            conn.close()
            if i == len(names) - 1:
                raise
            continue
        try:
            with conn.cursor() as cursor:
                yield cursor
            return
        finally:
            conn.close()


def is_template(name: str) -> bool:
    """Whether `name` is a template database (CREATE DATABASE copies template1 by default)."""
    with server_cursor() as cursor:
        cursor.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", [name])
        row = cursor.fetchone()
        return bool(row and row[0])


def database_exists(name: str) -> bool:
    with server_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def create_database(name: str) -> None:
    with server_cursor(outside=name) as cursor:
        cursor.execute(f"CREATE DATABASE {quote(name)} TEMPLATE template0")


def drop_database(name: str) -> None:
    with server_cursor(outside=name) as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")


@dataclass(frozen=True)
class DatabaseShape:
    """What a DBA gave a database apart from its contents, to give it back when it is dropped
    and created again empty: its owner, connection limit and comment, its privileges (None:
    the defaults) as (grantee, privilege, grantable) with "" for PUBLIC, its settings as
    (role, name, value) with "" for every role, and its encoding and locale (what its text sorts
    and compares by): the CREATE DATABASE clauses that give them back."""

    owner: str
    connection_limit: int
    comment: str | None
    privileges: list[tuple[str, str, bool]] | None
    settings: list[tuple[str, str, str]]
    locale: list[tuple[str, str]]


DATABASE_PRIVILEGES = ("CREATE", "TEMPORARY", "CONNECT")


def database_shape(name: str) -> DatabaseShape:
    with server_cursor() as cursor:
        cursor.execute(
            "SELECT oid, pg_get_userbyid(datdba), datconnlimit, shobj_description(oid, 'pg_database'), "
            "datacl IS NULL FROM pg_database WHERE datname = %s",
            [name],
        )
        oid, owner, limit, comment, default_privileges = cursor.fetchone()
        cursor.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
            "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a WHERE d.oid = %s ORDER BY 1, 2",
            [oid],
        )
        privileges = None if default_privileges else [tuple(row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT CASE WHEN s.setrole = 0 THEN '' ELSE pg_get_userbyid(s.setrole) END, c.setting "
            "FROM pg_db_role_setting s, unnest(s.setconfig) c(setting) WHERE s.setdatabase = %s ORDER BY 1",
            [oid],
        )
        settings = [(role, *setting.split("=", 1)) for role, setting in cursor.fetchall()]
        # to_jsonb: the ICU locale's column is daticulocale in PostgreSQL 15 and 16, datlocale
        # (for the builtin provider too) from 17.
        cursor.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, j ->> 'datlocprovider', "
            "coalesce(j ->> 'datlocale', j ->> 'daticulocale') "
            "FROM pg_database d, to_jsonb(d) j WHERE d.oid = %s",
            [oid],
        )
        encoding, collate, ctype, provider, provider_locale = cursor.fetchone()
    locale = [("ENCODING", encoding), ("LC_COLLATE", collate), ("LC_CTYPE", ctype)]
    if provider == "i":
        locale += [("LOCALE_PROVIDER", "icu"), ("ICU_LOCALE", provider_locale)]
    elif provider == "b":
        locale += [("LOCALE_PROVIDER", "builtin"), ("BUILTIN_LOCALE", provider_locale)]
    return DatabaseShape(owner, limit, comment, privileges, settings, locale)


def recreate_database(name: str) -> None:
    """Drop `name` and create it again empty, with the owner, privileges, settings, connection
    limit and comment it had (a DBA may have made it for the restore, for the app's roles)."""
    shape = database_shape(name)
    with server_cursor() as cursor:
        # CREATE DATABASE ... OWNER needs a superuser or a member of the owner: otherwise the
        # database comes back ours, as it did before (never not at all).
        cursor.execute("SELECT pg_has_role(%s, 'MEMBER')", [shape.owner])
        owner = shape.owner if cursor.fetchone()[0] else None
    if owner is None:
        log.warning("%s is created again owned by the role that restores, not %s", name, shape.owner)
    drop_database(name)
    database = quote(name)
    with server_cursor(outside=name) as cursor:
        locale = "".join(
            f" {clause} {value}" if clause == "LOCALE_PROVIDER" else f" {clause} {literal(value)}"
            for clause, value in shape.locale
        )
        cursor.execute(
            f"CREATE DATABASE {database} {f'OWNER {quote(owner)} ' if owner else ''}TEMPLATE template0 "
            f"CONNECTION LIMIT {int(shape.connection_limit)}{locale}"
        )
        if shape.comment is not None:
            cursor.execute(f"COMMENT ON DATABASE {database} IS %s", [shape.comment])
        if shape.privileges is not None:
            cursor.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC, {quote(shape.owner)}")
            for grantee, privilege, grantable in shape.privileges:
                if privilege not in DATABASE_PRIVILEGES:
                    continue  # none other exists on a database
                option = " WITH GRANT OPTION" if grantable else ""
                to = quote(grantee) if grantee else "PUBLIC"
                cursor.execute(f"GRANT {privilege} ON DATABASE {database} TO {to}{option}")
        for role, setting, value in shape.settings:
            # FROM CURRENT stores the value as the server reads it (a list such as search_path
            # stays a list): set it in this transaction only, then save it.
            where = f"ROLE {quote(role)} IN DATABASE {database}" if role else f"DATABASE {database}"
            cursor.execute("BEGIN")
            try:
                cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
                cursor.execute(f"ALTER {where} SET {quote(setting)} FROM CURRENT")
            except Error as exc:  # e.g. a role's setting, which needs CREATEROLE: the rest still goes
                cursor.execute("ROLLBACK")
                log.warning("%s: could not set %s=%s again (%s): set it by hand", where, setting, value, exc)
            else:
                cursor.execute("COMMIT")


@contextmanager
def database_alias(dbname: str) -> Iterator[str]:
    """A Django connection alias for `dbname` on the settings' server, in this thread, for the block:
    selectors that take `using=` run there as they do on the real database."""
    alias = f"backups_{dbname}"
    wrapper = own_connection(dbname, alias)
    connections[alias] = wrapper
    try:
        yield alias
    finally:
        wrapper.close()
        del connections[alias]


def user_objects(alias: str) -> int:
    """How many objects someone made in the database behind `alias`: tables, views, sequences,
    functions, types, schemas (but `public`) and extensions (but `plpgsql`), outside the system
    schemas. A new database (TEMPLATE template0) holds none."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            """
            WITH n AS (SELECT oid, nspname FROM pg_namespace
                        WHERE nspname <> 'information_schema' AND left(nspname, 3) <> 'pg_')
            SELECT (SELECT count(*) FROM pg_class c JOIN n ON n.oid = c.relnamespace)
                 + (SELECT count(*) FROM pg_proc p JOIN n ON n.oid = p.pronamespace)
                 -- a type of its own: not a table's row type nor an array of another type
                 + (SELECT count(*) FROM pg_type t JOIN n ON n.oid = t.typnamespace
                     WHERE t.typrelid = 0 AND t.typcategory <> 'A')
                 + (SELECT count(*) FROM n WHERE nspname <> 'public')
                 + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
            """
        )
        return int(cursor.fetchone()[0])
