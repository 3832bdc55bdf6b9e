"""Seed throughput: `seed_demo` into a fresh scratch database vs `pgbench -i` on the same server.

Both are bulk loads that finish with their indexes built; pgbench's four narrow tables with one
primary key each are the plain-COPY ceiling of the server, the seed writes 17 tables with their
history, about 80 indexes, checked foreign keys and a computed full-text column.
"""

from __future__ import annotations

from typing import Any

from . import isolated, pgbench
from .report import Figure, at_most

DATABASE = "okada_bench_seed"
PGBENCH_SCALE = 100  # 10 million rows
LARGE_GOAL_MINUTES = 10.0


def run(*, large: bool, log: Any) -> list[Figure]:
    preset = "large" if large else "medium"
    with pgbench.scratch_database(DATABASE) as url:
        log(f"seed: seed_demo --preset {preset} into {DATABASE} (large takes several minutes)")
        result = isolated.call(url, _seed, preset)
    log(f"pgbench: -i -s {PGBENCH_SCALE} --no-vacuum")
    baseline = pgbench.pgbench_init(PGBENCH_SCALE)
    pgbench.drop_database(pgbench.PGBENCH_DB)

    rows, seconds = sum(result["counts"].values()), result["seconds"]
    figures = [
        Figure(
            f"seed_demo {preset} throughput",
            rows / seconds,
            "rows/s",
            f"pgbench -i -s {PGBENCH_SCALE}",
            baseline.rows_per_second,
        ),
        Figure(f"seed_demo {preset} rows", rows, "rows"),
        Figure(
            f"seed_demo {preset} time",
            seconds / 60,
            "min",
            goal=f"<= {LARGE_GOAL_MINUTES:g} min" if large else "",
            check=at_most(LARGE_GOAL_MINUTES) if large else None,
        ),
    ]
    figures += [Figure(f"  {phase}", sec, "s") for phase, sec in result["phases"].items()]
    return figures


def _seed(preset: str) -> dict[str, Any]:
    from okada.demo.seed import PRESETS, seed_demo

    result = seed_demo(PRESETS[preset])
    return {"counts": result.counts, "seconds": result.seconds, "phases": result.phases}
