"""Seeded databases kept between bench runs (`okada_bench_kept_<preset>`), for the figures that
read a large marketplace (admin pages, API lists, backups, partitions, health screens).

Seeding the large preset takes minutes, so the database is built once and reused while it is
still current: a marker table records the preset, the seed and the migrations applied when it
was seeded. A database of the same preset and seed whose migrations are all still in the code is
migrated forward (as production would be) instead of seeded again, which saves the large seed's
minutes after every new migration; any other mismatch drops it and seeds it again. Figures that
write into it must leave it as they found it (or undo their writes). To force a fresh seed, drop
the database (`DROP DATABASE okada_bench_kept_<preset>`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from . import isolated, pgbench

MARKER = "okada_bench_marker"


def _migrations_fingerprint() -> str:
    """Names of every migration in the code: a new one makes a kept database stale."""
    names = sorted(_disk_migrations())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _marker(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f"SELECT value FROM {MARKER}").fetchone()  # noqa: S608 (constant)
    except psycopg.Error:
        return None
    return row[0] if row else None


def _applied_migrations(url: str) -> set[str] | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT app || '.' || name FROM django_migrations").fetchall()
    except psycopg.Error:
        return None
    return {row[0] for row in rows}


def _disk_migrations() -> set[str]:
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True, load=True)
    return {f"{app}.{name}" for app, name in loader.disk_migrations}


def _migrate_forward(url: str, *, preset: str, seed: int, wanted: str, log: Any) -> bool:
    """Bring a kept database of the same preset and seed up to the code's migrations, if it can be."""
    marker, applied = _marker(url), _applied_migrations(url)
    if marker is None or applied is None or not marker.startswith(f"{preset}:{seed}:"):
        return False
    if not applied <= _disk_migrations():
        return False  # a migration it ran is gone from the code: only a fresh seed is trustworthy
    log(f"kept database of the {preset} preset: migrating it forward to the code's migrations")
    pgbench.manage("migrate", "--noinput", "-v0", database_url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute(f"UPDATE {MARKER} SET value = %s", [wanted])  # noqa: S608 (constant)
    return True


def _fill_sync() -> dict[str, int]:
    from django.db import connection, transaction
    from django.utils import timezone

    from okada.demo.sync_data import fill_sync

    with transaction.atomic(), connection.cursor() as cur:
        return fill_sync(cur, now=timezone.now())


def _with_sync_activity(url: str, *, log: Any) -> str:
    """The database with offline-sync activity (okada.demo.sync_data: devices, pushed mutations,
    conflicts, the feed), which seed_demo does not write: added once, in place (a minute or two
    for the large preset), so a database kept from before has it without seeding again."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT EXISTS (SELECT FROM sync_device)").fetchone()
    if not (row and row[0]):
        log("kept database: adding offline-sync activity (devices, pushed mutations, conflicts)")
        isolated.call(url, _fill_sync)
    return url


def seeded_database(preset: str, *, log: Any, seed: int = 2026) -> str:
    """URL of a database seeded with `preset` (seed_demo, then its sync activity), built now or
    reused from an earlier run."""
    name = f"okada_bench_kept_{preset}"
    url = pgbench.server_url(name)
    wanted = f"{preset}:{seed}:{_migrations_fingerprint()}"
    if _marker(url) == wanted:
        log(f"kept database {name} is current: reused")
        return _with_sync_activity(url, log=log)
    if _migrate_forward(url, preset=preset, seed=seed, wanted=wanted, log=log):
        return _with_sync_activity(url, log=log)
    log(f"kept database {name}: seeding the {preset} preset (the large one takes several minutes)")
    pgbench.drop_database(name)
    pgbench._admin(f'CREATE DATABASE "{name}"')
    pgbench.manage("migrate", "--noinput", "-v0", database_url=url)
    pgbench.manage("seed_demo", "--preset", preset, "--seed", str(seed), "-v0", database_url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute(f"CREATE TABLE {MARKER} (value text NOT NULL)")
        conn.execute(f"INSERT INTO {MARKER} VALUES (%s)", [wanted])  # noqa: S608 (constant)
    return _with_sync_activity(url, log=log)
