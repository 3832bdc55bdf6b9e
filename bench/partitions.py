"""Partition figures, read on a kept seeded marketplace (`bench.kept.seeded_database(preset)`; the
large preset has 24 months of order events, so 24+ monthly partitions).

- A one-month range query on orders_orderevent, planning + execution time (EXPLAIN ANALYZE's own
  figures, median of interleaved rounds), against the same rows copied into an unpartitioned
  table with the same indexes, then against that copy with an index on created_at as well (the
  alternative to partitioning one would otherwise build). Two query shapes: the month's events
  counted by kind (reads the whole month) and the month's newest 50 events (a page).
- How many partitions the one-month query reads (plan-time pruning): must be 1.
- A maintenance run that has nothing to do: its time and the SQL statements it sends.

The copy is an unlogged table made for the run and dropped afterwards; months a first maintenance
run had to make (the kept database may be older than the premake horizon) are dropped again, and
their log rows deleted, so the kept database is left as it was found.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from . import isolated, kept
from .report import Figure

TABLE = "orders_orderevent"
COPY = "okada_bench_orderevent_flat"
QUERIES = {
    "month count by kind": (
        "SELECT kind, count(*) FROM {t} WHERE created_at >= %s AND created_at < %s GROUP BY kind"
    ),
    "month newest 50": (
        "SELECT id, created_at, order_id, kind FROM {t} WHERE created_at >= %s AND created_at < %s "
        "ORDER BY created_at DESC LIMIT 50"
    ),
}


def run(*, preset: str, log: Any, rounds: int = 15) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    log(f"partitions: one-month queries and a maintenance run on the {preset} preset")
    result = isolated.call(url, _measure, rounds)
    figures = [
        Figure(f"partitions ({preset}): orders_orderevent months", result["partitions"], "partitions"),
        Figure(f"partitions ({preset}): month queried, its events", result["month_rows"], "rows"),
        Figure(
            f"partitions ({preset}): partitions read by a one-month query",
            result["partitions_read"],
            "partitions",
            goal="= 1",
            check=lambda f: f.value == 1,
        ),
    ]
    for shape in QUERIES:
        for part in ("planning", "execution", "total"):
            ours = result["partitioned"][shape][part]
            figures.append(
                Figure(
                    f"partitions ({preset}): {shape}, {part}",
                    ours,
                    "ms",
                    "unpartitioned copy, same indexes",
                    result["flat"][shape][part],
                )
            )
        figures.append(
            Figure(
                f"partitions ({preset}): {shape}, total (vs an index)",
                result["partitioned"][shape]["total"],
                "ms",
                "unpartitioned copy + index on created_at",
                result["flat_indexed"][shape]["total"],
            )
        )
    figures += [
        Figure(f"partitions ({preset}): maintenance run with nothing to do", result["noop_ms"], "ms"),
        Figure(f"partitions ({preset}):   its SQL statements", result["noop_statements"], "statements"),
    ]
    if result["undone"]:
        log(f"partitions: the first maintenance run made {result['undone']}; dropped again")
    return figures


def _measure(rounds: int) -> dict[str, Any]:
    from django.db import connection

    from okada.partitions import ddl

    with connection.cursor() as cursor:
        months = [p for p in ddl.partitions(cursor, TABLE) if p.month is not None]
        with_rows = [p for p in months if p.estimated_rows]
        # The last full month with events (the newest is still being written).
        chosen = with_rows[-2] if len(with_rows) > 1 else with_rows[-1]
        bounds = [chosen.starts_at, chosen.ends_at]
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE created_at >= %s AND created_at < %s", bounds)  # noqa: S608
        month_rows = cursor.fetchone()[0]
        _make_copy(cursor)
        try:
            partitions_read = _partitions_read(cursor, QUERIES["month count by kind"].format(t=TABLE), bounds)
            partitioned, flat = _interleaved(cursor, [TABLE, COPY], bounds, rounds)
            cursor.execute(f"CREATE INDEX {COPY}_created ON {COPY} (created_at)")
            cursor.execute(f"ANALYZE {COPY}")
            _, flat_indexed = _interleaved(cursor, [TABLE, COPY], bounds, rounds)
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {COPY}")
    noop_ms, statements, undone = _maintenance_with_nothing_to_do()
    return {
        "partitions": len(months),
        "month_rows": month_rows,
        "partitions_read": partitions_read,
        "partitioned": partitioned,
        "flat": flat,
        "flat_indexed": flat_indexed,
        "noop_ms": noop_ms,
        "noop_statements": statements,
        "undone": undone,
    }


def _make_copy(cursor: Any) -> None:
    """The same rows in one plain table with the partitioned table's indexes."""
    cursor.execute(f"DROP TABLE IF EXISTS {COPY}")
    cursor.execute(f"CREATE UNLOGGED TABLE {COPY} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(f"INSERT INTO {COPY} SELECT * FROM {TABLE}")  # noqa: S608
    cursor.execute(f"ALTER TABLE {COPY} ADD PRIMARY KEY (id, created_at)")
    cursor.execute(f"CREATE INDEX {COPY}_order_ts ON {COPY} (order_id, created_at)")
    cursor.execute(f"VACUUM ANALYZE {COPY}")


def _explain(cursor: Any, sql: str, params: list[Any]) -> dict[str, Any]:
    cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
    return cursor.fetchone()[0][0]


def _partitions_read(cursor: Any, sql: str, params: list[Any]) -> int:
    def relations(node: dict[str, Any]) -> set[str]:
        found = {node["Relation Name"]} if "Relation Name" in node else set()
        for child in node.get("Plans", []):
            found |= relations(child)
        return found

    return len(relations(_explain(cursor, sql, params)["Plan"]))


def _interleaved(
    cursor: Any, tables: list[str], params: list[Any], rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Median planning/execution/total ms per query shape, for each table, the tables taking
    turns in every round (the machine's speed drifts; turns share the drift)."""
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        t: {shape: {"planning": [], "execution": [], "total": []} for shape in QUERIES} for t in tables
    }
    for round_no in range(rounds + 1):
        for table in tables:
            for shape, sql in QUERIES.items():
                explained = _explain(cursor, sql.format(t=table), params)
                if round_no == 0:
                    continue  # warm-up: caches and the catalog
                s = samples[table][shape]
                s["planning"].append(explained["Planning Time"])
                s["execution"].append(explained["Execution Time"])
                s["total"].append(explained["Planning Time"] + explained["Execution Time"])
    medians = {
        t: {shape: {k: statistics.median(v) for k, v in parts.items()} for shape, parts in by_shape.items()}
        for t, by_shape in samples.items()
    }
    return medians[tables[0]], medians[tables[1]]


def _maintenance_with_nothing_to_do() -> tuple[float, int, list[str]]:
    """Median ms and statements of a maintenance run after one that did whatever was due; what
    the first run made is undone afterwards."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from okada.partitions import ddl
    from okada.partitions.models import PartitionAction
    from okada.partitions.services import maintenance_run

    started = timezone.now()
    first = maintenance_run()
    made = [label.split(" ", 1)[1] for label in first["done"] if label.startswith("created ")]
    if first["done"] != [f"created {name}" for name in made]:
        raise RuntimeError(f"the kept database needed more than premade months: {first['done']}")
    timings, statements = [], 0
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            again = maintenance_run()
            timings.append((time.perf_counter() - t0) * 1000)
        if again["done"] or again["failed"] or again["deferred"]:
            raise RuntimeError(f"a second maintenance run still had work: {again}")
        statements = len(queries)
    with connection.cursor() as cursor:
        for name in made:
            if ddl.count_rows(cursor, name):  # never: months ahead of the seeded period
                raise RuntimeError(f"{name} has rows: not dropped")
            ddl.drop_table(cursor, name)
    PartitionAction.objects.filter(created_at__gte=started).delete()
    return statistics.median(timings), statements, made
