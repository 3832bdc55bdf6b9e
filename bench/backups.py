"""Backups: the backup job's wall time against a bare `pg_dump -Fc` of the same database, and
the restore drill's restore time, on a kept seeded marketplace (`bench.kept`).

A backup does more than pg_dump: it exports a snapshot and counts every table's rows in it while
pg_dump dumps that snapshot, hashes the stream on its way to disk, fsyncs and renames. The goal is
that all this costs at most 10% over pg_dump alone. Both write into the same directory, in turns
(bare, backup, bare, backup ...) after one unmeasured bare dump that warms the cache; the figure
is the median backup against the median bare dump. The drill then restores the last backup into
a scratch database and checks it, as the daily job does. The backup rows and files made here are
removed afterwards, so the kept database stays as it was.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from . import isolated, kept
from .report import Figure, at_least

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.10


def run(*, preset: str, rounds: int, log: Any) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    workdir = ROOT / "var" / "bench-backups"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    log(f"backup: {rounds} round(s) of bare pg_dump -Fc then our backup, on the {preset} preset")
    try:
        result = isolated.call(url, _measure, str(workdir), rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bare, ours = statistics.median(result["bare"]), statistics.median(result["ours"])
    log(f"backup: bare {result['bare']} s, ours {result['ours']} s; drill {result['drill']}")
    drill = result["drill"]
    passed = drill["outcome"] == "passed"
    return [
        Figure(
            f"backup {preset}: wall time",
            ours,
            "s",
            "bare pg_dump -Fc",
            bare,
            goal=f"<= {GOAL:.2f} x baseline",
            check=lambda f: f.ratio is not None and f.ratio <= GOAL,
        ),
        Figure(
            f"backup {preset}: file size",
            result["size_bytes"] / 1e6,
            "MB",
            "bare pg_dump -Fc",
            result["bare_size"] / 1e6,
        ),
        Figure(f"backup {preset}: rows counted in the snapshot", result["rows"], "rows"),
        Figure(
            f"restore drill {preset}: restore time", drill["restore_seconds"], "s", "backup wall time", ours
        ),
        Figure(f"restore drill {preset}: whole drill", drill["seconds"], "s"),
        Figure(f"restore drill {preset}: passed", 1.0 if passed else 0.0, "", goal="= 1", check=at_least(1)),
    ]


def _measure(workdir: str, rounds: int) -> dict[str, Any]:
    """In a process set up for the kept database: the turns of bare dumps and backups, then a drill."""
    import subprocess
    import time

    from django.conf import settings
    from django.utils import timezone

    from backups import pg
    from backups.models import Backup, BackupKind
    from backups.services import backup_run, backup_verify
    from okada.core.db import libpq_env

    settings.OKADA_BACKUP_DIR = workdir
    settings.OKADA_BACKUP_PASSPHRASE = ""
    target = Path(workdir) / "bare.dump"

    def bare() -> float:
        target.unlink(missing_ok=True)
        started = time.monotonic()
        subprocess.run([pg.binary("pg_dump"), "-Fc", "-f", str(target)], env=libpq_env(), check=True)
        return time.monotonic() - started

    began = timezone.now()
    made: list[Backup] = []
    bare_times: list[float] = []
    ours: list[float] = []
    try:
        bare()  # warms the cache for both
        for _ in range(rounds):
            bare_times.append(bare())
            for old in made:  # one backup on disk at a time
                for path in Path(workdir).glob(f"{old.file_name}*"):
                    path.unlink()
            started = time.monotonic()
            made.append(backup_run(kind=BackupKind.MANUAL))
            ours.append(time.monotonic() - started)
        backup = made[-1]
        started = time.monotonic()
        verification = backup_verify(backup=backup)
        drill_seconds = time.monotonic() - started
        if verification is None:
            raise RuntimeError("the drill found no backup to verify")
        return {
            "bare": [round(t, 2) for t in bare_times],
            "ours": [round(t, 2) for t in ours],
            "size_bytes": backup.size_bytes,
            "bare_size": target.stat().st_size,
            "rows": sum(backup.manifest.values()),
            "drill": {
                "outcome": str(verification.outcome),
                "restore_seconds": verification.restore_seconds or 0.0,
                "seconds": drill_seconds,
                "error": verification.error,
            },
        }
    finally:
        Backup.objects.filter(created_at__gte=began).delete()  # the kept database as it was
