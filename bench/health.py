"""Health figures besides the screens (those are in bench/admin.py, `--only admin`), on a kept
seeded marketplace (`bench.kept.seeded_database(preset)`):

- an hourly snapshot (`okada.health.services.snapshot_take`: every table's and index's sizes and
  counters, the top statements): its time;
- Okada's /metrics figures computed without the cache (what a scrape costs every
  OKADA_METRICS_CACHE_SECONDS): their time.

Reported, not judged (no goal). Everything happens in one transaction rolled back at the end:
the kept database is left as it was.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from . import isolated, kept
from .report import Figure


def run(*, preset: str, log: Any, rounds: int = 5) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    log(f"health: a snapshot and an uncached /metrics on the {preset} preset ({rounds} rounds)")
    result = isolated.call(url, _measure, rounds)
    return [
        Figure(f"health ({preset}): hourly snapshot, median", result["snapshot_ms"], "ms"),
        Figure(f"health ({preset}): /metrics figures uncached, median", result["metrics_ms"], "ms"),
    ]


def _measure(rounds: int) -> dict[str, Any]:
    from django.db import transaction

    from okada.health import metrics, services
    from okada.health.models import Snapshot

    snapshots, scrapes = [], []
    for _ in range(rounds):
        with transaction.atomic():
            Snapshot.objects.all().delete()  # this hour's, if the job took one: rolled back below
            started = time.perf_counter()
            services.snapshot_take()
            snapshots.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            metrics.compute()
            scrapes.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return {"snapshot_ms": statistics.median(snapshots), "metrics_ms": statistics.median(scrapes)}
