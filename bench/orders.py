"""Order placement throughput: `orders.services.order_place` from N processes vs pgbench TPC-B.

A scratch database gets a small marketplace from seed_demo, with a few months of orders behind
it (as production has: the planner's statistics and plans see populated tables, not empty ones),
or with --large the large preset (1M products, 1M orders over 24 months). The orders go to the
shops of a sample of vendors (all of the small marketplace's): ample stock on every product but
a few hot ones whose short stock runs out during the run, so placements contend for the same
stock rows and some are refused with OutOfStock (counted as completed, refused transactions).
Afterwards the stock is audited: nothing oversold, stock equal to the ledger, reservations equal
to the open orders' items. The WAL each workload writes is reported per transaction.

The machine is shared and its speed drifts by the minute, so the two workloads take turns: a
few short rounds of pgbench, each followed by a round of placements of the same length, each
round after a CHECKPOINT (so both start with the same cost of first writes). The processes that
place orders are started and warmed up once and wait between rounds.
"""

from __future__ import annotations

import statistics
import threading
import time
from queue import Empty
from random import Random
from typing import Any

import psycopg

from . import isolated, pgbench
from .report import Figure, at_least, at_most

DATABASE = "okada_bench_orders"
CATALOG = ("--vendors", "20", "--products-per-vendor", "50", "--customers", "2000", "--orders", "20000")
CATALOG_MONTHS = ("--months", "3")
LARGE_CATALOG = ("--preset", "large")
SHOPS = 20  # vendors whose shops take the orders: the small marketplace's all, a sample of the large
CUSTOMERS_PER_CITY = 2000  # each process's customers, the same sample in every process
HOT_PRODUCTS = 5  # with short stock: these run out during the run
HOT_STOCK = 40
HOT_SHARE = 0.2  # share of orders that include a hot product
AMPLE_STOCK = 1_000_000


ROUNDS = 6


def run(*, clients: int, seconds: int, large: bool, log: Any) -> list[Figure]:
    per_round = max(2, round(seconds / ROUNDS))
    catalog = LARGE_CATALOG if large else (*CATALOG, *CATALOG_MONTHS)
    with pgbench.scratch_database(DATABASE) as url:
        log(f"order_place: seeding {DATABASE} ({' '.join(catalog)}; the large preset takes minutes)")
        pgbench.manage("seed_demo", *catalog, "-v0", database_url=url)
        log(f"order_place: stocking the shops of {SHOPS} vendors")
        hot = isolated.call(url, _stock_up)
        orders_before = _counts(url, orders=ORDERS)["orders"]
        pgbench.pgbench_init(10)
        try:
            log(
                f"order_place vs pgbench TPC-B-like (-c {clients} -j 2): "
                f"{ROUNDS} rounds of {per_round} s each, taking turns"
            )
            results, tps, pgbench_wal = _rounds(url, clients=clients, per_round=per_round, hot=hot, log=log)
        finally:
            pgbench.drop_database(pgbench.PGBENCH_DB)
        audit = _audit(url)

    done = results["placed"] + results["refused"]
    elapsed = results["elapsed"]
    ratios = sorted(results["round_ratios"])
    median = statistics.median(ratios)
    name = "order_place throughput" + (" (large)" if large else "")
    return [
        # The goal is judged on the median of the rounds' ratios: each round is compared with the
        # pgbench round just before it, and one round disturbed by the machine moves the median
        # little (it can move the ratio of the totals a lot).
        Figure(
            name,
            done / elapsed,
            "tx/s",
            f"pgbench tpcb-like c{clients}",
            tps,
            "reported: all rounds",
        ),
        Figure(
            "  ratio per round: median",
            median,
            f"(rounds {ratios[0]:.2f} to {ratios[-1]:.2f})",
            goal=">= 0.40",
            check=at_least(0.40),
        ),
        Figure("  of which placed", results["placed"] / elapsed, "tx/s"),
        Figure("  of which refused (out of stock)", results["refused"] / elapsed, "tx/s"),
        Figure("  errors (other exceptions)", results["errors"], "tx", goal="= 0", check=at_most(0)),
        Figure("  latency p50", results["p50_ms"], "ms"),
        Figure("  latency p95", results["p95_ms"], "ms"),
        Figure(
            "  WAL per order placed",
            results["wal_bytes"] / max(results["placed"], 1) / 1024,
            "KiB",
            "per pgbench transaction",
            pgbench_wal / 1024,
        ),
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
            abs(audit["orders"] - orders_before - results["placed"]),
            "orders",
            goal="= 0",
            check=at_most(0),
        ),
    ]


