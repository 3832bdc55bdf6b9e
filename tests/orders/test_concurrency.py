"""Stock and orders under real concurrency: threads with their own PostgreSQL connections.

Each worker thread waits at a barrier so they all start together, runs its share of the calls
and closes its connections. Nothing is mocked; the database decides who wins.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from catalog.models import Product, Stock, StockMovement, Vendor
from catalog.selectors import stock_audit
from catalog.services import (
    InsufficientStock,
    product_update,
    product_upsert_many,
    stock_adjust,
    vendor_suspend,
    vendor_update,
)
from okada.core.actors import Actor
from okada.core.errors import InUse, InvalidInput, NotFound
from orders.models import (
    OPEN_STATUSES,
    Customer,
    CustomerAlias,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    Zone,
    customer_name_matches,
)
from orders.services import (
    CallbackResult,
    CustomerUnavailable,
    InvalidTransition,
    OutOfStock,
    PlacedOrder,
    ProductUnavailable,
    VendorNotActive,
    ZoneUnavailable,
    customer_create,
    customer_get_or_create,
    customer_restore,
    customer_soft_delete,
    customer_update,
    order_cancel,
    order_expire_unpaid,
    order_place,
    order_place_for_phone,
    order_restore,
    order_soft_delete,
    order_transition,
    payment_apply_callback,
    payment_record,
    payment_refund_settle,
    zone_soft_delete,
    zone_update,
)
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.concurrency import Started, lock_waiters, poll, race, run_together
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory, advance, payment_needing_refund

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 120  # seconds: a deadline for the whole run, never a sleep
WORKERS = 20  # PostgreSQL allows 300 connections; this uses WORKERS + 2
S = OrderStatus
STAFF = Actor(role=Actor.STAFF, label="ops")
STOREFRONT = Actor(role=Actor.STOREFRONT, label="web")


class Snapshot(NamedTuple):
    on_hand: int
    reserved: int
    ledger_on_hand: int
    ledger_reserved: int
    held: int  # units on the items of orders that hold a reservation


# One statement, so one snapshot: what any reader could see at one instant.
SNAPSHOT_SQL = """
SELECT s.on_hand, s.reserved,
       (SELECT coalesce(sum(m.delta), 0) FROM catalog_stockmovement m
         WHERE m.product_id = s.product_id AND m.kind = ANY(%(on_hand_kinds)s)),
       (SELECT coalesce(sum(m.delta), 0) FROM catalog_stockmovement m
         WHERE m.product_id = s.product_id AND m.kind = ANY(%(reserved_kinds)s)),
       (SELECT coalesce(sum(i.quantity), 0) FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
         WHERE i.product_id = s.product_id AND o.status = ANY(%(holding)s))
  FROM catalog_stock s
 WHERE s.product_id = %(product)s
