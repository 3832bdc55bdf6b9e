"""Bulk upsert: one vendor's catalog of 500 products by SKU, against one write per product.

In a scratch database (migrated), in a process of its own (as a web worker would), through the
service the API calls (`product_upsert_many`, non-atomic as the API's default):

- create: 500 new SKUs in one call;
- unchanged: the same 500 sent again (an integration re-sending its catalog every night);
- update: the same 500, each with a new price.

Baseline, same run: `product_update` of one field, product by product, each in its own
transaction (what a client without the bulk endpoint would have done, PATCH by PATCH).
"""

from __future__ import annotations

import time
from typing import Any

from . import isolated, pgbench
from .report import Figure

DATABASE = "okada_bench_bulk"
ITEMS = 500


def run(*, log: Any) -> list[Figure]:
    with pgbench.scratch_database(DATABASE) as url:
        log(f"bulk: {ITEMS} products created, sent again, changed; then changed one by one")
        r = isolated.call(url, _measure)
    baseline = ("product_update, one by one", ITEMS / r["single_seconds"])
    figures = []
    for name in ("create", "unchanged", "update"):
        statuses = r[f"{name}_statuses"]
        if statuses != {"create": ["created"], "unchanged": ["unchanged"], "update": ["updated"]}[name]:
            raise RuntimeError(f"bulk {name}: results {statuses}")
        figures.append(
            Figure(f"bulk upsert of {ITEMS}: {name}", ITEMS / r[f"{name}_seconds"], "items/s", *baseline)
        )
    return figures


def _measure() -> dict[str, Any]:
    from catalog.models import Product
    from catalog.services import product_update, product_upsert_many, vendor_activate, vendor_onboard
    from okada.core.actors import Actor

    staff = Actor(role=Actor.SYSTEM, label="bench")
    vendor = vendor_onboard(
        name="Bench", slug="bench-bulk", phone="+237670000001", city="douala", actor=staff
    )
    vendor = vendor_activate(vendor=vendor, actor=staff)
    actor = Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="bench")
    items: list[dict[str, Any]] = [
        {"sku": f"BULK-{i:04d}", "name": f"Produit {i}", "price_xaf": 1000 + i} for i in range(ITEMS)
    ]
    result: dict[str, Any] = {}

    def timed(name: str, sent: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        done = product_upsert_many(vendor=vendor, items=sent, actor=actor, atomic=False)
        result[f"{name}_seconds"] = time.perf_counter() - started
        result[f"{name}_statuses"] = sorted({r.status for r in done})

    timed("create", items)
    timed("unchanged", items)
    timed("update", [{**item, "price_xaf": item["price_xaf"] + 1} for item in items])
    products = list(Product.objects.filter(vendor=vendor))
    started = time.perf_counter()
    for product in products:
        product_update(product=product, data={"price_xaf": product.price_xaf + 1}, actor=actor)
    result["single_seconds"] = time.perf_counter() - started
    return result