# --- in the scratch database's processes --------------------------------------------------------


def _shops() -> list[Any]:
    """The vendors that take the orders: the first SHOPS active ones by slug."""
    from catalog.models import Vendor

    return list(Vendor.objects.active().order_by("slug").values_list("pk", flat=True)[:SHOPS])


def _stock_up() -> list[str]:
    """Restock every product of the shops through the service; hot products get a short count
    instead (a few units above what the seeded open orders hold)."""
    from catalog.models import Product
    from catalog.services import stock_adjust, stock_count
    from okada.core.actors import Actor

    actor = Actor.system("bench")
    products = list(
        Product.objects.orderable()
        .filter(vendor__in=_shops())
        .select_related("stock")
        .order_by("vendor__slug", "sku")
    )
    rng = Random(1)
    hot = {p.pk for p in rng.sample(products, HOT_PRODUCTS)}
    for product in products:
        if product.pk in hot:
            stock_count(
                product=product,
                on_hand=product.stock.reserved + HOT_STOCK,
                expected_on_hand=product.stock.on_hand,
                actor=actor,
            )
        else:
            stock_adjust(product=product, delta=AMPLE_STOCK, reason="bench", kind="restock", actor=actor)
    return [str(pk) for pk in hot]


def _rounds(
    url: str, *, clients: int, per_round: int, hot: list[str], log: Any
) -> tuple[dict[str, Any], float, float]:
    """Alternate pgbench and order placement: the placement totals (with the WAL they wrote),
    pgbench's mean TPS and its WAL bytes per transaction."""
    ctx = isolated.CONTEXT
    start = ctx.Barrier(clients + 1)  # the workers and this process: one crossing per round
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, n, per_round, hot, start, queue), daemon=True)
        for n in range(clients)
    ]
    for w in workers:
        w.start()
    rounds: list[dict[str, Any]] = []
    baseline: list[pgbench.Run] = []
    placing_wal = 0
    try:
        _cross(start, queue)  # every worker has loaded its data, before any timing starts
        for number in range(1, ROUNDS + 1):
            pgbench.checkpoint()
            baseline.append(pgbench.pgbench_run(clients=clients, jobs=2, seconds=per_round))
            pgbench.checkpoint()
            before = pgbench.wal_position()
            _cross(start, queue)
            round_results = [queue.get(timeout=per_round + 600) for _ in workers]
            placing_wal += pgbench.wal_position() - before
            crashed = [r["crash"] for r in round_results if "crash" in r]
            if crashed:
                raise RuntimeError(f"{len(crashed)} worker(s) crashed: {crashed[0]}")
            rounds.append(_combine(round_results))
            done = rounds[-1]["placed"] + rounds[-1]["refused"]
            rate = done / rounds[-1]["elapsed"]
            log(
                f"  round {number}: pgbench {baseline[-1].tps:,.0f} tps, order_place {rate:,.0f} tx/s "
                f"(ratio {rate / baseline[-1].tps:.2f})"
            )
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.kill()
    totals = _total(rounds)
    totals["round_ratios"] = [
        (r["placed"] + r["refused"]) / r["elapsed"] / b.tps for r, b in zip(rounds, baseline, strict=True)
    ]
    totals["wal_bytes"] = placing_wal
    mean_tps = sum(b.tps for b in baseline) / len(baseline)
    return totals, mean_tps, sum(b.wal_bytes for b in baseline) / sum(b.transactions for b in baseline)


def _cross(start: Any, queue: Any) -> None:
    """Meet the workers at the barrier; a worker that crashed breaks it and says why."""
    try:
        start.wait(timeout=600)
    except threading.BrokenBarrierError:
        try:
            reason = queue.get(timeout=10).get("crash", "no reason given")
        except Empty:
            reason = "a process did not reach the barrier in time"
        raise RuntimeError(f"a placing process failed: {reason}") from None