"""
HOLDING = [status for status in OPEN_STATUSES if status != S.OUT_FOR_DELIVERY]


class StockWatcher:
    """Reads a product's stock, its ledger and the reservations of its orders in one statement,
    on its own connection, as often as it can, while others write. CHECK constraints already
    keep 0 <= reserved <= on_hand; what they cannot keep is that every committed state agrees
    with the ledger and the orders (a reservation without its order, stock without its movement)."""

    def __init__(self, product: Product) -> None:
        self.params: dict[str, Any] = {
            "product": product.pk,
            "on_hand_kinds": list(StockMovement.ON_HAND_KINDS),
            "reserved_kinds": list(StockMovement.RESERVED_KINDS),
            "holding": HOLDING,
        }
        self.seen: list[Snapshot] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    cursor.execute(SNAPSHOT_SQL, self.params)
                    self.seen.append(Snapshot(*cursor.fetchone()))
        finally:
            connections.close_all()

    def consistent(self) -> bool:
        return all(
            s.on_hand == s.ledger_on_hand and s.reserved == s.ledger_reserved == s.held for s in self.seen
        )

    def __enter__(self) -> StockWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def placer(vendor_id: uuid.UUID, items: list[tuple[uuid.UUID, int]]) -> Callable[[], Order]:
    """A storefront checkout, as a thread would run it (it loads its own rows)."""
    vendor = Vendor.objects.get(pk=vendor_id)
    zone = ZoneFactory.create()  # rows made here, in the main thread, committed before the threads start
    customer = CustomerFactory.create(zone=zone)

    def place() -> Order:
        return order_place(
            vendor=vendor,
            customer=customer,
            items=items,
            payment_method=PaymentMethod.CASH,
            channel="storefront",
            address="Rond-point Deido",
            zone=zone,
            actor=STOREFRONT,
        )

    return place


def split(results: list[Any]) -> tuple[list[Order], list[OutOfStock], list[Any]]:
    orders = [r for r in results if isinstance(r, Order)]
    short = [r for r in results if isinstance(r, OutOfStock)]
    other = [r for r in results if not isinstance(r, (Order, OutOfStock))]
    return orders, short, other


def stock_of(product: Product) -> tuple[int, int]:
    stock = Stock.objects.get(product=product)
    return stock.on_hand, stock.reserved


def test_order_place_never_oversells_under_concurrency():
    product = ProductFactory(sku="LAST-10", initial_stock=10)
    place = placer(product.vendor_id, [(product.pk, 1)])

    with StockWatcher(product) as watcher:
        results = run_together([place] * 200)

    orders, short, other = split(results)
    assert other == []
    assert len(orders) == 10
    assert len(short) == 190
    assert all(
        e.data["items"] == [{"product_id": str(product.pk), "sku": "LAST-10", "requested": 1, "available": 0}]
        for e in short
    )
    assert stock_of(product) == (10, 10)
    assert Order.objects.count() == 10
    assert len({o.number for o in orders}) == 10
    assert sum(OrderItem.objects.values_list("quantity", flat=True)) == 10
    assert StockMovement.objects.filter(kind="reserve").count() == 10
    # Every state anyone could read along the way agreed with the ledger and the orders, and
    # reservations only grew (placements only reserve).
    assert watcher.seen
    assert watcher.consistent()
    assert all(s.on_hand == 10 for s in watcher.seen)
    reserved = [s.reserved for s in watcher.seen]
    assert reserved == sorted(reserved)
    assert stock_audit() == []


def test_concurrent_placements_locking_the_same_products_in_opposite_orders_do_not_deadlock():
    vendor = VendorFactory()
    a = ProductFactory(vendor=vendor, sku="A", initial_stock=500)
    b = ProductFactory(vendor=vendor, sku="B", initial_stock=500)
    a_then_b = placer(vendor.pk, [(a.pk, 1), (b.pk, 2)])
    b_then_a = placer(vendor.pk, [(b.pk, 2), (a.pk, 1)])

    results = run_together([a_then_b, b_then_a] * 100)

    orders, short, other = split(results)
    assert [r for r in other if isinstance(r, OperationalError)] == []  # deadlock detected = OperationalError
    assert other == []
    assert short == []
    assert len(orders) == 200
    assert stock_of(a) == (500, 200)
    assert stock_of(b) == (500, 400)
    assert stock_audit() == []


def test_concurrent_cancels_and_placements_keep_stock_consistent():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=20)
    existing = [OrderFactory(vendor=vendor, items=[(product, 2)]) for _ in range(10)]
    assert stock_of(product) == (20, 20)  # sold out: new orders need the cancelled units
    place = placer(vendor.pk, [(product.pk, 1)])
    cancels = [lambda o=o: order_cancel(order=o, actor=STAFF) for o in existing]
    calls: list[Callable[[], Any]] = []
    for cancel in cancels:
        calls += [cancel, place, place, place]

    results = run_together(calls)

    cancelled = [r for r in results if isinstance(r, Order) and r.status == S.CANCELLED]
    placed = [r for r in results if isinstance(r, Order) and r.status == S.PENDING]
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, OutOfStock)]
    assert errors == []
    assert len(cancelled) == 10
    assert 0 < len(placed) <= 20
    open_units = sum(OrderItem.objects.filter(order__status=S.PENDING).values_list("quantity", flat=True))
    assert open_units == len(placed)
    assert stock_of(product) == (20, len(placed))
    assert StockMovement.objects.filter(kind="release").count() == 10
    assert stock_audit() == []


def test_a_storm_of_placements_cancels_deliveries_and_restocks_keeps_the_ledger_equal_to_the_stock():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=40)
    to_cancel = [OrderFactory(vendor=vendor, items=[(product, 2)]) for _ in range(5)]
    to_ship = [advance(OrderFactory(vendor=vendor, items=[(product, 3)]), S.READY) for _ in range(5)]
    assert stock_of(product) == (40, 25)
    place = placer(vendor.pk, [(product.pk, 2)])

    def restock() -> Stock:
        return stock_adjust(product=product, delta=1, kind="restock", reason="delivery", actor=STAFF)

    calls: list[Callable[[], Any]] = []
    for cancel_me, ship_me in zip(to_cancel, to_ship, strict=True):
        calls += [
            functools.partial(order_cancel, order=cancel_me, actor=STAFF),
            functools.partial(order_transition, order=ship_me, to=S.OUT_FOR_DELIVERY, actor=STAFF),
            restock,
            place,
            place,
            place,
            place,
        ]

    with StockWatcher(product) as watcher:
        results = run_together(calls)

    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, OutOfStock)]
    assert errors == []
    placed = [r for r in results if isinstance(r, Order) and r.status == S.PENDING]
    # 40 + 5 restocked - 15 shipped on hand; reserved: what the new orders hold.
    assert stock_of(product) == (30, 2 * len(placed))
    assert watcher.seen
    assert watcher.consistent()
    assert stock_audit() == []


def test_removals_racing_placements_and_cancels_never_oversell_and_every_unit_is_in_the_ledger():
    # Staff (or a vendor's app) remove units (breakage, a count at the counter) while customers
    # order and others cancel: each removal applies whole or is refused (insufficient_stock),
    # none is lost, reserved never exceeds on hand, and every state seen agrees with the ledger.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=30)
    to_cancel = [OrderFactory(vendor=vendor, items=[(product, 2)]) for _ in range(5)]
    assert stock_of(product) == (30, 10)
    place = placer(vendor.pk, [(product.pk, 1)])

    def remove() -> Stock:
        return stock_adjust(product=product, delta=-3, reason="casse", actor=STAFF)

    calls: list[Callable[[], Any]] = []
    for cancel_me in to_cancel:
        calls += [functools.partial(order_cancel, order=cancel_me, actor=STAFF), remove, remove]
        calls += [place] * 4

    with StockWatcher(product) as watcher:
        results = run_together(calls)

    refused = (OutOfStock, InsufficientStock)
    assert [r for r in results if isinstance(r, Exception) and not isinstance(r, refused)] == []
    removed = sum(isinstance(r, Stock) for r in results)
    placed = [r for r in results if isinstance(r, Order) and r.status == S.PENDING]
    assert StockMovement.objects.filter(kind="adjustment").count() == removed
    assert stock_of(product) == (30 - 3 * removed, len(placed))
    assert 30 - 3 * removed >= len(placed)
    assert watcher.seen and watcher.consistent()
    assert all(s.reserved <= s.on_hand for s in watcher.seen)
    assert stock_audit() == []


def test_a_suspension_committing_while_an_order_is_placed_is_seen_by_it_or_waits_for_it():
    # The placement key-share-locks the vendor; vendor_suspend locks it FOR UPDATE: a suspension
    # in flight is waited for and then refuses the order (vendor_not_active); an order in flight
    # is waited for by the suspension, and stays (the vendor serves the orders it has).
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)

    suspended, refused = race(
        lambda: vendor_suspend(vendor=product.vendor, actor=STAFF), place_for(customer, zone, product)
    )
    assert isinstance(suspended, Vendor) and isinstance(refused, VendorNotActive), (suspended, refused)
    assert stock_of(product) == (5, 0)

    other = ProductFactory(initial_stock=5)
    placed, later = race(
        place_for(customer, zone, other), lambda: vendor_suspend(vendor=other.vendor, actor=STAFF)
    )
    assert isinstance(placed, Order) and isinstance(later, Vendor), (placed, later)
    assert Order.objects.get(pk=placed.pk).status == S.PENDING
    assert stock_of(other) == (5, 1)


def test_two_concurrent_cancels_of_one_order_release_its_stock_once():
    product = ProductFactory(initial_stock=5)
    order = OrderFactory(vendor=product.vendor, items=[(product, 3)])

    results = run_together([lambda: order_cancel(order=order, actor=STAFF)] * 2, workers=2)

    assert sorted(type(r).__name__ for r in results) == ["InvalidTransition", "Order"]
    assert any(isinstance(r, InvalidTransition) for r in results)
    assert stock_of(product) == (5, 0)
    assert StockMovement.objects.filter(kind="release", reference=order.number).count() == 1
    assert stock_audit() == []


def test_two_finance_users_settling_one_refund_at_once_settle_it_once():
    payment = payment_needing_refund()
    events = OrderEvent.objects.filter(order=payment.order_id).count()

    results = run_together(
        [lambda: payment_refund_settle(payment=payment, actor=STAFF, note="MoMo 2231")] * 2, workers=2
    )

    assert sorted(type(r).__name__ for r in results) == ["Payment", "RefundNotOwed"]
    assert not Payment.objects.get(pk=payment.pk).needs_refund
    assert OrderEvent.objects.filter(order=payment.order_id).count() == events + 1


def test_the_same_payment_callback_delivered_concurrently_is_applied_once():
    order = OrderFactory(payment_method=PaymentMethod.MTN_MOMO)
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MTN-RACE",
        amount_xaf=order.total_xaf,
        actor=STOREFRONT,
    )

    def deliver() -> CallbackResult:
        return payment_apply_callback(
            provider=PaymentMethod.MTN_MOMO,
            provider_reference="MTN-RACE",
            status="succeeded",
            amount_xaf=order.total_xaf,
            payload={"id": "MTN-RACE"},
        )

    results = run_together([deliver] * 10, workers=10)

    assert all(isinstance(r, CallbackResult) and r.payment.status == "succeeded" for r in results), results
    # One delivery decided the payment; the nine others waited for it and were told they repeat it.
    assert sorted(r.outcome for r in results) == ["applied"] + ["repeat"] * 9
    payment = Payment.objects.get(provider_reference="MTN-RACE")
    assert len(payment.callbacks) == 1
    assert order.events.filter(kind="payment", data__status="succeeded").count() == 1
    assert Order.objects.get(pk=order.pk).payment_status == "paid"


def test_a_callback_for_a_payment_deleted_while_it_waits_is_not_found():
    # The callback found the payment, locked its order, and waits for the payment's row, which
    # another connection deletes (no service deletes payments: a repair by hand): a clear 404.
    order = OrderFactory(payment_method=PaymentMethod.MTN_MOMO)
    payment = payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MTN-GONE",
        amount_xaf=order.total_xaf,
        actor=STOREFRONT,
    )

    deleted, applied = race(
        lambda: Payment.objects.filter(pk=payment.pk).delete(),
        lambda: payment_apply_callback(
            provider=PaymentMethod.MTN_MOMO,
            provider_reference="MTN-GONE",
            status="succeeded",
            amount_xaf=order.total_xaf,
            payload={"id": "MTN-GONE"},
        ),
    )

    assert deleted[0] == 1, (deleted, applied)
    assert isinstance(applied, NotFound), (deleted, applied)
    assert Order.objects.get(pk=order.pk).payment_status == "unpaid"


def test_placements_for_distinct_products_all_succeed_concurrently():
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=1) for _ in range(WORKERS)]
    calls = [placer(vendor.pk, [(p.pk, 1)]) for p in products]
    results = run_together(calls)
    orders, short, other = split(results)
    assert (len(orders), short, other) == (WORKERS, [], [])
    assert set(Stock.objects.values_list("on_hand", "reserved")) == {(1, 1)}
    assert stock_audit() == []


def test_concurrent_successful_payments_for_one_order_neither_deadlock_nor_double_mark():
    order = OrderFactory(payment_method=PaymentMethod.CASH)
    half = order.total_xaf // 2 + 1
    calls = [
        (
            lambda i=i: payment_record(
                order=order,
                provider=PaymentMethod.CASH,
                amount_xaf=half,
                actor=STAFF,
                status=Payment.Status.SUCCEEDED,
                provider_reference=f"cash-{i}",
            )
        )
        for i in range(10)
    ]
    results = run_together(calls, workers=10)
    assert not [r for r in results if isinstance(r, Exception)], results
    order.refresh_from_db()
    assert order.payment_status == "paid"
    assert Payment.objects.filter(order=order).count() == 10
    # Marked paid once: one change of the order row to paid, whichever payment covered the total.
    marks = [h.payment_status for h in order.history.order_by("history_date", "history_id")]
    assert marks == ["unpaid", "paid"]


def test_concurrent_product_creation_with_one_sku_gives_one_product_and_clear_conflicts():
    from catalog.services import SkuTaken, product_create

    vendor = VendorFactory()
    calls = [
        (lambda: product_create(vendor=vendor, sku="SAME", name="Sel", price_xaf=200, actor=STAFF))
        for _ in range(10)
    ]
    results = run_together(calls, workers=10)
    assert sum(isinstance(r, Product) for r in results) == 1
    assert all(isinstance(r, (Product, SkuTaken)) for r in results), results  # never IntegrityError
    assert Product.objects.filter(vendor=vendor, sku="SAME").count() == 1


def test_simultaneous_first_orders_from_one_new_phone_make_one_customer():
    """customer_get_or_create under the race it exists for: every caller misses the lookup, one
    insert wins, the others take its customer (none fails, none makes a second)."""
    zone = ZoneFactory()
    results = run_together(
        [
            (lambda: customer_get_or_create(phone="677 12 34 99", name="Ngo", zone=zone, actor=STOREFRONT))
            for _ in range(WORKERS)
        ]
    )
    assert all(isinstance(r, Customer) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Customer.objects.filter(phone="+237677123499").count() == 1


def test_simultaneous_first_orders_over_http_from_one_new_phone_make_one_customer(live_server):
    import json
    import urllib.request

    from tests.credentials.factories import storefront_key

    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    zone = ZoneFactory()
    secret = storefront_key()
    body = json.dumps(
        {
            "vendor": str(vendor.pk),
            "customer": {"phone": "+237699000777", "name": "Awa"},
            "items": [{"product": str(product.pk), "quantity": 1}],
            "payment_method": "cash",
            "address": "Akwa",
            "zone": str(zone.pk),
        }
    ).encode()

    def place() -> int:
        request = urllib.request.Request(  # noqa: S310 (our live server)
            f"{live_server.url}/api/v1/orders",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            return int(response.status)

    statuses = run_together([place for _ in range(8)], workers=8)
    assert statuses == [201] * 8
    assert Customer.objects.filter(phone="+237699000777").count() == 1
    assert Order.objects.filter(customer__phone="+237699000777").count() == 8


def cash_entry(order: Order, key: str) -> Callable[[], Payment]:
    """Staff entering cash received under an idempotency key, as a thread would."""
    return lambda: payment_record(
        order=order,
        provider=PaymentMethod.CASH,
        idempotency_key=key,
        amount_xaf=order.total_xaf,
        status=Payment.Status.SUCCEEDED,
        actor=STAFF,
    )


def test_one_cash_entry_sent_concurrently_is_recorded_once():
    order = OrderFactory(payment_method=PaymentMethod.CASH)

    results = run_together([cash_entry(order, "till-7:entry-1")] * 10, workers=10)

    assert all(isinstance(r, Payment) for r in results), results
    assert {r.pk for r in results} == {Payment.objects.get().pk}
    assert order.events.filter(kind="payment").count() == 1
    assert Order.objects.get(pk=order.pk).payment_status == "paid"
    assert not Payment.objects.needing_refund().exists()


def test_one_key_sent_concurrently_for_two_orders_records_one_payment_and_refuses_the_other():
    orders = [OrderFactory(payment_method=PaymentMethod.CASH) for _ in range(2)]

    results = run_together([cash_entry(order, "shared-key") for order in orders], workers=2)

    assert sorted(type(r).__name__ for r in results) == ["IdempotencyMismatch", "Payment"], results
    payment = Payment.objects.get()
    assert [Order.objects.get(pk=o.pk).payment_status for o in orders] == [
        "paid" if o.pk == payment.order_id else "unpaid" for o in orders
    ]


def place_for(customer: Customer, zone: Any, product: Product) -> Callable[[], Order]:
    return lambda: order_place(
        vendor=product.vendor,
        customer=customer,
        items=[(product.pk, 1)],
        payment_method=PaymentMethod.CASH,
        channel="storefront",
        address="Akwa",
        zone=zone,
        actor=STOREFRONT,
    )


def test_a_customer_deleted_while_an_order_is_placed_for_them_is_refused_as_in_use():
    # The placement has written the order, not yet committed (the API's transaction); the delete
    # must wait for it and find the order, not leave a live order of a deleted customer.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)

    placed, deleted = race(
        place_for(customer, zone, product), lambda: customer_soft_delete(customer=customer, actor=STAFF)
    )

    assert isinstance(placed, Order), (placed, deleted)
    assert isinstance(deleted, InUse), (placed, deleted)
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_an_order_placed_for_a_customer_being_deleted_is_refused():
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)

    deleted, placed = race(
        lambda: customer_soft_delete(customer=customer, actor=STAFF), place_for(customer, zone, product)
    )

    assert isinstance(deleted, Customer), (deleted, placed)
    assert isinstance(placed, CustomerUnavailable), (deleted, placed)
    assert not Order.all_objects.filter(customer=customer).exists()
    assert stock_of(product) == (5, 0)


def place_for_number(phone: str, zone: Any, product: Product) -> Callable[[], PlacedOrder]:
    """The storefront's POST /orders: the customer named by its phone number, in the API's
    transaction (the Idempotency-Key's)."""

    def place() -> PlacedOrder:
        with transaction.atomic():
            return order_place_for_phone(
                vendor_id=product.vendor_id,
                phone=phone,
                name="Awa Mbarga",
                zone_id=zone.pk,
                items=[(product.pk, 1)],
                payment_method=PaymentMethod.CASH,
                channel="storefront",
                address="Akwa",
                actor=STOREFRONT,
            )

    return place


def test_a_storefront_order_from_a_number_whose_customer_is_being_deleted_gets_a_new_customer():
    # The placement found the customer by its number, then waited for its row, which staff were
    # deleting. Refusing it (409 customer_unavailable, kept for its Idempotency-Key) matched no
    # order of the two: the order before the delete (which is then refused, in_use) or after it,
    # the first order of a number no live customer has. It is the latter.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(phone="+237677001122", zone=None)

    deleted, placed = race(
        lambda: customer_soft_delete(customer=customer, actor=STAFF),
        place_for_number("677 00 11 22", zone, product),
    )

    assert isinstance(deleted, Customer), (deleted, placed)
    assert isinstance(placed, PlacedOrder), (deleted, placed)
    new = Customer.objects.get(phone="+237677001122")
    assert new.pk != customer.pk and new.name == "Awa Mbarga"
    assert placed.order.customer_id == new.pk == Order.objects.get().customer_id
    assert Customer.deleted_objects.filter(pk=customer.pk).exists()
    assert stock_of(product) == (5, 1)


def test_a_customer_deleted_while_a_storefront_order_from_their_number_is_placed_is_in_use():
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(phone="+237677001123", zone=None)

    placed, deleted = race(
        place_for_number("677 00 11 23", zone, product),
        lambda: customer_soft_delete(customer=customer, actor=STAFF),
    )

    assert isinstance(placed, PlacedOrder), (placed, deleted)
    assert isinstance(deleted, InUse), (placed, deleted)
    assert Order.objects.get().customer_id == customer.pk
    assert Customer.objects.filter(pk=customer.pk).exists()


def post_for_number(url: str, phone: str, zone: Any, product: Product) -> Callable[[], tuple[int, Any]]:
    """The storefront's POST /orders over HTTP (a live server), with an Idempotency-Key (its
    transaction holds the whole request); its status and problem or order."""
    import json
    import urllib.error
    import urllib.request

    from tests.credentials.factories import storefront_key

    secret, key = storefront_key(), uuid.uuid4().hex
    body = {
        "vendor": str(product.vendor_id),
        "customer": {"phone": phone, "name": "Awa Mbarga"},
        "items": [{"product": str(product.pk), "quantity": 1}],
        "payment_method": "cash",
        "address": "Akwa",
        "zone": str(zone.pk),
    }

    def post() -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 (our live server)
            f"{url}/api/v1/orders",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {secret}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return post


def placed_or_refused(through: str, result: Any) -> Any:
    """The order's customer id (placed), or what refused it (an exception, or the API's answer)."""
    if through == "service":
        return result.order.customer_id if isinstance(result, PlacedOrder) else result
    status, body = result
    return uuid.UUID(body["customer"]["id"]) if status == 201 else (status, body)


@pytest.mark.parametrize("through", ["service", "api"])
def test_two_first_orders_from_a_number_whose_customer_is_deleted_between_them_do_not_deadlock(
    through, request
):
    """The first order finds the number's customer live and is held up after the stock rows (here
    by a lock on its zone); staff delete the customer; a second order from the number starts and
    waits for the stock rows; then the first is let go.

    Before okada_order_place v9 the delete committed at once (the first order had not locked the
    customer yet), the second order found no live customer and created one before waiting, and the
    first, let go, found its customer deleted (`customer_unavailable`) and created one too, holding
    the stock rows: its insert waited for the second one's (one live customer per number) while the
    second waited for the stock rows, and PostgreSQL failed one of them as a deadlock (a 503
    try_again for the storefront, whose client had to send it again). v9 key-share-locks the
    customer it finds by phone before any stock row: the delete waits for the first order and is
    refused (in_use), the second order finds the customer too, and both are placed for it."""
    product = ProductFactory(initial_stock=5)
    first_zone, second_zone = ZoneFactory(), ZoneFactory()
    customer = CustomerFactory(phone="+237677001124", zone=None)
    first_call: Callable[[], Any]
    second_call: Callable[[], Any]
    if through == "service":
        first_call = place_for_number("677 00 11 24", first_zone, product)
        second_call = place_for_number("677 00 11 24", second_zone, product)
    else:
        url = request.getfixturevalue("live_server").url
        first_call = post_for_number(url, "677 00 11 24", first_zone, product)
        second_call = post_for_number(url, "677 00 11 24", second_zone, product)
    holding, release = threading.Event(), threading.Event()

    def hold_first_zone() -> None:
        with transaction.atomic():
            Zone.objects.select_for_update().get(pk=first_zone.pk)
            holding.set()
            release.wait(WAIT)

    gate = Started(hold_first_zone)
    try:
        assert holding.wait(WAIT)
        first = Started(first_call)
        poll(lambda: lock_waiters() == 1, "the first order to wait for its zone")
        deleting = Started(lambda: customer_soft_delete(customer=customer, actor=STAFF))
        # Before v9 the delete commits; now it waits for the first order's lock on the customer.
        poll(lambda: deleting.done() or lock_waiters() == 2, "the delete to commit or wait")
        waiting = 1 if deleting.done() else 2
        second = Started(second_call)
        poll(lambda: lock_waiters() == waiting + 1, "the second order to wait for the stock rows")
    finally:
        release.set()
    gate.join()
    placed = [placed_or_refused(through, s.join()) for s in (first, second)]

    assert placed == [customer.pk, customer.pk], placed
    assert isinstance(deleting.join(), InUse)
    assert Customer.objects.get(phone="+237677001124").pk == customer.pk  # the only live one
    assert Order.objects.filter(customer=customer).count() == 2
    assert stock_of(product) == (5, 2)
    assert stock_audit() == []


def test_two_first_orders_from_a_number_whose_customer_is_being_deleted_make_one_new_customer():
    """Both orders found the customer while staff deleted it, and wait for the delete (before any
    stock row, okada_order_place v9): once it commits, both are first orders of that number; the
    one that creates the customer first places its order, the other then takes that customer."""
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(phone="+237677001125", zone=None)
    holding, release = threading.Event(), threading.Event()

    def delete() -> Customer:
        with transaction.atomic():
            deleted = customer_soft_delete(customer=customer, actor=STAFF)
            holding.set()
            release.wait(WAIT)
        return deleted

    deleting = Started(delete)
    try:
        assert holding.wait(WAIT)
        first = Started(place_for_number("677 00 11 25", zone, product))
        poll(lambda: lock_waiters() == 1, "the first order to wait for the customer being deleted")
        second = Started(place_for_number("677 00 11 25", zone, product))
        poll(lambda: lock_waiters() == 2, "the second order to wait too")
    finally:
        release.set()
    assert isinstance(deleting.join(), Customer)
    placed = [first.join(), second.join()]

    assert all(isinstance(p, PlacedOrder) for p in placed), placed
    new = Customer.objects.get(phone="+237677001125")  # the only live one
    assert new.pk != customer.pk and new.name == "Awa Mbarga"
    assert [p.order.customer_id for p in placed] == [new.pk, new.pk]
    assert Order.objects.filter(customer=new).count() == 2
    assert Customer.deleted_objects.filter(pk=customer.pk).exists()
    assert stock_of(product) == (5, 2)
    assert stock_audit() == []


@pytest.mark.parametrize("before", ["live", "never", "deleted"])
def test_simultaneous_orders_from_one_number_are_all_placed_for_one_live_customer(before):
    """However the number stands (a live customer, none ever, one deleted before), orders from it
    at the same instant are all placed, for the one live customer of the number (none fails: no
    deadlock between the customer's creation and the stock rows)."""
    product, zone = ProductFactory(initial_stock=50), ZoneFactory()
    if before != "never":
        old = CustomerFactory(phone="+237677001126", zone=None)
        if before == "deleted":
            customer_soft_delete(customer=old, actor=STAFF)

    placed = run_together([place_for_number("677 00 11 26", zone, product)] * 8, workers=8)

    assert all(isinstance(p, PlacedOrder) for p in placed), placed
    live = Customer.objects.get(phone="+237677001126")
    assert {p.order.customer_id for p in placed} == {live.pk}
    assert (live.pk == old.pk) if before == "live" else (live.name == "Awa Mbarga")
    assert stock_of(product) == (50, 8)
    assert stock_audit() == []


def test_a_zone_deleted_while_an_order_is_placed_in_it_is_refused_as_in_use():
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)

    placed, deleted = race(
        place_for(customer, zone, product), lambda: zone_soft_delete(zone=zone, actor=STAFF)
    )

    assert isinstance(placed, Order), (placed, deleted)
    assert isinstance(deleted, InUse), (placed, deleted)


