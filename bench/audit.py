"""The nightly invariant audit (`orders.audit`) on a seeded marketplace, against reading its tables.

The audit reads whole tables: stock, the stock ledger, orders, their items and payments. Its
baseline is PostgreSQL reading the same tables once (a count(*) of each) on the same database in
the same run, so the ratio says what the checks' joins and aggregates cost on top of the reads
they cannot avoid. The two take turns (the machine's speed drifts), and the median of each is
kept. The marketplace (a kept seeded database, bench.kept) is consistent: the audit must find
nothing. On the large preset (--large, or --preset large) a nightly run must stay within minutes.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from . import isolated, kept
from .report import Figure, at_most

TABLES = ("catalog_stock", "catalog_stockmovement", "orders_order", "orders_orderitem", "orders_payment")
ROUNDS = 3
LARGE_GOAL_MINUTES = 10.0


def run(*, preset: str, log: Any) -> list[Figure]:
    large = preset == "large"
    url = kept.seeded_database(preset, log=log)
    log(f"audit: {ROUNDS} rounds of reading {len(TABLES)} tables, then the invariant audit ({preset})")
    result = isolated.call(url, _measure)
    for number, (scan, audit) in enumerate(zip(result["scans"], result["audits"], strict=True), 1):
        log(f"  round {number}: tables read in {scan:.2f} s, audit in {audit:.2f} s")
    audit_s, scan_s = statistics.median(result["audits"]), statistics.median(result["scans"])
    return [
        Figure(
            f"invariant audit ({preset})",
            audit_s,
            "s",
            f"count(*) of its {len(TABLES)} tables",
            scan_s,
            goal=f"<= {LARGE_GOAL_MINUTES * 60:g} s" if large else "",
            check=at_most(LARGE_GOAL_MINUTES * 60) if large else None,
        ),
        Figure("  rows it reads", result["rows"], "rows"),
        Figure("invariant audit findings", result["findings"], "rows", goal="= 0", check=at_most(0)),
    ]


def _measure() -> dict[str, Any]:
    from django.db import connection

    from orders.audit import invariant_audit

    scans, audits, rows, findings = [], [], 0, 0
    for _ in range(ROUNDS):
        started = time.monotonic()
        with connection.cursor() as cur:
            rows = 0
            for table in TABLES:
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (constants)
                rows += cur.fetchone()[0]
        scans.append(time.monotonic() - started)
        started = time.monotonic()
        findings = invariant_audit().findings
        audits.append(time.monotonic() - started)
    return {"scans": scans, "audits": audits, "rows": rows, "findings": findings}
