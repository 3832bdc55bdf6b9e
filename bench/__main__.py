"""`python -m bench` (`make bench`): run the figures, print one table, exit 1 if a goal is missed.

    python -m bench                    # order placement + seed (medium preset) + partitions
    python -m bench --large            # every figure on the "large" preset (minutes)
    python -m bench --only order_place # one figure: order_place, seed or partitions
    python -m bench --only partitions --preset small   # partitions on a kept small marketplace

Each figure works in its own scratch databases (okada_bench_*, dropped afterwards) on the
server the settings point at, and measures its baseline in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

FIGURES = ("order_place", "seed", "partitions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=FIGURES, help="run one figure")
    parser.add_argument(
        "--large", action="store_true", help="the large preset, for both figures (several minutes)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent processes (default 16)")
    parser.add_argument("--seconds", type=int, default=30, help="seconds per workload (default 30)")
    parser.add_argument(
        "--preset",
        choices=("small", "medium", "large"),
        help="kept seeded marketplace the partitions figures read (default: large with --large, else medium)",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.local")
    import django

    django.setup()
    from . import orders, partitions, seed
    from .report import render

    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    figures = []
    if args.only in (None, "order_place"):
        figures += orders.run(clients=args.clients, seconds=args.seconds, large=args.large, log=log)
    if args.only in (None, "seed"):
        figures += seed.run(large=args.large, log=log)
    if args.only in (None, "partitions"):
        preset = args.preset or ("large" if args.large else "medium")
        figures += partitions.run(preset=preset, log=log)
    print(render(figures))
    return 1 if any(f.verdict == "FAIL" for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