def test_an_order_placed_in_a_zone_being_deleted_is_refused():
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)

    deleted, placed = race(
        lambda: zone_soft_delete(zone=zone, actor=STAFF), place_for(customer, zone, product)
    )

    assert isinstance(deleted, Zone), (deleted, placed)
    assert isinstance(placed, ZoneUnavailable), (deleted, placed)
    assert not Order.all_objects.filter(zone=zone).exists()
    assert stock_of(product) == (5, 0)


def hard_delete_confirmation(product: Product) -> Callable[[], str]:
    """A superuser's "delete for good" page of `product`, opened now; confirming it, as a thread
    would (the answer's text)."""
    from django.test import Client

    from tests.catalog.factories import UserFactory
    from tests.hard_delete import counted

    superuser = Client()
    superuser.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = "/admin/catalog/product/"
    post = {"action": "hard_delete_selected", "_selected_action": [str(product.pk)]}
    shown = counted(superuser.post(url, post).content.decode())

    def confirm() -> str:
        response = superuser.post(url, {**post, "confirm": "yes", "counted": shown}, follow=True)
        assert response.status_code == 200, response.status_code
        return response.content.decode()

    return confirm


def test_an_order_committing_while_its_product_is_deleted_for_good_keeps_it_without_a_deadlock():
    # The placement holds the product's stock row and commits: its order item's foreign key then
    # key-share-locks the product. The confirmation locked the product first and then waited for
    # the stock row to delete it: each waited for the other, and PostgreSQL failed one of them
    # (a 500 for the superuser or for the customer). Now the stock is locked first, as placements
    # lock it: the confirmation waits for the order to commit, then is refused for it (in_use).
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)
    confirm = hard_delete_confirmation(product)

    placed, page = race(place_for(customer, zone, product), confirm)

    assert isinstance(placed, Order), (placed, page)
    assert isinstance(page, str), (placed, page)
    assert "impossible de le supprimer définitivement" in page
    assert Product.objects.filter(pk=product.pk).exists()
    assert stock_of(product) == (5, 1)


