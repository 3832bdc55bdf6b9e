"""Health screen figures, on a kept seeded marketplace (`bench.kept.seeded_database(preset)`).

Each screen of Database health (overview with the marketplace panels, queries, activity, storage,
indexes, sequences, connections) is rendered by Django's test client as a superuser, in the same
process (server time: middleware, every query, the template), median of interleaved rounds.
Goal: under 300 ms each. Baseline, measured in the same rounds: the admin's Job runs list, a
plain changelist of the same admin.

An hourly snapshot is taken first, so the deltas and growth charts have something to read. It
all happens in one transaction rolled back at the end: the kept database is left as it was.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from . import isolated, kept
from .report import Figure, at_most

SCREENS = {
    "overview": "admin:health_databasehealth_changelist",
    "queries": "admin:health_queries",
    "activity": "admin:health_activity",
    "storage": "admin:health_storage",
    "indexes": "admin:health_indexes",
    "sequences": "admin:health_sequences",
    "connections": "admin:health_connections",
}
BASELINE = "admin:core_jobrun_changelist"
GOAL_MS = 300


def run(*, preset: str, log: Any, rounds: int = 7) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    log(f"health: the database health screens on the {preset} preset ({rounds} rounds)")
    result = isolated.call(url, _measure, rounds)
    figures = [
        Figure(
            f"health ({preset}): {screen} screen",
            result["screens"][screen],
            "ms",
            "admin Job runs list",
            result["baseline"],
            goal=f"<= {GOAL_MS} ms",
            check=at_most(GOAL_MS),
        )
        for screen in SCREENS
    ]
    figures.append(Figure(f"health ({preset}): hourly snapshot", result["snapshot_ms"], "ms"))
    figures.append(Figure(f"health ({preset}): /metrics (uncached)", result["metrics_ms"], "ms"))
    return figures


def _measure(rounds: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import transaction
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from okada.health import metrics, services

    setup_test_environment()  # the test client's hosts and in-memory responses
    logging.getLogger("okada.access").setLevel(logging.WARNING)  # one line per request: noise here
    times: dict[str, list[float]] = {name: [] for name in [*SCREENS, "baseline"]}
    with transaction.atomic():
        started = time.perf_counter()
        services.snapshot_take()
        snapshot_ms = (time.perf_counter() - started) * 1000
        user = get_user_model().objects.create_superuser("okada-bench-health", "bench@example.com", "x")
        client = Client()
        client.force_login(user)
        for _name, view in [*SCREENS.items(), ("baseline", BASELINE)]:
            _get(client, reverse(view))  # warm: templates compiled, connections made
        for _ in range(rounds):
            for name, view in [*SCREENS.items(), ("baseline", BASELINE)]:
                started = time.perf_counter()
                _get(client, reverse(view))
                times[name].append((time.perf_counter() - started) * 1000)
        cache.delete(metrics.CACHE_KEY)
        started = time.perf_counter()
        metrics.compute()
        metrics_ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    return {
        "screens": {name: statistics.median(times[name]) for name in SCREENS},
        "baseline": statistics.median(times["baseline"]),
        "snapshot_ms": snapshot_ms,
        "metrics_ms": metrics_ms,
    }


def _get(client: Any, path: str) -> None:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")
    body = response.content
    if b"Unavailable right now" in body or b"This figure is unavailable" in body:
        raise RuntimeError(f"{path}: a section could not be read (statement timeout?)")
