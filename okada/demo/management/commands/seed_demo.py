"""Load a demo marketplace (vendors, catalogue, customers, orders, ledger) of any size."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations

from okada.demo.seed import PRESETS, SeedError, database_has_marketplace_data, seed_demo


class Command(BaseCommand):
    help = (
        "Load realistic demo data (Douala and Yaoundé) with PostgreSQL COPY. Start from a preset "
        "(small by default) and override any size; the same --seed gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="base sizes")
        parser.add_argument("--vendors", type=int, help="number of vendors")
        parser.add_argument("--products-per-vendor", type=int, help="products per vendor")
        parser.add_argument("--customers", type=int, help="number of customers")
        parser.add_argument("--orders", type=int, help="number of orders")
        parser.add_argument("--months", type=int, help="orders are spread over this many months")
        parser.add_argument("--seed", type=int, help="random seed (default 2026)")
        parser.add_argument(
            "--now",
            type=dt.datetime.fromisoformat,
            help="end of the period, ISO 8601 with offset (default: now); pins the timestamps",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing if the database already has vendors, customers or orders",
        )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        config = PRESETS[options["preset"]]
        overrides = {
            name: options[name]
            for name in ("vendors", "products_per_vendor", "customers", "orders", "months", "seed", "now")
            if options[name] is not None
        }
        config = dataclasses.replace(config, **overrides)
        if min(config.vendors, config.products_per_vendor, config.customers, config.orders) < 0:
            raise CommandError("sizes cannot be negative")
        if config.months < 1:
            raise CommandError("--months must be at least 1")
        if config.now is not None and config.now.tzinfo is None:
            raise CommandError("--now needs a UTC offset, e.g. 2026-11-22T12:00:00+00:00")
        # After the options are checked: a typo is refused even when there is nothing to do.
        if options["if_empty"] and database_has_marketplace_data():
            self.stdout.write("Demo data not loaded: the database already has marketplace data.")
            return
        self.stdout.write(
            f"Seeding: {config.vendors} vendors x {config.products_per_vendor} products, "
            f"{config.customers} customers, {config.orders} orders over {config.months} months "
            f"(seed {config.seed})"
        )
        try:
            result = seed_demo(config, progress=options["verbosity"] >= 1)
        except SeedError as exc:
            raise CommandError(str(exc)) from exc
        width = max(len(t) for t in result.counts)
        for table, rows in result.counts.items():
            line = f"  {table:<{width}} {rows:>12,}"
            if options["verbosity"] >= 2:
                line += f"  {result.copy_seconds.get(table, 0):8.1f} s in COPY"
            self.stdout.write(line)
        if options["verbosity"] >= 2:
            self.stdout.write("  " + ", ".join(f"{name} {sec:.1f} s" for name, sec in result.phases.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.rows:,} rows in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)"
            )
        )
