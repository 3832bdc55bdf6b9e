"""`python -m bench` (`make bench`): run the figures, print one table, exit 1 if a goal is missed.

    python -m bench                    # order placement + seed (medium) + partitions + API + backup + sync
                                       # + bulk upsert + invariant audit
    python -m bench --large            # every figure on the "large" preset (minutes; not sync)
    python -m bench --only order_place # one figure: order_place, seed, partitions, api..., backup, sync,
                                       # bulk, audit
    python -m bench --only partitions --preset small   # partitions on a kept small marketplace
    python -m bench --only api_list --preset medium    # the API's lists on the kept medium database
    python -m bench --only backup --preset small       # backup vs bare pg_dump, and the restore drill
    python -m bench --only admin --preset small        # admin pages, health screens too
    python -m bench --only health --preset small       # a health snapshot and an uncached /metrics

Each figure works in its own scratch databases (okada_bench_*, dropped afterwards) on the
server the settings point at, and measures its baseline in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

FIGURES = (
    "order_place",
    "seed",
    "partitions",
    "api",
    "api_list",
    "api_orders",
    "backup",
    "admin",
    "sync",
    "bulk",
    "audit",
    "health",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=FIGURES, help="run one figure (api: both API figures)")
    parser.add_argument(
        "--large", action="store_true", help="the large preset, for every figure (several minutes)"
    )
    parser.add_argument("--clients", type=int, help="concurrent processes (default 16; 8 for api_list)")
    parser.add_argument("--seconds", type=int, default=30, help="seconds per workload (default 30)")
    parser.add_argument(
        "--preset",
        choices=("small", "medium", "large"),
        help="kept seeded marketplace the partitions, API list, backup, admin, audit and health figures "
        "read "
        "(default: large with --large, else medium)",
    )
    parser.add_argument(
        "--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1, help="gunicorn workers (API figures)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per gunicorn worker (> 1: gthread workers, keep-alive)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="backup: turns of bare pg_dump and backup")
    parser.add_argument("--requests", type=int, default=30, help="admin: requests per page (default 30)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.local")
    import django

    django.setup()
    from . import admin, api, audit, backups, bulk, health, orders, partitions, seed, sync
    from .report import render

    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    preset = args.preset or ("large" if args.large else "medium")
    figures = []
    if args.only in (None, "order_place"):
        figures += orders.run(clients=args.clients or 16, seconds=args.seconds, large=args.large, log=log)
    if args.only in (None, "seed"):
        figures += seed.run(large=args.large, log=log)
    if args.only in (None, "partitions"):
        figures += partitions.run(preset=preset, log=log)
    if args.only in (None, "api", "api_list", "api_orders"):
        figures += api.run(
            only=args.only,
            preset=preset,
            clients=args.clients,
            seconds=args.seconds,
            workers=args.workers,
            threads=args.threads,
            log=log,
        )
    if args.only in (None, "backup"):
        figures += backups.run(preset=preset, rounds=args.rounds, log=log)
    if args.only in (None, "admin"):
        figures += admin.run(preset=preset, requests=args.requests, log=log)
    if args.only in (None, "sync"):
        figures += sync.run(log=log)  # one vendor's shop in a scratch database (no --large)
    if args.only in (None, "bulk"):
        figures += bulk.run(log=log)  # one vendor's catalog in a scratch database (no --large)
    if args.only in (None, "audit"):
        figures += audit.run(preset=preset, log=log)
    if args.only in (None, "health"):
        figures += health.run(preset=preset, log=log)
    print(render(figures))
    return 1 if any(f.verdict == "FAIL" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