def test_an_order_of_a_product_being_deleted_for_good_is_refused_as_unavailable():
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)
    confirm = hard_delete_confirmation(product)

    page, placed = race(confirm, place_for(customer, zone, product))

    assert isinstance(page, str), (page, placed)
    assert isinstance(placed, ProductUnavailable), (page, placed)
    assert not Product.all_objects.filter(pk=product.pk).exists()
    assert not Order.all_objects.exists()


def test_an_edit_of_the_vendor_zone_or_customer_does_not_hold_up_placements():
    # An edit of their details takes FOR NO KEY UPDATE, which the placement's FOR KEY SHARE of the
    # rows it points at does not wait for: the order is placed while the edit is still open (a
    # placement that waited would read the edit, committed by then, right after it). A customer's
    # rename is the exception (the next tests).
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)
    edits = [
        (
            lambda: vendor_update(vendor=product.vendor, data={"name": "Chez Mama"}, actor=STAFF),
            lambda: Vendor.objects.get(pk=product.vendor_id).name,
        ),
        (
            lambda: zone_update(zone=zone, data={"delivery_fee_xaf": 900}, actor=STAFF),
            lambda: Zone.objects.get(pk=zone.pk).delivery_fee_xaf,
        ),
        (
            lambda: customer_update(customer=customer, data={"default_address": "Bonapriso"}, actor=STAFF),
            lambda: Customer.objects.get(pk=customer.pk).default_address,
        ),
    ]
    for edit, read in edits:
        before = read()

        def place_then_read(read: Callable[[], Any] = read) -> tuple[Any, Any]:
            return place_for(customer, zone, product)(), read()

        edited, placed = race(edit, place_then_read)

        assert not isinstance(edited, Exception) and not isinstance(placed, Exception), (edited, placed)
        assert isinstance(placed[0], Order) and placed[1] == before, (edited, placed)
        assert read() != before  # and the edit was saved
    assert Order.objects.filter(customer=customer).count() == 3


