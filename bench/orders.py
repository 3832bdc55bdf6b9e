"""Order placement throughput: `orders.services.order_place` from N processes vs pgbench TPC-B.

A scratch database gets a small marketplace from seed_demo (no orders), ample stock on every
product but a few hot ones whose short stock runs out during the run, so placements contend for
the same stock rows and some are refused with OutOfStock (counted as completed, refused
transactions). Afterwards the stock is audited: nothing oversold, stock equal to the ledger,
reservations equal to the open orders' items.
"""

from __future__ import annotations

import time
from random import Random
from typing import Any

import psycopg

from . import isolated, pgbench
from .report import Figure, at_least_ratio, at_most

DATABASE = "okada_bench_orders"
CATALOG = ("--vendors", "20", "--products-per-vendor", "50", "--customers", "2000", "--orders", "0")
HOT_PRODUCTS = 5  # with short stock: these run out during the run
HOT_STOCK = 40
HOT_SHARE = 0.2  # share of orders that include a hot product
AMPLE_STOCK = 1_000_000


def run(*, clients: int, seconds: int, log: Any) -> list[Figure]:
    with pgbench.scratch_database(DATABASE) as url:
        log(f"order_place: seeding {DATABASE}")
        pgbench.manage("seed_demo", *CATALOG, "--months", "1", "-v0", database_url=url)
        hot = isolated.call(url, _stock_up)
        log(f"order_place: {clients} processes placing orders for {seconds} s")
        results = _place_concurrently(url, clients=clients, seconds=seconds, hot=hot)
        audit = _audit(url, placed=results["placed"])
    log(f"pgbench: TPC-B-like, -c {clients} -j 2 -T {seconds}")
    pgbench.pgbench_init(10)
    tps = pgbench.pgbench_tps(clients=clients, jobs=2, seconds=seconds)
    pgbench.drop_database(pgbench.PGBENCH_DB)

    done = results["placed"] + results["refused"]
    elapsed = results["elapsed"]
    return [
        Figure(
            "order_place throughput",
            done / elapsed,
            "tx/s",
            f"pgbench tpcb-like c{clients}",
            tps,
            ">= 0.40 x baseline",
            at_least_ratio(0.40),
        ),
        Figure("  of which placed", results["placed"] / elapsed, "tx/s"),
        Figure("  of which refused (out of stock)", results["refused"] / elapsed, "tx/s"),
        Figure("  errors (other exceptions)", results["errors"], "tx", goal="= 0", check=at_most(0)),
        Figure("  latency p50", results["p50_ms"], "ms"),
        Figure("  latency p95", results["p95_ms"], "ms"),
        Figure("oversold stock rows", audit["oversold"], "rows", goal="= 0", check=at_most(0)),
        Figure("stock != ledger", audit["ledger_mismatch"], "products", goal="= 0", check=at_most(0)),
        Figure(
            "reserved != open order items",
            audit["reservation_mismatch"],
            "products",
            goal="= 0",
            check=at_most(0),
        ),
        Figure(
            "orders lost or extra",
            abs(audit["orders"] - results["placed"]),
            "orders",
            goal="= 0",
            check=at_most(0),
        ),
    ]


# --- in the scratch database's processes --------------------------------------------------------


def _stock_up() -> list[str]:
    """Restock every product through the service; hot products get a short count instead."""
    from catalog.models import Product
    from catalog.services import stock_adjust, stock_count
    from okada.core.actors import Actor

    actor = Actor.system("bench")
    products = list(
        Product.objects.orderable().select_related("stock").order_by("vendor__slug", "sku")  # type: ignore[attr-defined]
    )
    rng = Random(1)
    hot = {p.pk for p in rng.sample(products, HOT_PRODUCTS)}
    for product in products:
        if product.pk in hot:
            stock_count(
                product=product, on_hand=HOT_STOCK, expected_on_hand=product.stock.on_hand, actor=actor
            )
        else:
            stock_adjust(product=product, delta=AMPLE_STOCK, reason="bench", kind="restock", actor=actor)
    return [str(pk) for pk in hot]


