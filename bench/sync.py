"""Offline sync: one vendor's initial download and push throughput, against plain baselines.

A scratch database gets one vendor's shop from seed_demo (1,000 products with their stock,
10,000 orders with their items and payments, over three months). Then, in a process of its own
(as a web worker would), the service layer is measured:

- initial download: a new device pulls pages of 500 until nothing is left; each page is turned
  into its JSON body and gzip-compressed as the API answers it (Django's compress_string).
  Baseline: a plain full export of the same rows (every column) as one JSON document built by
  PostgreSQL (json_agg), also compressed. Ratios: time per row, compressed bytes per row.
- push: mutations in batches of 50 (stock adjustments and renames), each applied exactly once
  with its stored result. Baseline: the same changes made by calling the services directly.
- incremental pull: the changes those pushes made, served from the change feed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import isolated, pgbench
from .report import Figure

DATABASE = "okada_bench_sync"
PRODUCTS = 1_000
ORDERS = 10_000
PAGE = 500
PUSHES = 40
BATCH = 50


def run(*, log: Any, products: int = PRODUCTS, orders: int = ORDERS) -> list[Figure]:
    shop = (
        "--vendors", "1", "--products-per-vendor", str(products), "--customers", "1000",
        "--orders", str(orders), "--months", "3",
    )  # fmt: skip
    with pgbench.scratch_database(DATABASE) as url:
        log(f"sync: seeding {DATABASE} ({' '.join(shop)})")
        pgbench.manage("seed_demo", *shop, "-v0", database_url=url)
        log("sync: initial download, export, pushes")
        r = isolated.call(url, _measure)
    if r["rows"] != r["export_rows"]:
        raise RuntimeError(f"the download served {r['rows']} rows, the export has {r['export_rows']}")
    return [
        Figure(
            "sync initial download",
            r["rows"] / r["download_seconds"],
            "changes/s",
            "plain JSON export, same rows",
            r["export_rows"] / r["export_seconds"],
        ),
        Figure(
            "  compressed bytes per change",
            r["download_gzip"] / r["rows"],
            "B",
            "export, per row",
            r["export_gzip"] / r["export_rows"],
        ),
        Figure("  rows (changes) downloaded", r["rows"], "rows"),
        Figure(f"  pages of {PAGE}", r["pages"], "pages"),
        Figure("  compressed download", r["download_gzip"] / 1e6, "MB", "export", r["export_gzip"] / 1e6),
        Figure(
            f"sync push ({BATCH} per push)",
            r["mutations"] / r["push_seconds"],
            "mutations/s",
            "direct service calls",
            r["mutations"] / r["direct_seconds"],
        ),
        Figure("sync incremental pull", r["feed_rows"] / r["feed_seconds"], "changes/s"),
    ]


def _measure() -> dict[str, Any]:
    from django.utils.text import compress_string

    from catalog.models import Product, Vendor
    from sync.pull import pull
    from sync.services import device_register

    vendor = Vendor.objects.get()
    actor = _actor(vendor)
    device, _ = device_register(actor=actor, device_id=uuid.uuid4(), name="bench")
    result: dict[str, Any] = {}
    cursors: dict[str, str | None] = {}

    def pull_until_done() -> tuple[int, int, int, float]:
        nonlocal cursors
        rows = pages = compressed = 0
        started = time.perf_counter()
        while True:
            page = pull(actor=actor, device_id=device.pk, cursors=cursors, limit=PAGE)
            compressed += len(compress_string(page.as_json().encode()))
            rows, pages, cursors = rows + page.rows, pages + 1, page.cursors
            if not any(page.has_more.values()):
                return rows, pages, compressed, time.perf_counter() - started

    result["rows"], result["pages"], result["download_gzip"], result["download_seconds"] = pull_until_done()

    started = time.perf_counter()
    export = _export(vendor.pk)
    result["export_gzip"] = len(compress_string(export.encode()))
    result["export_seconds"] = time.perf_counter() - started
    result["export_rows"] = _export_rows(vendor.pk)

    products = list(Product.objects.filter(vendor=vendor).order_by("pk"))
    result["push_seconds"], result["mutations"] = _push(actor, device.pk, products)
    result["direct_seconds"] = _direct(products, result["mutations"])
    rows, _pages, _gz, seconds = pull_until_done()
    result["feed_rows"], result["feed_seconds"] = rows, seconds
    return result


def _actor(vendor: Any) -> Any:
    from okada.core.actors import Actor

    return Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="bench")


def _changes(products: list[Any], count: int) -> list[tuple[str, Any, Any]]:
    """The changes both sides make, over the catalog: stock adjustments (+1 on a product's first
    visit, -1 on the next, so no stock goes below its reservations) and renames."""
    return [
        ("stock.adjust", products[n % len(products)], 1 if (n // len(products)) % 2 == 0 else -1)
        if n % 10 < 7
        else ("product.update", products[n % len(products)], f"Article {n}")
        for n in range(count)
    ]


def _push(actor: Any, device_id: uuid.UUID, products: list[Any]) -> tuple[float, int]:
    from catalog.models import Product
    from sync.push import push

    versions = dict(Product.objects.filter(pk__in=[p.pk for p in products]).values_list("pk", "version"))
    mutations = []
    for n, (name, product, value) in enumerate(_changes(products, PUSHES * BATCH), start=1):
        if name == "stock.adjust":
            args = {"product_id": str(product.pk), "delta": value}
        else:
            args = {
                "product_id": str(product.pk),
                "base_version": versions[product.pk],
                "fields": {"name": value},
            }
        mutations.append({"id": n, "name": name, "args": args})
    started = time.perf_counter()
    for i in range(0, len(mutations), BATCH):
        answer = push(actor=actor, device_id=device_id, mutations=mutations[i : i + BATCH])
        if any(r["status"] != "applied" for r in answer.results):
            raise RuntimeError(f"a bench mutation was not applied: {answer.results}")
    return time.perf_counter() - started, len(mutations)


def _direct(products: list[Any], count: int) -> float:
    from catalog.services import product_update, stock_adjust
    from okada.core.actors import Actor

    actor = Actor.system("bench")
    started = time.perf_counter()
    for name, product, value in _changes(products, count):
        if name == "stock.adjust":
            stock_adjust(product=product, delta=value, reason="bench", actor=actor)
        else:
            product_update(product=product, data={"name": f"{value} bis"}, actor=actor)
    return time.perf_counter() - started


# The rows a device of the vendor holds, every column, as one document.
EXPORT = """
SELECT json_build_object(
    'products', (SELECT json_agg(to_jsonb(p) - 'search_vector') FROM catalog_product p
                  WHERE p.vendor_id = %(v)s AND p.deleted_at IS NULL),
    'stock', (SELECT json_agg(s) FROM catalog_stock s JOIN catalog_product p ON p.id = s.product_id
               WHERE s.vendor_id = %(v)s AND p.deleted_at IS NULL),
    'orders', (SELECT json_agg(o) FROM orders_order o WHERE o.vendor_id = %(v)s AND o.deleted_at IS NULL),
    'order_items', (SELECT json_agg(i) FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
                     WHERE o.vendor_id = %(v)s AND o.deleted_at IS NULL),
    'payments', (SELECT json_agg(y) FROM orders_payment y JOIN orders_order o ON o.id = y.order_id
                  WHERE o.vendor_id = %(v)s AND o.deleted_at IS NULL),
    'categories', (SELECT json_agg(c) FROM catalog_category c WHERE c.deleted_at IS NULL),
    'zones', (SELECT json_agg(z) FROM orders_zone z WHERE z.deleted_at IS NULL),
    'vendors', (SELECT json_agg(w) FROM catalog_vendor w WHERE w.id = %(v)s AND w.deleted_at IS NULL)
)::text
"""


def _export(vendor_id: uuid.UUID) -> str:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(EXPORT, {"v": vendor_id})
        return str(cur.fetchone()[0])


def _export_rows(vendor_id: uuid.UUID) -> int:
    import json

    document = json.loads(_export(vendor_id))
    return sum(len(rows or []) for rows in document.values())