def test_a_customers_rename_waits_for_a_placement_in_flight_and_gives_its_order_an_alias():
    # The order gives the record's name, then staff rename the record: the order no longer shows
    # the record's name, so the name search needs its alias (orders.models.CustomerAlias). The
    # rename (FOR UPDATE) waits for the placement's FOR KEY SHARE, then sees its order: with FOR NO
    # KEY UPDATE it wrote the aliases of the orders committed before, without this one.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None, phone="+237677000555", name="Awa Mbarga")

    placed, renamed = race(
        place_for_number(customer.phone, zone, product),
        lambda: customer_update(customer=customer, data={"name": "Awa Ngo"}, actor=STAFF),
    )

    assert isinstance(placed, PlacedOrder) and isinstance(renamed, Customer), (placed, renamed)
    assert placed.order.customer_name == "Awa Mbarga"
    assert list(CustomerAlias.objects.values_list("vendor_id", "customer_id", "name")) == [
        (product.vendor_id, customer.pk, "Awa Mbarga")
    ]
    assert list(Order.objects.filter(customer_name_matches("Mbarga"))) == [placed.order]


def test_a_placement_waits_for_a_customers_rename_in_flight_and_writes_its_own_alias():
    # The other way round: the placement reads the new name (its FOR KEY SHARE waits for the
    # rename's FOR UPDATE), which its name given is not; it writes the alias itself.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None, phone="+237677000556", name="Awa Mbarga")

    renamed, placed = race(
        lambda: customer_update(customer=customer, data={"name": "Awa Ngo"}, actor=STAFF),
        place_for_number(customer.phone, zone, product),
    )

    assert isinstance(placed, PlacedOrder) and isinstance(renamed, Customer), (placed, renamed)
    assert placed.order.customer_name == "Awa Mbarga"
    assert list(CustomerAlias.objects.values_list("vendor_id", "customer_id", "name")) == [
        (product.vendor_id, customer.pk, "Awa Mbarga")
    ]
    assert list(Order.objects.filter(customer_name_matches("Mbarga"))) == [placed.order]


