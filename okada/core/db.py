"""Database helpers: hot paths that are one SQL statement (e.g. a call to a SQL function),
cache keys that belong to one database, a session's `lock_timeout` for a block, and the
environment that points libpq tools (pg_dump, pg_restore, psql) where Django connects."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction
from django_prometheus.db import metrics as db_metrics


class _PreparedCursor(psycopg.Cursor[Any]):
    """A psycopg cursor with server-side parameters whose statements are prepared on the
    connection at first use: PostgreSQL parses and plans them once per connection, and psycopg
    sends the parameters without quoting them into the text (Django's cursors bind client-side
    and never prepare).

    Its statements are in /metrics as every other query (django-prometheus counts those in the
    connection's own cursor class, which this one is not): django_db_execute_total,
    django_db_query_duration_seconds and django_db_errors_total by exception type, under the
    connection's alias and vendor. The cursor lives as long as its connection, so its series are
    looked up once, not at each statement as django-prometheus does."""

    __slots__ = ("_duration", "_executed", "_labels")

    def __init__(self, pgconn: Any, *, alias: str, vendor: str) -> None:
        super().__init__(pgconn)
        self._labels = (alias, vendor)
        self._executed = db_metrics.execute_total.labels(alias, vendor)
        self._duration = db_metrics.query_duration_seconds.labels(alias, vendor)

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self._executed.inc()
        started = time.perf_counter()  # the clock of prometheus_client's Histogram.time()
        try:
            return super().execute(query, params, prepare=True)
        except BaseException as exc:  # as django_prometheus.db.common.ExceptionCounterByType
            db_metrics.errors_total.labels(*self._labels, type(exc).__name__).inc()
            raise
        finally:
            self._duration.observe(time.perf_counter() - started)


def one_value(sql: str, params: list[Any] | dict[str, Any], *, savepoint: bool = True) -> Any:
    """The single value of one statement that is a whole transaction by itself.

    In autocommit it runs bare: PostgreSQL makes one statement atomic, and the BEGIN and COMMIT
    round trips are saved, so the call is one round trip. Inside a caller's transaction it runs
    in a savepoint, so that a failure leaves that transaction usable; with `savepoint=False` a
    failure fails the caller's transaction instead, and the two round trips are saved. It goes
    through Django's cursor wrapper all the same: database errors come out as django.db errors,
    and execute wrappers and query logging see the statement.
    """
    with transaction.atomic() if savepoint and connection.in_atomic_block else nullcontext():
        row = _run(sql, params).fetchone()
    return row[0]


def execute(sql: str, params: list[Any] | dict[str, Any]) -> int:
    """One statement that returns no rows, prepared like one_value's, run where the caller is
    (in its transaction, without a savepoint): a hot-path write that needs no ORM. The number of
    rows it changed."""
    return int(_run(sql, params).rowcount)


def transaction_lock(name: str) -> None:
    """Wait for, then hold until the transaction ends, the advisory lock called `name`: one
    holder at a time, across every connection (a named critical section of a service)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def prepared_rows(sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of one read statement, prepared on the connection at first use (a hot read whose
    SQL text is one of a few fixed ones: PostgreSQL plans it once per connection, and nothing is
    compiled in Python). Through Django's cursor wrapper, like `one_value`."""
    return list(_run(sql, params).fetchall())


def _run(sql: str, params: list[Any] | dict[str, Any]) -> Any:
    raw = _prepared_cursor()
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    cursor = wrap(raw)  # not closed after use: the raw cursor serves the next call
    cursor.execute(sql, params)
    return cursor


def _prepared_cursor() -> Any:
    """This thread's connection's prepared cursor, made once per database connection.

    The connection is checked first, as Django checks it before each of its own cursors
    (CONN_HEALTH_CHECKS, once per request): a kept connection that died between requests (a
    database restart, a failover) is replaced instead of failing the request. A prepared
    statement is often a request's first (the Idempotency-Key lookup, the placement, the product
    list); the new connection prepares its statements again at first use."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    pgconn = connection.connection
    cached = getattr(connection, "_okada_prepared_cursor", None)
    if cached is None or cached.connection is not pgconn or cached.closed:
        cached = _PreparedCursor(pgconn, alias=connection.alias, vendor=connection.vendor)
        connection._okada_prepared_cursor = cached  # type: ignore[attr-defined]
    return cached


# PostgreSQL's side of every connection's TCP keepalives: a client host that vanishes mid-
# transaction (a power cut, a network gone) sends nothing, and without them the server would keep
# its backend, its row locks (a placement's stock rows) and its advisory locks (a job's, an
# Idempotency-Key's) for the kernel's default: 2 hours + 9 probes. With them: about a minute
# (probe after 30 s idle, every 10 s, dropped after 3 unanswered; sent data unacknowledged for
# 60 s drops it too). Over a Unix socket PostgreSQL ignores them.
SERVER_KEEPALIVE = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
SET_SERVER_KEEPALIVE = "SELECT " + ", ".join(
    f"set_config('{name}', '{value}', false)" for name, value in SERVER_KEEPALIVE.items()
)


def set_server_keepalive(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: every new Django connection gets SERVER_KEEPALIVE (one
    statement, once per connection: CONN_MAX_AGE keeps them; with Django's connection pool,
    once per checkout).

    It protects direct connections only. Behind PgBouncer, PostgreSQL's peer is PgBouncer, which
    stays up when a web host vanishes: set PgBouncer's own client keepalives (`tcp_keepalive`,
    `tcp_keepidle`, `tcp_keepintvl`, `tcp_keepcnt`, `tcp_user_timeout`) and
    `idle_transaction_timeout` to the same effect (README, Operations)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(SET_SERVER_KEEPALIVE)


LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired (also NOWAIT refused)


@contextmanager
def session_lock_timeout(conn: Any, milliseconds: int) -> Iterator[None]:
    """`lock_timeout` of the session behind `conn` (a Django connection) for the block, outside
    any transaction: every statement of the block, those that run outside a transaction too
    (CREATE INDEX CONCURRENTLY, DETACH ... CONCURRENTLY), waits at most this long for a lock
    (writers queue behind a waiting DDL meanwhile), then fails with `is_lock_timeout`. The
    session's previous value comes back afterwards. (Inside one transaction of its own, DDL uses
    okada.partitions.ddl.set_local_lock_timeout.)"""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, false)",
            [f"{int(milliseconds)}ms"],
        )
        previous = cursor.fetchone()[0]

    def restore() -> None:
        if not conn.needs_rollback and conn.connection is not None:
            with conn.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])

    try:
        yield
    except BaseException:
        # The block's error is the one to see: on a dropped connection the restore fails too.
        with suppress(Exception):
            restore()
        raise
    restore()


def reconnect_if_broken(using: str = DEFAULT_DB_ALIAS) -> None:
    """After a database error: close the connection if its session is gone (pg_terminate_backend,
    a server restart), so the next query opens a new one. Django does this between requests only;
    a job that records its own failure (JobRun, Backup, PartitionAction) would otherwise find the
    dead session again and lose the record. Outside a transaction only (inside one, a new session
    would not be the transaction's)."""
    conn = connections[using]
    if conn.connection is not None and not conn.in_atomic_block:
        conn.close_if_unusable_or_obsolete()


def is_lock_timeout(exc: BaseException) -> bool:
    """True for the error a statement raises when its lock was not granted within lock_timeout."""
    cause = getattr(exc, "__cause__", None)
    return isinstance(exc, OperationalError) and getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE


def database_cache_key(*parts: str) -> str:
    """A cache key for figures read from this connection's database: one Redis may serve several
    databases (a development server beside the kept benchmark databases), whose figures differ."""
    return ":".join((*parts[:1], connection.settings_dict["NAME"], *parts[1:]))


@functools.cache
def _libpq_variables() -> dict[str, str]:
    """libpq's own table of connection parameters and the PG* variable each reads, e.g.
    {"sslmode": "PGSSLMODE", "connect_timeout": "PGCONNECT_TIMEOUT", ...} (PQconndefaults)."""
    return {
        option.keyword.decode(): option.envvar.decode()
        for option in psycopg.pq.Conninfo.get_defaults()
        if option.envvar
    }


def postgresql_program(name: str) -> str | None:
    """The newest installed PostgreSQL's `name` (pg_dump refuses a server newer than itself; the
    versions compare as numbers: 9 is older than 15), else the one on PATH, else None."""

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/bin/", path)
        return int(match.group(1)) if match else 0

    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=major)
    return installed[-1] if installed else shutil.which(name)


def libpq_env(dbname: str | None = None, *, alias: str = DEFAULT_DB_ALIAS) -> dict[str, str]:
    """The environment for a libpq tool (pg_dump, pg_restore, psql) that connects where Django's
    `alias` does, to `dbname` (default: its NAME). The one place backups and partition archives
    get their connection from.

    DATABASE_URL is the single source of truth: the caller's own PG* variables are dropped. HOST,
    PORT, USER, PASSWORD and NAME become PGHOST ... PGDATABASE, each only when set (an empty HOST
    leaves PGHOST unset: libpq then uses its Unix socket, as psycopg does for Django). Every
    OPTIONS key that libpq reads from the environment (its own table: sslmode, sslrootcert,
    sslcert, sslkey, passfile, service, connect_timeout, application_name, target_session_attrs,
    options ...) becomes its PG* variable; keys that are not libpq's (psycopg's
    prepare_threshold, Django's isolation_level, pool ...) are left out, and so are the few libpq
    has no variable for (keepalives*, tcp_user_timeout, sslpassword). Secrets such as the
    password travel in this environment, never on a command line (`ps` shows those to anyone).
    """
    db = connections[alias].settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    variables = _libpq_variables()
    given = {**(db.get("OPTIONS") or {})}
    # As Django's connection: a setting that is set wins over the same key in OPTIONS.
    given.update({key: db[name] for key, name in _SETTINGS.items() if db.get(name)})
    if dbname:
        given["dbname"] = dbname
    given.pop("client_encoding", None)  # pg_dump keeps the database's encoding unless told otherwise
    for key, value in given.items():
        if key in variables and value not in (None, ""):
            env[variables[key]] = _libpq_value(value)
    return env


# Django's settings keys and the libpq parameters they are (OPTIONS may name these too).
_SETTINGS = {"host": "HOST", "port": "PORT", "user": "USER", "password": "PASSWORD", "dbname": "NAME"}


def _libpq_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"  # libpq reads booleans as 1/0
    return str(value)
