"""CPU per placement, one client: where order_place's time goes, without concurrency's noise.

    python -m bench.placement_cpu                 # 3 rounds of 10 s
    python -m bench.placement_cpu --seconds 8 --rounds 5

The throughput bench (`--only order_place`) compares 16 clients with pgbench, and its ratio moves
with the machine's hour. This one seeds the same small marketplace in a scratch database, then
one process places orders as the bench's clients do (`bench.orders._Shop`) and reports, per
placement, the client's CPU (Python, `time.process_time`) and its PostgreSQL backend's CPU
(`/proc/<pid>/stat`; the server must run on this machine). Run it on two commits back to back to
compare their cost per order.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from . import isolated, orders, pgbench

DATABASE = "okada_bench_placement_cpu"


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(rounds: int, seconds: int) -> list[dict[str, Any]]:
    """In the scratch database's process: warm up, then `rounds` timed loops of placements."""
    from django.db import connection

    shop = orders._Shop(0, set(orders._stock_up()))
    shop.place_for(2)  # plans, caches and the connection made before timing
    pid = connection.connection.info.backend_pid
    results = []
    for _ in range(rounds):
        client, backend = time.process_time(), _backend_cpu(pid)
        done = shop.place_for(seconds)
        count = max(done["placed"] + done["refused"], 1)
        results.append(
            {
                "placements": count,
                "client_ms": (time.process_time() - client) * 1000 / count,
                "backend_ms": (_backend_cpu(pid) - backend) * 1000 / count,
                "wall_ms": done["elapsed"] * 1000 / count,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per round (default 10)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.local")
    with pgbench.scratch_database(DATABASE) as url:
        print(f"seeding {DATABASE} ({' '.join(orders.CATALOG)})", flush=True)
        pgbench.manage("seed_demo", *orders.CATALOG, *orders.CATALOG_MONTHS, "-v0", database_url=url)
        for n, row in enumerate(isolated.call(url, _measure, args.rounds, args.seconds), 1):
            print(
                f"round {n}: {row['placements']:,} placements, per placement: client CPU"
                f" {row['client_ms']:.3f} ms, PostgreSQL backend CPU {row['backend_ms']:.3f} ms,"
                f" wall {row['wall_ms']:.3f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