class HeldOpen:
    """`call` in a transaction of its own (a thread with its own connection), held open from
    when it has run until release(): the locks it took are held meanwhile."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.ran, self._release = threading.Event(), threading.Event()

        def run() -> Any:
            try:
                with transaction.atomic():
                    result = call()
                    self.ran.set()
                    assert self._release.wait(WAIT)
                    return result
            finally:
                self.ran.set()

        self.started = Started(run)
        assert self.ran.wait(WAIT)

    def release(self) -> Any:
        self._release.set()
        return self.started.join()


def waiting_in(statement: str) -> bool:
    """Some backend of this database waits for a lock in a statement containing `statement`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND strpos(query, %s) > 0",
            [statement],
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.parametrize("renamed", ["before_the_placement", "while_the_placement_waits"])
def test_a_staff_placement_for_a_customer_renamed_since_it_was_read_gives_its_order_an_alias(renamed):
    # Staff chose the customer (its object read), then a rename committed: the order gives the
    # name of the object at hand, the record has the new one. Compared with that object, the
    # names matched and no alias was written; the rename's own aliases were written before the
    # order existed: the name search never found the order by the name it shows. The placement
    # now compares with the name under the record's lock (okada_order_place v10). The rename
    # commits before the placement's statement starts, or while it waits (held at its zone,
    # after the stock rows and before the customer's lock): the row it then locks is the new one.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None, name="Awa Mbarga")
    read, gone_on = threading.Event(), threading.Event()

    def place() -> Order:
        with transaction.atomic():
            at_hand = Customer.objects.get(pk=customer.pk)  # as the admin's form read it
            read.set()
            assert gone_on.wait(WAIT)
            return place_for(at_hand, zone, product)()

    def rename() -> Customer:
        assert read.wait(WAIT)
        return customer_update(customer=customer, data={"name": "Awa Ngo"}, actor=STAFF)

    if renamed == "before_the_placement":
        placing, renaming = Started(place), Started(rename)
        renamed_to = renaming.join()
        gone_on.set()
    else:
        gate = HeldOpen(lambda: Zone.objects.select_for_update().get(pk=zone.pk))
        try:
            placing = Started(place)
            assert read.wait(WAIT)
            gone_on.set()
            poll(lambda: waiting_in("okada_order_place"), "the placement to wait for its zone")
            renamed_to = Started(rename).join()  # not held up: the customer is not locked yet
        finally:
            gone_on.set()
            gate.release()
    placed = placing.join()

    assert isinstance(placed, Order) and isinstance(renamed_to, Customer), (placed, renamed_to)
    assert placed.customer_name == "Awa Mbarga"
    assert Customer.objects.get(pk=customer.pk).name == "Awa Ngo"
    assert list(CustomerAlias.objects.values_list("vendor_id", "customer_id", "name")) == [
        (product.vendor_id, customer.pk, "Awa Mbarga")
    ]
    assert list(Order.objects.filter(customer_name_matches("Mbarga"))) == [placed]
    assert list(Order.objects.filter(customer_name_matches("Ngo"))) == []  # it shows its own name


def test_a_first_order_taking_the_customer_another_one_made_gives_its_order_an_alias_after_a_rename():
    # The storefront's first order of a number: no customer (`customer_unknown`), so it creates
    # one, whose insert waits for another first order of the number, which made it; it then takes
    # that customer (a plain read: "Awa Mbarga", the name it gives too) and places by id, held at
    # its zone. A rename commits meanwhile. Compared with the customer as read, the names matched
    # and no alias was written; compared under the record's lock (v10), they differ.
    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    other = HeldOpen(
        lambda: customer_get_or_create(phone="677 00 05 57", name="Awa Mbarga", actor=STOREFRONT)
    )
    gate = HeldOpen(lambda: Zone.objects.select_for_update().get(pk=zone.pk))
    try:
        placing = Started(place_for_number("677 00 05 57", zone, product))
        poll(lambda: waiting_in('INSERT INTO "orders_customer"'), "the first order's customer insert to wait")
        made = other.release()
        poll(lambda: waiting_in("okada_order_place"), "the placement by id to wait for its zone")
        renaming = Started(lambda: customer_update(customer=made, data={"name": "Awa Ngo"}, actor=STAFF))
        renamed = renaming.join()
    finally:
        other.release()
        gate.release()
    placed = placing.join()

    assert isinstance(placed, PlacedOrder) and isinstance(renamed, Customer), (placed, renamed)
    assert placed.order.customer_id == made.pk and placed.order.customer_name == "Awa Mbarga"
    assert Customer.objects.get(pk=made.pk).name == "Awa Ngo"
    assert list(CustomerAlias.objects.values_list("vendor_id", "customer_id", "name")) == [
        (product.vendor_id, made.pk, "Awa Mbarga")
    ]
    assert list(Order.objects.filter(customer_name_matches("Mbarga"))) == [placed.order]


def test_a_product_edit_alone_or_in_bulk_does_not_hold_up_placements_of_the_product():
    # A price change, one product or a catalog of them, locked the products FOR UPDATE until it
    # committed: every placement of them waited at its order item's foreign key (FOR KEY SHARE),
    # and a bulk upsert locking several (SKU order) while placements held some of them (product-id
    # order) deadlocked with them. FOR NO KEY UPDATE, as the other edits: the order is placed
    # at the price it read while the edit is still open.
    zone, customer = ZoneFactory(), CustomerFactory(zone=None)
    product = ProductFactory(initial_stock=5, price_xaf=1000)
    vendor = product.vendor
    integration = Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="integration")
    edits = [
        lambda: product_update(product=product, data={"price_xaf": 1100}, actor=STAFF),
        lambda: product_upsert_many(
            vendor=vendor, items=[{"sku": product.sku, "price_xaf": 1200}], actor=integration, atomic=True
        ),
    ]
    for edit, after in zip(edits, (1100, 1200), strict=True):
        before = Product.objects.get(pk=product.pk).price_xaf

        def place_then_read() -> tuple[Any, int]:
            return place_for(customer, zone, product)(), Product.objects.get(pk=product.pk).price_xaf

        edited, placed = race(edit, place_then_read)

        assert not isinstance(edited, Exception) and not isinstance(placed, Exception), (edited, placed)
        assert isinstance(placed[0], Order) and placed[1] == before, (edited, placed)
        assert placed[0].items.get().unit_price_xaf == before
        assert Product.objects.get(pk=product.pk).price_xaf == after  # and the edit was saved


