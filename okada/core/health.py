"""Liveness and readiness probes (DESIGN.md section 4): JSON with a status per check."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

# Extra readiness checks registered by other apps (e.g. backups: last good backup age).
READINESS_CHECKS: dict[str, Callable[[], str | None]] = {}


def _database() -> str | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cur:
        cur.execute("SELECT 1")
    return None


def _redis() -> str | None:
    client = cache.client.get_client(write=True)  # type: ignore[attr-defined]
    client.ping()
    return None


_migrations_done = False  # once all are applied they stay applied: skip loading the graph again


def _migrations() -> str | None:
    global _migrations_done
    if _migrations_done:
        return None
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"{len(plan)} migration(s) not applied: " + ", ".join(
            f"{m.app_label}.{m.name}" for m, _ in plan[:5]
        )
    _migrations_done = True
    return None


CORE_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": _database,
    "redis": _redis,
    "migrations": _migrations,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked (a dead database must not restart web)."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, object]] = {}
    for name, check in {**CORE_CHECKS, **READINESS_CHECKS}.items():
        started = time.monotonic()
        try:
            problem = check()
        except Exception as exc:  # a probe reports failures, it never raises
            problem = f"{type(exc).__name__}: {exc}"
        entry: dict[str, object] = {
            "status": "ok" if problem is None else "fail",
            "ms": round((time.monotonic() - started) * 1000, 1),
        }
        if problem is not None:
            entry["detail"] = problem
        checks[name] = entry
    ok = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)
