"""Liveness and readiness probes (DESIGN.md section 4): JSON with a status per check.

`/readyz` is public (load balancers call it without credentials), and a failure's text names
hosts, ports and database users. Anonymous callers get `"detail": "unavailable"`; the text goes to
the log (with the exception), and signed-in staff see it in the answer too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)

PUBLIC_DETAIL = "unavailable"  # what a caller who is not staff reads for a failed check

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


def _caller_is_staff(request: HttpRequest) -> bool:
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.is_staff)
    except Exception:  # the session and user live in Redis and PostgreSQL: maybe what is down
        return False


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    show_detail = _caller_is_staff(request)
    checks: dict[str, dict[str, object]] = {}
    for name, check in {**CORE_CHECKS, **READINESS_CHECKS}.items():
        started = time.monotonic()
        try:
            problem = check()
        except Exception as exc:  # a probe reports failures, it never raises
            problem = f"{type(exc).__name__}: {exc}"
            log.error("readiness check %s failed: %s", name, problem, exc_info=exc)
        else:
            if problem is not None:
                log.warning("readiness check %s failed: %s", name, problem)
        entry: dict[str, object] = {
            "status": "ok" if problem is None else "fail",
            "ms": round((time.monotonic() - started) * 1000, 1),
        }
        if problem is not None:
            entry["detail"] = problem if show_detail else PUBLIC_DETAIL
        checks[name] = entry
    ok = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)