def test_a_vendors_details_saved_in_the_admin_do_not_hold_up_its_placements():
    # The change form's check (no one saved the row since it was opened) locked the vendor FOR
    # UPDATE until the save committed: every placement of that vendor (FOR KEY SHARE) waited for
    # it, and the save waited for the placements in flight, where vendor_update itself takes FOR
    # NO KEY UPDATE so that placements go on (the test above).
    from django.test import Client

    from tests.catalog.factories import UserFactory
    from tests.catalog.test_admin import loaded_at

    product, zone = ProductFactory(initial_stock=5), ZoneFactory()
    customer = CustomerFactory(zone=None)
    vendor = product.vendor
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/catalog/vendor/{vendor.pk}/change/"
    form = {
        "name": "Chez Mama",
        "slug": vendor.slug,
        "phone": vendor.phone,
        "email": "",
        "city": vendor.city,
        "commission_bps": str(vendor.commission_bps),
        "_okada_loaded_at": loaded_at(staff.get(url).content.decode()),
    }

    def place_then_read() -> tuple[Any, str]:
        return place_for(customer, zone, product)(), Vendor.objects.get(pk=vendor.pk).name

    saved, placed = race(lambda: staff.post(url, form).status_code, place_then_read)

    assert saved == 302, (saved, placed)
    assert isinstance(placed, tuple) and isinstance(placed[0], Order), placed
    assert placed[1] == vendor.name  # placed while the save was still open, not after it
    assert Vendor.objects.get(pk=vendor.pk).name == "Chez Mama"


MTN = PaymentMethod.MTN_MOMO


def tomorrow() -> datetime:
    """Past every deadline of the orders made now: the expiry job's `now`."""
    return timezone.now() + timedelta(days=1)


def momo_order(product: Product, reference: str) -> Order:
    """A pending MTN MoMo order of 2 units, its payment requested under `reference`."""
    order = OrderFactory(vendor=product.vendor, items=[(product, 2)], payment_method=MTN)
    payment_record(
        order=order, provider=MTN, provider_reference=reference, amount_xaf=order.total_xaf, actor=STOREFRONT
    )
    return order


def paid_callback(order: Order, reference: str) -> Callable[[], CallbackResult]:
    return lambda: payment_apply_callback(
        provider=MTN,
        provider_reference=reference,
        status="succeeded",
        amount_xaf=order.total_xaf,
        payload={"id": reference},
    )


def status_moves(order: Order) -> list[tuple[str, str]]:
    events = OrderEvent.objects.filter(order=order.pk, kind="status").order_by("created_at", "id")
    return list(events.values_list("from_status", "to_status"))


def test_a_callback_and_cash_recorded_by_staff_at_once_mark_the_order_paid_once_and_flag_the_second():
    # The customer paid by MoMo and, not seeing it arrive, paid cash too: whichever payment is
    # recorded second takes the order past its total and is flagged for a refund (overpaid).
    order = momo_order(ProductFactory(initial_stock=5), "MTN-TWICE")

    results = run_together(
        [paid_callback(order, "MTN-TWICE"), cash_entry(order, "till-3:entry-9")], workers=2
    )

    assert isinstance(results[0], CallbackResult) and isinstance(results[1], Payment), results
    received = Payment.objects.filter(order=order, status="succeeded")
    assert received.count() == 2
    flagged = list(received.filter(needs_refund=True))
    assert len(flagged) == 1 and flagged[0].refund_flagged_at is not None, flagged
    flag = OrderEvent.objects.get(order=order.pk, kind="note", data__needs_refund=True)
    assert (flag.data["payment_id"], flag.data["reasons"]) == (str(flagged[0].pk), ["overpaid"])
    marks = [
        h.payment_status
        for h in Order.objects.get(pk=order.pk).history.order_by("history_date", "history_id")
    ]
    assert marks == ["unpaid", "paid"]


def test_money_landing_while_the_expiry_job_expires_its_order_is_kept_and_flagged_for_refund():
    # The job holds the order's lock; the callback waits for it, then finds the order expired.
    product = ProductFactory(initial_stock=5)
    order = momo_order(product, "MTN-EXP-1")

    expired, paid = race(lambda: order_expire_unpaid(now=tomorrow()), paid_callback(order, "MTN-EXP-1"))

    assert expired == 1, (expired, paid)
    assert isinstance(paid, CallbackResult), (expired, paid)
    assert (paid.payment.status, paid.payment.needs_refund, paid.outcome) == ("succeeded", True, "applied")
    assert Order.objects.get(pk=order.pk).status == S.EXPIRED
    assert status_moves(order) == [(S.PENDING, S.EXPIRED)]
    assert stock_of(product) == (5, 0)
    assert StockMovement.objects.filter(kind="release", reference=order.number).count() == 1
    assert stock_audit() == []


def test_an_order_paid_while_the_expiry_job_runs_is_not_expired():
    # The callback holds the order's lock: the job skips the order (never waits on it), and
    # a later run finds it paid.
    product = ProductFactory(initial_stock=5)
    order = momo_order(product, "MTN-EXP-2")

    paid, expired = race(paid_callback(order, "MTN-EXP-2"), lambda: order_expire_unpaid(now=tomorrow()))

    assert isinstance(paid, CallbackResult), (paid, expired)
    assert (paid.payment.status, paid.payment.needs_refund, expired) == ("succeeded", False, 0)
    assert order_expire_unpaid(now=tomorrow()) == 0
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (S.PENDING, "paid")
    assert status_moves(order) == []
    assert stock_of(product) == (5, 2)


@pytest.mark.parametrize("first", ["callback", "cancel"])
def test_money_landing_while_the_customer_cancels_is_owed_back_whichever_commits_first(first):
    # The customer gives up waiting and cancels as the MoMo confirmation arrives. Money landing
    # on a cancelled order was flagged for Finance; an order cancelled just after its money
    # landed kept the money with no flag: the refund owed depended on which took the lock first.
    product = ProductFactory(initial_stock=5)
    order = momo_order(product, "MTN-CXL-1")
    pay, cancel = paid_callback(order, "MTN-CXL-1"), lambda: order_cancel(order=order, actor=STOREFRONT)

    results = race(pay, cancel) if first == "callback" else race(cancel, pay)[::-1]

    paid, cancelled = results
    assert isinstance(paid, CallbackResult) and isinstance(cancelled, Order), results
    payment = Payment.objects.get(provider_reference="MTN-CXL-1")
    assert (payment.status, payment.received_xaf) == ("succeeded", order.total_xaf)
    assert payment.needs_refund
    flags = OrderEvent.objects.filter(order=order.pk, kind="note", data__needs_refund=True)
    assert [(f.data["payment_id"], f.data["reasons"]) for f in flags] == [
        (str(payment.pk), ["order_cancelled"])
    ]
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED
    assert stock_of(product) == (5, 0)


