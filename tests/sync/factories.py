"""Sync test data: registered devices, and `Phone`, a device's side of the protocol.

A `Phone` keeps what a device keeps (its copy of the synced tables, its cursors, its next
mutation id) and talks to the services exactly as the API views do. `pull_all()` pulls until
nothing more is ready; `copy(table)` is its copy as {id: row}.
"""

from __future__ import annotations

import uuid
from typing import Any

from catalog.models import Product, Stock, Vendor
from catalog.services import stock_adjust, vendor_suspend
from okada.core.actors import Actor
from orders.models import Order
from orders.services import order_transition
from sync.models import Device, SyncConflict
from sync.pull import pull
from sync.push import push
from sync.services import device_register
from tests.catalog.factories import ProductFactory, UserFactory
from tests.orders.factories import OrderFactory


def vendor_device_actor(vendor: Vendor) -> Actor:
    return Actor(role=Actor.VENDOR, user=UserFactory(), vendor_id=vendor.pk)


def register_device(vendor: Vendor, name: str = "Caisse 1") -> Device:
    device, _ = device_register(actor=vendor_device_actor(vendor), device_id=uuid.uuid4(), name=name)
    return device


class Phone:
    """One vendor device: its copy of the data and its place in the protocol."""

    def __init__(self, vendor: Vendor, name: str = "Caisse 1", limit: int | None = None) -> None:
        self.vendor = vendor
        self.actor = Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label=name)
        self.device, _ = device_register(actor=self.actor, device_id=uuid.uuid4(), name=name)
        self.limit = limit
        self.cursors: dict[str, str | None] = {"0": None, "1": None, "2": None}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.next_id = 1
        self.pages: list[dict[str, Any]] = []  # every page applied, for tests that look at them
        self.resets = 0

    # --- pull ---------------------------------------------------------------------------------

    def pull(self, *, apply: bool = True, limit: int | None = None) -> dict[str, Any]:
        """One pull. With apply=False the answer is "lost on the way": nothing is kept."""
        page = pull(
            actor=self.actor, device_id=self.device.pk, cursors=dict(self.cursors), limit=limit or self.limit
        ).as_dict()
        if apply:
            self.apply(page)
        return page

    def apply(self, page: dict[str, Any]) -> None:
        if page["reset"]:
            self.tables = {}
            self.cursors = {"0": None, "1": None, "2": None}
            self.resets += 1
            return
        for table, change in page["changes"].items():
            rows = self.tables.setdefault(table, {})
            for row in change["upserted"]:
                rows[row["id"]] = row
            for row_id in change["deleted"]:
                rows.pop(row_id, None)
        self.cursors = page["cursors"]
        self.pages.append(page)

    def pull_all(self, *, limit: int | None = None, max_pages: int = 10_000) -> int:
        """Pull until no priority has more; the number of pages."""
        for n in range(1, max_pages + 1):
            page = self.pull(limit=limit)
            if not page["reset"] and not any(page["has_more"].values()):
                return n
        raise AssertionError(f"still has_more after {max_pages} pages")

    def copy(self, table: str) -> dict[str, dict[str, Any]]:
        return self.tables.get(table, {})

    # --- push ---------------------------------------------------------------------------------

    def mutation(self, mutation_name: str, /, **args: Any) -> dict[str, Any]:
        """A new mutation with the device's next id (not sent yet)."""
        m = {"id": self.next_id, "name": mutation_name, "args": args}
        self.next_id += 1
        return m

    def push(self, *mutations: dict[str, Any]) -> dict[str, Any]:
        return push(actor=self.actor, device_id=self.device.pk, mutations=list(mutations)).as_dict()


WAIT = 120  # seconds: a deadline for threads, never a sleep


def in_threads(calls: list[Any]) -> list[Any]:
    """Run the calls at the same instant, one thread (and database connection) each; return each
    call's result or the exception it raised, in order."""
    import threading

    from django.db import connections

    barrier = threading.Barrier(len(calls), timeout=WAIT)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        except Exception as exc:  # reported to the test, which asserts on it
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "a thread did not finish before the deadline"
    return results


# --- Conflicts of each kind, as pushes make them ---------------------------------------------

STAFF = Actor(role=Actor.STAFF, label="ops")


def stale_count_conflict(vendor) -> tuple[SyncConflict, Product]:
    """A device counted 8 on a stock that received 5 units meanwhile: stale_count (15 on hand)."""
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    seen = phone.copy("stock")[str(Stock.objects.get(product=product).pk)]
    stock_adjust(product=product, delta=5, reason="livraison", actor=STAFF)
    phone.push(
        phone.mutation(
            "stock.count",
            product_id=str(product.pk),
            on_hand=8,
            base_version=seen["version"],
            base_on_hand=10,
        )
    )
    conflict = SyncConflict.objects.get()
    assert conflict.kind == "stale_count"
    return conflict, product


def stale_transition_conflict(vendor) -> tuple[SyncConflict, Order]:
    """A device cancelled an order (seen pending) that staff accepted meanwhile: stale_transition."""
    order = OrderFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    order = order_transition(order=order, to="accepted", actor=STAFF)
    phone.push(
        phone.mutation("order.transition", order_id=str(order.pk), to="cancelled", base_status="pending")
    )
    conflict = SyncConflict.objects.get()
    assert conflict.kind == "stale_transition"
    return conflict, order


def suspended_vendor_stock_conflicts(vendor) -> tuple[SyncConflict, SyncConflict, Product]:
    """A device of a vendor suspended while it was offline sold 2 of 10 units at the counter,
    then counted the 8 left... 7 on the shelf: both are facts of the shelf, kept as conflicts
    vendor_suspended for staff, nothing applied (10 on hand)."""
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    seen = phone.copy("stock")[str(Stock.objects.get(product=product).pk)]
    vendor_suspend(vendor=vendor, actor=STAFF)
    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-2, reason="vente"),
        phone.mutation(
            "stock.count", product_id=str(product.pk), on_hand=7, base_version=seen["version"], base_on_hand=8
        ),
    )
    assert [(r["status"], r["code"]) for r in answer["results"]] == [("conflict", "vendor_suspended")] * 2
    sale, count = (SyncConflict.objects.get(pk=r["conflict_id"]) for r in answer["results"])
    return sale, count, product
