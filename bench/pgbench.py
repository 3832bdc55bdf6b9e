"""The PostgreSQL side of the benchmarks: scratch databases and pgbench baselines.

Every baseline runs on the same server as the figure it is compared with, in the same run, in
a scratch database (`okada_bench_*`) that is created for the occasion and dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PGBENCH_DB = "okada_bench_pgbench"


def server_url(dbname: str) -> str:
    """libpq URL of `dbname` on the server the project's settings point at."""
    db = settings.DATABASES["default"]
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{dbname}"


def _admin(sql: str) -> None:
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def checkpoint() -> None:
    """Write out every dirty page now, so what follows starts from the same state."""
    _admin("CHECKPOINT")


def wal_position() -> int:
    """How far the server's WAL has been written, in bytes: differences measure a workload's WAL."""
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        rows = conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchall()
    return int(rows[0][0])


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(name: str, *, migrate: bool = True) -> Iterator[str]:
    """A new empty database (migrated like the real one), dropped on the way out; yields its URL."""
    drop_database(name)
    _admin(f'CREATE DATABASE "{name}"')
    url = server_url(name)
    try:
        if migrate:
            manage("migrate", "--noinput", "-v0", database_url=url)
        yield url
    finally:
        drop_database(name)


def manage(*args: str, database_url: str) -> str:
    """Run a manage.py command against another database; return its standard output."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "okada.settings.local"}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def pgbench_binary() -> str:
    found = shutil.which("pgbench") or max(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), default=None)
    if not found:
        raise RuntimeError("pgbench not found: install postgresql-contrib (or the server package)")
    return found


def _pgbench(*args: str) -> str:
    done = subprocess.run(
        [pgbench_binary(), *args, server_url(PGBENCH_DB)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


@dataclass(frozen=True)
class Load:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def pgbench_init(scale: int) -> Load:
    """`pgbench -i -s scale --no-vacuum` into a fresh scratch database: rows loaded, seconds taken.

    The four tables hold 100,000 accounts, 10 tellers and 1 branch per unit of scale; the time
    includes building the primary keys, as the seed's includes its indexes.
    """
    drop_database(PGBENCH_DB)
    _admin(f'CREATE DATABASE "{PGBENCH_DB}"')
    started = time.monotonic()
    _pgbench("-i", "-s", str(scale), "--no-vacuum", "-q")
    return Load(rows=scale * (100_000 + 10 + 1), seconds=time.monotonic() - started)


@dataclass(frozen=True)
class Run:
    tps: float  # without the initial connection time, as pgbench reports it
    transactions: int
    wal_bytes: int


def pgbench_run(*, clients: int, jobs: int, seconds: int) -> Run:
    """pgbench's built-in TPC-B-like script (tables from pgbench_init): its TPS, transactions
    and the WAL they wrote.

    pgbench's own clean-up before a run (vacuum of the branches and tellers, truncating the
    history) is done here first, outside the WAL measured, and pgbench is told to skip it (-n).
    """
    with psycopg.connect(server_url(PGBENCH_DB), autocommit=True) as conn:
        for sql in ("VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history"):
            conn.execute(sql)
    before = wal_position()
    out = _pgbench("-n", "-c", str(clients), "-j", str(jobs), "-T", str(seconds), "-b", "tpcb-like")
    wal_bytes = wal_position() - before
    tps = re.search(r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections)", out)
    done = re.search(r"number of transactions actually processed: ([0-9]+)", out)
    if not (tps and done):
        raise RuntimeError(f"cannot read pgbench's TPS and transactions from:\n{out[-2000:]}")
    return Run(tps=float(tps.group(1)), transactions=int(done.group(1)), wal_bytes=wal_bytes)