def test_two_expiry_runs_at_once_expire_each_order_once():
    # Two beat ticks, or the job and `manage.py` by hand: each order expired by one of them.
    product = ProductFactory(initial_stock=100)
    orders = [
        OrderFactory(vendor=product.vendor, items=[(product, 1)], payment_method=MTN) for _ in range(20)
    ]

    results = run_together([lambda: order_expire_unpaid(now=tomorrow())] * 2, workers=2)

    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 20
    assert all(status_moves(o) == [(S.PENDING, S.EXPIRED)] for o in orders)
    assert stock_of(product) == (100, 0)
    assert StockMovement.objects.filter(kind="release").count() == 20
    assert stock_audit() == []


def test_staff_cancelling_while_the_vendor_accepts_ends_cancelled_with_one_event_per_move():
    product = ProductFactory(initial_stock=5)
    order = OrderFactory(vendor=product.vendor, items=[(product, 2)])
    vendor_app = Actor(role=Actor.VENDOR, vendor_id=product.vendor_id, label="app")

    cancelled, accepted = run_together(
        [
            lambda: order_cancel(order=order, actor=STAFF),
            lambda: order_transition(order=order, to=S.ACCEPTED, actor=vendor_app),
        ],
        workers=2,
    )

    assert isinstance(cancelled, Order), (cancelled, accepted)
    if isinstance(accepted, Order):  # accepted first, then cancelled from accepted
        assert status_moves(order) == [(S.PENDING, S.ACCEPTED), (S.ACCEPTED, S.CANCELLED)]
    else:  # cancelled first: the accept is refused
        assert isinstance(accepted, InvalidTransition), (cancelled, accepted)
        assert status_moves(order) == [(S.PENDING, S.CANCELLED)]
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED
    assert stock_of(product) == (5, 0)
    assert StockMovement.objects.filter(kind="release", reference=order.number).count() == 1


def test_a_storefront_first_order_while_staff_create_that_customer_takes_the_staff_one():
    # Staff save a new customer in the admin; a first storefront order from the same number
    # comes before that commits: it waits on the phone's unique index and takes that customer.
    created, found = race(
        lambda: customer_create(name="Ngo Bassa", phone="+237677000555", actor=STAFF),
        lambda: customer_get_or_create(phone="677 00 05 55", name="Ngo", actor=STOREFRONT),
    )

    assert isinstance(created, Customer), (created, found)
    assert isinstance(found, Customer), (created, found)
    assert found.pk == created.pk
    assert Customer.objects.filter(phone="+237677000555").count() == 1


def test_a_zone_deleted_while_a_customer_is_created_in_it_is_refused_as_in_use():
    # The create has read the zone live and written its customer, not yet committed; the delete
    # must wait for it and find the customer, not leave a live customer in a deleted zone.
    zone = ZoneFactory()

    created, deleted = race(
        lambda: customer_create(name="Ngo Bassa", phone="+237677000556", zone=zone, actor=STAFF),
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
    )

    assert isinstance(created, Customer), (created, deleted)
    assert isinstance(deleted, InUse), (created, deleted)
    assert Customer.objects.get(pk=created.pk).zone_id == zone.pk


def test_a_customer_created_in_a_zone_being_deleted_is_refused():
    zone = ZoneFactory()

    deleted, created = race(
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
        lambda: customer_create(name="Ngo Bassa", phone="+237677000557", zone=zone, actor=STAFF),
    )

    assert isinstance(deleted, type(zone)), (deleted, created)
    assert isinstance(created, InvalidInput), (deleted, created)
    assert list(created.errors) == ["zone"]
    assert not Customer.all_objects.filter(zone=zone).exists()


def test_a_customer_moved_to_a_zone_being_deleted_is_refused():
    zone, customer = ZoneFactory(), CustomerFactory(zone=None)

    deleted, moved = race(
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
        lambda: customer_update(customer=customer, data={"zone": zone}, actor=STAFF),
    )

    assert isinstance(deleted, type(zone)), (deleted, moved)
    assert isinstance(moved, InvalidInput), (deleted, moved)
    assert Customer.objects.get(pk=customer.pk).zone_id is None


def test_a_customer_restored_while_their_zone_is_being_deleted_is_refused():
    # The zone's delete found no live customer in it (this one was deleted) and commits while the
    # restore runs: the customer must stay deleted, not come back live in a deleted zone.
    zone = ZoneFactory()
    customer = customer_soft_delete(customer=CustomerFactory(zone=zone), actor=STAFF)

    deleted, restored = race(
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
        lambda: customer_restore(customer=customer, actor=STAFF),
    )

    assert isinstance(deleted, type(zone)), (deleted, restored)
    assert isinstance(restored, InvalidInput), (deleted, restored)
    assert list(restored.errors) == ["zone"]
    assert Customer.deleted_objects.filter(pk=customer.pk).exists()


def test_a_zone_deleted_while_a_customer_is_restored_in_it_is_refused_as_in_use():
    zone = ZoneFactory()
    customer = customer_soft_delete(customer=CustomerFactory(zone=zone), actor=STAFF)

    restored, deleted = race(
        lambda: customer_restore(customer=customer, actor=STAFF),
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
    )

    assert isinstance(restored, Customer), (restored, deleted)
    assert isinstance(deleted, InUse), (restored, deleted)
    assert Customer.objects.get(pk=customer.pk).zone_id == zone.pk


def deleted_order_and_its(parent: str) -> tuple[Order, Callable[[], Any]]:
    """A finished order, soft-deleted, and the delete of its customer or zone (which no live
    order holds any more)."""
    zone = ZoneFactory()
    customer = CustomerFactory(zone=None)
    order = order_cancel(order=OrderFactory(customer=customer, zone=zone), actor=STAFF)
    order_soft_delete(order=order, actor=STAFF)
    if parent == "customer":
        return order, lambda: customer_soft_delete(customer=customer, actor=STAFF)
    return order, lambda: zone_soft_delete(zone=zone, actor=STAFF)


@pytest.mark.parametrize("parent", ["customer", "zone"])
def test_an_order_restored_while_its_customer_or_zone_is_being_deleted_is_refused(parent):
    order, delete = deleted_order_and_its(parent)

    deleted, restored = race(delete, lambda: order_restore(order=order, actor=STAFF))

    assert isinstance(deleted, (Customer, Zone)), (deleted, restored)
    assert isinstance(restored, InvalidInput), (deleted, restored)
    assert list(restored.errors) == [parent]
    assert Order.deleted_objects.filter(pk=order.pk).exists()


@pytest.mark.parametrize("parent", ["customer", "zone"])
def test_a_customer_or_zone_deleted_while_its_order_is_restored_is_refused_as_in_use(parent):
    order, delete = deleted_order_and_its(parent)

    restored, deleted = race(lambda: order_restore(order=order, actor=STAFF), delete)

    assert isinstance(restored, Order), (restored, deleted)
    assert isinstance(deleted, InUse), (restored, deleted)
    assert Order.objects.filter(pk=order.pk).exists()


def test_a_zone_deleted_while_a_customer_is_moved_to_it_is_refused_as_in_use():
    zone, customer = ZoneFactory(), CustomerFactory(zone=None)

    moved, deleted = race(
        lambda: customer_update(customer=customer, data={"zone": zone}, actor=STAFF),
        lambda: zone_soft_delete(zone=zone, actor=STAFF),
    )

    assert isinstance(moved, Customer), (moved, deleted)
    assert isinstance(deleted, InUse), (moved, deleted)
    assert Customer.objects.get(pk=customer.pk).zone_id == zone.pk
