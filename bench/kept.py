"""Seeded databases kept between bench runs (`okada_bench_kept_<preset>`), for the figures that
read a large marketplace (admin pages, API lists, backups, partitions, health screens).

Seeding the large preset takes minutes, so the database is built once and reused while it is
still current: a marker table records the preset, the seed and the migrations applied when it
was seeded. A database whose marker no longer matches (new migrations, another preset) is
dropped and seeded again. Figures that write into it must leave it as they found it (or undo
their writes); `--reseed` forces a fresh one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from . import pgbench

MARKER = "okada_bench_marker"


def _migrations_fingerprint() -> str:
    """Names of every migration in the code: a new one makes a kept database stale."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True, load=True)
    names = sorted(f"{app}.{name}" for app, name in loader.disk_migrations)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _marker(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f"SELECT value FROM {MARKER}").fetchone()  # noqa: S608 (constant)
    except psycopg.Error:
        return None
    return row[0] if row else None


def seeded_database(preset: str, *, log: Any, reseed: bool = False, seed: int = 2026) -> str:
    """URL of a database seeded with `preset` (seed_demo), built now or reused from an earlier run."""
    name = f"okada_bench_kept_{preset}"
    url = pgbench.server_url(name)
    wanted = f"{preset}:{seed}:{_migrations_fingerprint()}"
    if not reseed and _marker(url) == wanted:
        log(f"kept database {name} is current: reused")
        return url
    log(f"kept database {name}: seeding the {preset} preset (the large one takes several minutes)")
    pgbench.drop_database(name)
    pgbench._admin(f'CREATE DATABASE "{name}"')
    pgbench.manage("migrate", "--noinput", "-v0", database_url=url)
    pgbench.manage("seed_demo", "--preset", preset, "--seed", str(seed), "-v0", database_url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"CREATE TABLE {MARKER} (value text NOT NULL)")
        conn.execute(f"INSERT INTO {MARKER} VALUES (%s)", [wanted])  # noqa: S608 (constant)
    return url
