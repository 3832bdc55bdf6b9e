"""Query plans as a table of millions would get them, on the test database's few rows."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection


def plan_nodes(sql: str, params: Any = None, *, sorts: bool = False) -> list[dict[str, Any]]:
    """Every node of the EXPLAIN (FORMAT JSON) plan of `sql`, depth first, planned with sorts and
    sequential scans off: a few rows here, millions in production, so the planner is told to avoid
    what it does at scale when it can; without an index in the right order, it cannot. `sorts`
    leaves sorts on, for a statement whose few matches are found by an index and then sorted."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off" + ("" if sorts else "; SET enable_sort = off"))
        try:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET enable_seqscan; RESET enable_sort")
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return list(_walk(plan[0]["Plan"]))


def _walk(plan: dict[str, Any]) -> Any:
    yield plan
    for child in plan.get("Plans", []):
        yield from _walk(child)


def executed_plan_nodes(sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Every node of the plan PostgreSQL ran for `sql` (EXPLAIN ANALYZE: with how many rows and
    loops each ran), depth first, as planned: no planner setting changed."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return list(_walk(plan[0]["Plan"]))