def _place_concurrently(url: str, *, clients: int, seconds: int, hot: list[str]) -> dict[str, Any]:
    ctx = isolated.CONTEXT
    barrier = ctx.Barrier(clients)
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, n, seconds, hot, barrier, queue), daemon=True)
        for n in range(clients)
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    failed = [r["crash"] for r in results if "crash" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} worker(s) crashed: {failed[0]}")
    latencies = sorted(ms for r in results for ms in r["latencies"])
    return {
        "placed": sum(r["placed"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "elapsed": max(r["elapsed"] for r in results),
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
    }


def _worker(url: str, n: int, seconds: int, hot: list[str], barrier: Any, queue: Any) -> None:
    try:
        isolated.setup_django(url)
        queue.put(_place_orders(n, seconds, set(hot), barrier))
    except BaseException as exc:
        queue.put({"crash": f"{type(exc).__name__}: {exc}"})
        raise


def _place_orders(n: int, seconds: int, hot: set[str], barrier: Any) -> dict[str, Any]:
    from catalog.models import Product, Vendor
    from okada.core.actors import Actor
    from orders.models import Customer, Zone
    from orders.services import OutOfStock, order_place

    rng = Random(n)
    vendors = {v.pk: v for v in Vendor.objects.active()}  # type: ignore[attr-defined]
    products: dict[Any, list[Product]] = {}
    hot_products = []
    for product in Product.objects.orderable():  # type: ignore[attr-defined]
        if str(product.pk) in hot:
            hot_products.append(product)
        else:
            products.setdefault(product.vendor_id, []).append(product)
    customers: dict[str, list[tuple[Customer, Zone]]] = {}
    for customer in Customer.objects.select_related("zone"):
        if customer.zone is not None:
            customers.setdefault(customer.zone.city, []).append((customer, customer.zone))
    vendor_ids = [v for v in vendors if products.get(v) and customers.get(vendors[v].city)]
    actor = Actor(role=Actor.STOREFRONT)
    placed = refused = errors = 0
    latencies: list[float] = []

    barrier.wait()  # every process starts placing at the same moment
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        items: list[tuple[Product, int]] = []
        if rng.random() < HOT_SHARE:
            product = rng.choice(hot_products)
            vendor = vendors[product.vendor_id]
            items.append((product, rng.randint(1, 3)))
        else:
            vendor = vendors[rng.choice(vendor_ids)]
        shelf = products[vendor.pk]
        items += [(p, rng.randint(1, 3)) for p in rng.sample(shelf, rng.randint(1, min(3, len(shelf))))]
        customer, zone = rng.choice(customers[vendor.city])
        t0 = time.monotonic()
        try:
            order_place(
                vendor=vendor,
                customer=customer,
                items=items,
                payment_method=rng.choice(("mtn_momo", "orange_money", "cash")),
                channel="storefront",
                address=customer.default_address or "Akwa",
                zone=zone,
                actor=actor,
            )
            placed += 1
            latencies.append((time.monotonic() - t0) * 1000)
        except OutOfStock:
            refused += 1
        except Exception:
            errors += 1
    return {
        "placed": placed,
        "refused": refused,
        "errors": errors,
        "elapsed": time.monotonic() - started,
        "latencies": latencies,
    }


def _audit(url: str, *, placed: int) -> dict[str, int]:
    """Set-based checks straight in SQL, after every process has finished."""
    with psycopg.connect(url) as conn:

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
            return int(row[0]) if row else 0

        return {
            "oversold": one("SELECT count(*) FROM catalog_stock WHERE reserved > on_hand OR reserved < 0"),
            "ledger_mismatch": one(
                """SELECT count(*) FROM catalog_stock s LEFT JOIN (
                      SELECT product_id,
                             coalesce(sum(delta) FILTER (
                                 WHERE kind IN ('restock', 'adjustment', 'count', 'return', 'sale')), 0
                             ) AS on_hand,
                             coalesce(sum(delta) FILTER (
                                 WHERE kind IN ('reserve', 'release', 'sale')), 0
                             ) AS reserved
                      FROM catalog_stockmovement GROUP BY product_id) m USING (product_id)
                    WHERE (s.on_hand, s.reserved) IS DISTINCT FROM (m.on_hand, m.reserved)"""
            ),
            "reservation_mismatch": one(
                """SELECT count(*) FROM catalog_stock s LEFT JOIN (
                      SELECT i.product_id, sum(i.quantity) AS held FROM orders_orderitem i
                      JOIN orders_order o ON o.id = i.order_id
                      WHERE o.status IN ('pending', 'accepted', 'preparing', 'ready')
                      GROUP BY i.product_id) h USING (product_id)
                    WHERE s.reserved <> coalesce(h.held, 0)"""
            ),
            "orders": one("SELECT count(*) FROM orders_order"),
        }