def _added_up(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and latencies of several processes (one round) or of several rounds, added up."""
    return {
        "placed": sum(p["placed"] for p in parts),
        "refused": sum(p["refused"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "latencies": [ms for p in parts for ms in p["latencies"]],
    }


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One round: the processes ran side by side, so the round lasted as long as the slowest."""
    return {**_added_up(results), "elapsed": max(r["elapsed"] for r in results)}


def _total(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """All rounds: they ran one after the other."""
    total = _added_up(rounds)
    latencies = sorted(total.pop("latencies"))
    return {
        **total,
        "elapsed": sum(r["elapsed"] for r in rounds),
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
    }


def _worker(url: str, n: int, seconds: int, hot: list[str], start: Any, queue: Any) -> None:
    try:
        isolated.setup_django(url)
        shop = _Shop(n, set(hot))
        start.wait(timeout=900)  # set up: now idle until the first round
        for _ in range(ROUNDS):
            start.wait(timeout=900)  # every process starts placing at the same moment
            queue.put(shop.place_for(seconds))
    except BaseException as exc:
        queue.put({"crash": f"{type(exc).__name__}: {exc}"})
        start.abort()  # the other processes and the parent stop waiting at once
        raise


class _Shop:
    """One client process: the catalog and customers loaded once, then random baskets."""

    def __init__(self, n: int, hot: set[str]) -> None:
        from catalog.models import Product, Vendor
        from okada.core.actors import Actor
        from orders.models import Customer, Zone

        self.rng = Random(n)
        self.vendors = {v.pk: v for v in Vendor.objects.filter(pk__in=_shops())}
        self.products: dict[Any, list[Product]] = {}
        self.hot_products: list[Product] = []
        for product in Product.objects.orderable().filter(vendor__in=list(self.vendors)):
            if str(product.pk) in hot:
                self.hot_products.append(product)
            else:
                self.products.setdefault(product.vendor_id, []).append(product)
        self.customers: dict[str, list[tuple[Customer, Zone]]] = {}
        for city in {v.city for v in self.vendors.values()}:
            sample = Customer.objects.select_related("zone").filter(zone__city=city).order_by("pk")
            self.customers[city] = [(c, c.zone) for c in sample[:CUSTOMERS_PER_CITY]]
        self.vendor_ids = [
            v for v in self.vendors if self.products.get(v) and self.customers.get(self.vendors[v].city)
        ]
        self.actor = Actor(role=Actor.STOREFRONT)

    def place_for(self, seconds: int) -> dict[str, Any]:
        from orders.services import OutOfStock, order_place

        rng, vendors = self.rng, self.vendors
        placed = refused = errors = 0
        latencies: list[float] = []
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            items: list[tuple[Any, int]] = []
            if rng.random() < HOT_SHARE:
                product = rng.choice(self.hot_products)
                vendor = vendors[product.vendor_id]
                items.append((product, rng.randint(1, 3)))
            else:
                vendor = vendors[rng.choice(self.vendor_ids)]
            shelf = self.products[vendor.pk]
            items += [(p, rng.randint(1, 3)) for p in rng.sample(shelf, rng.randint(1, min(3, len(shelf))))]
            customer, zone = rng.choice(self.customers[vendor.city])
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
                    actor=self.actor,
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


ORDERS = "SELECT count(*) FROM orders_order"


def _counts(url: str, **queries: str) -> dict[str, int]:
    """`name=SELECT count(*) ...` queries run in the scratch database, on one connection."""
    with psycopg.connect(url) as conn:
        rows = {name: conn.execute(sql).fetchone() for name, sql in queries.items()}
    return {name: int(row[0]) if row else 0 for name, row in rows.items()}


def _audit(url: str) -> dict[str, int]:
    """Set-based checks straight in SQL, after every process has finished."""
    return _counts(
        url,
        oversold="SELECT count(*) FROM catalog_stock WHERE reserved > on_hand OR reserved < 0",
        ledger_mismatch="""SELECT count(*) FROM catalog_stock s LEFT JOIN (
              SELECT product_id,
                     coalesce(sum(delta) FILTER (
                         WHERE kind IN ('restock', 'adjustment', 'count', 'return', 'sale')), 0
                     ) AS on_hand,
                     coalesce(sum(delta) FILTER (
                         WHERE kind IN ('reserve', 'release', 'sale')), 0
                     ) AS reserved
              FROM catalog_stockmovement GROUP BY product_id) m USING (product_id)
            WHERE (s.on_hand, s.reserved) IS DISTINCT FROM (m.on_hand, m.reserved)""",
        reservation_mismatch="""SELECT count(*) FROM catalog_stock s LEFT JOIN (
              SELECT i.product_id, sum(i.quantity) AS held FROM orders_orderitem i
              JOIN orders_order o ON o.id = i.order_id
              WHERE o.status IN ('pending', 'accepted', 'preparing', 'ready')
              GROUP BY i.product_id) h USING (product_id)
            WHERE s.reserved <> coalesce(h.held, 0)""",
        orders=ORDERS,
    )
