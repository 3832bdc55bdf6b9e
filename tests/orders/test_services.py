"""orders.services: placing, the lifecycle, payments and expiry, called directly."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone, translation

from catalog.models import Product, Stock, StockMovement, Vendor
from catalog.selectors import stock_audit
from catalog.services import product_soft_delete, product_update, vendor_suspend
from okada.core.actors import Actor
from okada.core.errors import (
    AlreadyRecorded,
    Conflict,
    DomainError,
    IdempotencyMismatch,
    InvalidInput,
    NotAllowed,
    NotFound,
)
from orders.models import (
    Channel,
    Customer,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Zone,
)
from orders.services import (
    TRANSITIONS,
    AwaitingPayment,
    CustomerUnavailable,
    InvalidTransition,
    OutOfStock,
    PlacedOrder,
    ProductUnavailable,
    RefundNotOwed,
    TransitionNotAllowed,
    UnknownPayment,
    VendorNotActive,
    ZoneUnavailable,
    allowed_targets,
    order_cancel,
    order_expire_unpaid,
    order_hard_delete,
    order_place_for_phone,
    order_transition,
    payment_apply_callback,
    payment_record,
    payment_refund_settle,
)
from tests.catalog.factories import ProductFactory, UserFactory, VendorFactory, staff_actor, vendor_actor
from tests.ids import uuid7_time
from tests.orders.factories import (
    CustomerFactory,
    OrderFactory,
    ZoneFactory,
    advance,
    order_in_status,
    payment_needing_refund,
)

pytestmark = pytest.mark.django_db

NO_ROW = uuid.UUID("0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f")  # an id no row has
# The current version of okada_order_place().
ORDER_PLACE = import_module("orders.migrations.0034_order_place_v9_customer_before_stock")

S = OrderStatus
VENDOR, STAFF, STOREFRONT, SYSTEM = Actor.VENDOR, Actor.STAFF, Actor.STOREFRONT, Actor.SYSTEM
ROLES = [VENDOR, STAFF, STOREFRONT, SYSTEM]

# DESIGN.md section 3, written out independently of the code: who may make which move.
LIFECYCLE: dict[tuple[str, str], set[str]] = {
    (S.PENDING, S.ACCEPTED): {VENDOR, STAFF},
    (S.ACCEPTED, S.PREPARING): {VENDOR, STAFF},
    (S.PREPARING, S.READY): {VENDOR, STAFF},
    (S.READY, S.OUT_FOR_DELIVERY): {VENDOR, STAFF},
    (S.OUT_FOR_DELIVERY, S.DELIVERED): {VENDOR, STAFF},
    (S.PENDING, S.CANCELLED): {VENDOR, STAFF, STOREFRONT},
    (S.ACCEPTED, S.CANCELLED): {VENDOR, STAFF},
    (S.PREPARING, S.CANCELLED): {VENDOR, STAFF},
    (S.READY, S.CANCELLED): {VENDOR, STAFF},
    (S.PENDING, S.EXPIRED): {SYSTEM},
    (S.DELIVERED, S.REFUNDED): {STAFF},
}
ALL_MOVES = [(frm, to, role) for frm in S.values for to in S.values for role in ROLES]
ALLOWED = [(frm, to, role) for frm, to, role in ALL_MOVES if role in LIFECYCLE.get((frm, to), set())]
REFUSED = [(frm, to, role) for frm, to, role in ALL_MOVES if role not in LIFECYCLE.get((frm, to), set())]


def actor_for(role: str, order: Order | None = None, user: Any = None) -> Actor:
    if role == VENDOR:
        assert order is not None
        return Actor(role=VENDOR, user=user or UserFactory(), vendor_id=order.vendor_id)
    if role == STAFF:
        return Actor(role=STAFF, user=user or UserFactory(is_staff=True, is_superuser=True))
    if role == SYSTEM:
        return Actor.system("test")
    return Actor(role=role, label="web")


def stock_of(product: Product) -> tuple[int, int]:
    stock = Stock.objects.get(product=product)
    return stock.on_hand, stock.reserved


def snapshot(order: Order) -> dict[str, Any]:
    """Everything a refused service call must leave as it was."""
    row = Order.all_objects.get(pk=order.pk)
    return {
        "status": row.status,
        "payment_status": row.payment_status,
        "updated_at": row.updated_at,
        "events": OrderEvent.objects.filter(order_id=order.pk).count(),
        "history": row.history.count(),
        "stock": list(
            Stock.objects.filter(vendor_id=order.vendor_id)
            .order_by("product_id")
            .values_list("on_hand", "reserved")
        ),
        "ledger": StockMovement.objects.filter(vendor_id=order.vendor_id).count(),
    }


def place(**kwargs: Any) -> Order:
    return OrderFactory.create(**kwargs)


# --- Placing ------------------------------------------------------------------------------------


def test_order_place_reserves_stock_and_snapshots_sku_name_and_price():
    vendor = VendorFactory()
    rice = ProductFactory(
        vendor=vendor, sku="RIZ-5KG", name="Riz parfumé 5 kg", price_xaf=4500, initial_stock=10
    )
    oil = ProductFactory(vendor=vendor, sku="HUILE-1L", name="Huile 1 L", price_xaf=1500, initial_stock=5)

    order = place(vendor=vendor, items=[(rice, 2), (oil.pk, 3)])

    assert stock_of(rice) == (10, 2)
    assert stock_of(oil) == (5, 3)
    items = {i.sku: i for i in order.items.all()}
    assert set(items) == {"RIZ-5KG", "HUILE-1L"}
    assert (items["RIZ-5KG"].name, items["RIZ-5KG"].unit_price_xaf, items["RIZ-5KG"].quantity) == (
        "Riz parfumé 5 kg",
        4500,
        2,
    )
    assert items["RIZ-5KG"].line_total_xaf == 9000
    assert items["HUILE-1L"].line_total_xaf == 4500
    reserves = StockMovement.objects.filter(kind="reserve", reference=order.number)
    assert sorted(reserves.values_list("product_id", "delta")) == sorted([(rice.pk, 2), (oil.pk, 3)])
    assert stock_audit() == []


def test_order_totals_are_the_subtotal_plus_the_zone_fee():
    vendor = VendorFactory()
    a = ProductFactory(vendor=vendor, price_xaf=1250, initial_stock=10)
    b = ProductFactory(vendor=vendor, price_xaf=300, initial_stock=10)
    zone = ZoneFactory(delivery_fee_xaf=700)

    order = place(vendor=vendor, items=[(a, 2), (b, 5)], zone=zone)

    order.refresh_from_db()
    assert order.subtotal_xaf == 2 * 1250 + 5 * 300
    assert order.delivery_fee_xaf == 700
    assert order.total_xaf == 4000 + 700
    assert order.status == S.PENDING
    assert order.payment_status == PaymentStatus.UNPAID
    assert order.number.startswith("OK-")


def test_changing_the_product_afterwards_does_not_change_the_order_item():
    product = ProductFactory(name="Plantain", sku="PLT", price_xaf=200, initial_stock=10)
    order = place(vendor=product.vendor, items=[(product, 4)])

    product_update(
        product=product, data={"price_xaf": 350, "name": "Plantain mûr", "sku": "PLT-2"}, actor=staff_actor()
    )

    item = OrderItem.objects.get(order=order)
    assert (item.sku, item.name, item.unit_price_xaf, item.line_total_xaf) == ("PLT", "Plantain", 200, 800)
    order.refresh_from_db()
    assert order.subtotal_xaf == 800


def test_order_place_uses_the_price_in_the_database_not_a_stale_product_object():
    product = ProductFactory(price_xaf=200, initial_stock=10)
    product_update(product=product, data={"price_xaf": 250}, actor=staff_actor())
    assert product.price_xaf == 200  # the caller's copy is stale
    order = place(vendor=product.vendor, items=[(product, 1)])
    assert order.items.get().unit_price_xaf == 250


def test_mobile_money_orders_get_a_payment_deadline_and_cash_orders_do_not(settings):
    settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES = 45
    momo = place(payment_method=PaymentMethod.MTN_MOMO)
    orange = place(payment_method=PaymentMethod.ORANGE_MONEY)
    cash = place(payment_method=PaymentMethod.CASH)
    assert momo.expires_at == momo.placed_at + timedelta(minutes=45)
    assert orange.expires_at == orange.placed_at + timedelta(minutes=45)
    assert cash.expires_at is None


def test_order_place_writes_a_placed_event_and_history_with_the_actor():
    user = UserFactory()
    vendor = VendorFactory()
    order = place(vendor=vendor, channel=Channel.PHONE, actor=vendor_actor(vendor, user=user))

    event = OrderEvent.objects.get(order_id=order.pk)
    assert (event.kind, event.from_status, event.to_status) == ("placed", "", "pending")
    assert event.actor_user_id == user.pk
    assert event.data == {"channel": "phone", "total_xaf": order.total_xaf}
    history = order.history.get()
    assert (history.history_type, history.history_user, history.history_change_reason) == (
        "+",
        user,
        "order placed",
    )


def test_order_place_is_all_or_nothing_and_names_the_short_items():
    vendor = VendorFactory()
    plenty = ProductFactory(vendor=vendor, sku="EAU", initial_stock=50)
    short = ProductFactory(vendor=vendor, sku="LAIT", initial_stock=3)
    empty = ProductFactory(vendor=vendor, sku="BEURRE", initial_stock=0)
    ledger_before = StockMovement.objects.count()

    with pytest.raises(OutOfStock) as exc:
        place(vendor=vendor, items=[(plenty, 5), (short, 4), (empty, 1)])

    assert exc.value.code == "out_of_stock"
    by_sku = {i["sku"]: i for i in exc.value.data["items"]}
    assert set(by_sku) == {"LAIT", "BEURRE"}
    assert (by_sku["LAIT"]["requested"], by_sku["LAIT"]["available"]) == (4, 3)
    assert (by_sku["BEURRE"]["requested"], by_sku["BEURRE"]["available"]) == (1, 0)
    assert by_sku["LAIT"]["product_id"] == str(short.pk)
    assert "LAIT" in str(exc.value)
    assert "BEURRE" in str(exc.value)
    # Nothing reserved, no order, no ledger rows, no events.
    assert stock_of(plenty) == (50, 0)
    assert stock_of(short) == (3, 0)
    assert not Order.all_objects.exists()
    assert not OrderItem.objects.exists()
    assert not OrderEvent.objects.exists()
    assert StockMovement.objects.count() == ledger_before
    assert stock_audit() == []


def test_available_counts_units_reserved_by_other_orders():
    product = ProductFactory(sku="PAIN", initial_stock=5)
    place(vendor=product.vendor, items=[(product, 4)])
    with pytest.raises(OutOfStock) as exc:
        place(vendor=product.vendor, items=[(product, 2)])
    assert exc.value.data["items"] == [
        {"product_id": str(product.pk), "sku": "PAIN", "requested": 2, "available": 1}
    ]
    order = place(vendor=product.vendor, items=[(product, 1)])  # the last unit still sells
    assert order.status == S.PENDING
    assert stock_of(product) == (5, 5)


@pytest.mark.parametrize("status", [Vendor.Status.SUSPENDED, Vendor.Status.PENDING])
def test_a_vendor_that_is_not_active_cannot_take_orders(status):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    Vendor.objects.filter(pk=vendor.pk).update(status=status)
    with pytest.raises(VendorNotActive):
        place(vendor=vendor, items=[(product, 1)])
    assert stock_of(product) == (5, 0)
    assert not Order.all_objects.exists()


def test_a_vendor_suspended_after_the_caller_loaded_it_cannot_take_orders():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    vendor_suspend(vendor=Vendor.objects.get(pk=vendor.pk), actor=staff_actor())
    assert vendor.status == Vendor.Status.ACTIVE  # stale copy
    with pytest.raises(VendorNotActive):
        place(vendor=vendor, items=[(product, 1)])


@pytest.mark.parametrize("case", ["inactive", "other_vendor", "deleted", "unknown"])
def test_products_that_cannot_be_ordered_raise_product_unavailable(case):
    import uuid

    vendor = VendorFactory()
    fine = ProductFactory(vendor=vendor, initial_stock=5)
    if case == "inactive":
        bad: Any = ProductFactory(vendor=vendor, is_active=False, initial_stock=5)
    elif case == "other_vendor":
        bad = ProductFactory(initial_stock=5)
    elif case == "deleted":
        bad = ProductFactory(vendor=vendor, initial_stock=5)
        product_soft_delete(product=bad, actor=staff_actor())
    else:
        bad = uuid.uuid4()
    bad_id = getattr(bad, "pk", bad)

    with pytest.raises(ProductUnavailable) as exc:
        place(vendor=vendor, items=[(fine, 1), (bad, 1)])
    assert exc.value.data["product_ids"] == [str(bad_id)]
    assert stock_of(fine) == (5, 0)
    assert not Order.all_objects.exists()


def nothing_placed(product: Product) -> bool:
    return (
        stock_of(product) == (5, 0)
        and not Order.all_objects.exists()
        and not StockMovement.objects.filter(kind="reserve").exists()
    )


def test_a_zone_missing_from_the_database_is_refused_before_anything_is_written():
    product = ProductFactory(initial_stock=5)
    ghost = Zone(name="Nowhere", city="Douala", delivery_fee_xaf=500)  # never saved
    with pytest.raises(ZoneUnavailable) as exc:
        place(vendor=product.vendor, items=[(product, 1)], zone=ghost)
    assert exc.value.errors == {"zone": [exc.value.message]}
    # The caller's transaction (the test's) is still usable, and nothing was written.
    assert nothing_placed(product)


def test_an_order_for_a_soft_deleted_zone_is_refused_and_writes_nothing():
    product = ProductFactory(initial_stock=5)
    zone = ZoneFactory()  # the caller's copy, loaded before staff delete the zone
    Zone.objects.get(pk=zone.pk).delete()
    with pytest.raises(ZoneUnavailable):
        place(vendor=product.vendor, items=[(product, 1)], zone=zone)
    assert nothing_placed(product)


def test_a_zone_of_another_city_than_the_vendors_is_refused_and_writes_nothing():
    product = ProductFactory(initial_stock=5, vendor=VendorFactory(city="douala"))
    yaounde = ZoneFactory(city="yaounde", name="Bastos")
    with translation.override("en"), pytest.raises(InvalidInput) as exc:
        place(vendor=product.vendor, items=[(product, 1)], zone=yaounde)
    assert exc.value.errors == {
        "zone": ["This vendor delivers in Douala only: choose a delivery zone in Douala."]
    }
    assert nothing_placed(product)
    # A zone of its own city is fine.
    assert place(vendor=product.vendor, items=[(product, 1)], zone=ZoneFactory(city="douala")).pk


def test_an_order_for_a_soft_deleted_customer_is_refused_and_writes_nothing():
    product = ProductFactory(initial_stock=5)
    customer = CustomerFactory()
    Customer.objects.get(pk=customer.pk).delete()
    with pytest.raises(CustomerUnavailable) as exc:
        place(vendor=product.vendor, items=[(product, 1)], customer=customer, zone=customer.zone)
    assert exc.value.errors == {"customer": [exc.value.message]}
    assert nothing_placed(product)


def test_an_order_for_a_customer_missing_from_the_database_is_refused():
    product = ProductFactory(initial_stock=5)
    ghost = Customer(name="Nobody", phone="+237690999999")  # never saved
    with pytest.raises(CustomerUnavailable):
        place(vendor=product.vendor, items=[(product, 1)], customer=ghost)
    assert nothing_placed(product)


# --- Order numbers ------------------------------------------------------------------------------


def test_order_numbers_stay_unique_and_sortable_past_9999999(order_number_sequence):
    order_number_sequence(9_999_998)
    product = ProductFactory(initial_stock=10)

    orders = [place(vendor=product.vendor, items=[(product, 1)]) for _ in range(3)]

    expected = ["OK-9999999", "OK-10000000", "OK-10000001"]
    assert [o.number for o in orders] == expected
    assert list(Order.objects.by_number().values_list("number", flat=True)) == expected
    assert list(Order.objects.by_number(descending=True).values_list("number", flat=True)) == expected[::-1]


NUMBERED = [0, 42, 1000, 999_999, 9_999_999, 10_000_000, 12_345_678, 10**12, 2**63 - 1]


def test_okada_order_number_pads_to_seven_digits_and_never_cuts():
    with connection.cursor() as cursor:
        cursor.execute("SELECT n, okada_order_number(n) FROM unnest(%s::bigint[]) AS n", [NUMBERED])
        numbers = dict(cursor.fetchall())
    assert numbers[42] == "OK-0000042"
    assert numbers[9_999_999] == "OK-9999999"
    assert numbers[10_000_000] == "OK-10000000"
    assert numbers[10**12] == "OK-1000000000000"
    assert all(int(number[3:]) == n for n, number in numbers.items())  # never cut
    column_size = Order._meta.get_field("number").max_length
    assert column_size is not None and max(len(number) for number in numbers.values()) <= column_size
    # Sorting by length, then text (OrderQuerySet.by_number) is sorting by the sequence's value.
    assert sorted(numbers.values(), key=lambda number: (len(number), number)) == [
        numbers[n] for n in NUMBERED
    ]


@pytest.mark.parametrize(
    "items",
    [
        [],
        [("p", 0)],
        [("p", -2)],
        [("p", 1.5)],
        [("p", True)],
        [("p", "2")],
        [("p", 1), ("p", 2)],
        [("p", 1), ("p.pk", 1)],
    ],
    ids=["empty", "zero", "negative", "float", "bool", "string", "duplicate", "duplicate-as-id"],
)
def test_bad_item_lists_raise_a_domain_error(items):
    product = ProductFactory(initial_stock=10)
    resolved = [(product if p == "p" else product.pk, q) for p, q in items]
    with pytest.raises(InvalidInput) as exc:
        place(vendor=product.vendor, items=resolved)
    assert exc.value.status == 400
    assert list(exc.value.errors) == ["items"]
    assert stock_of(product) == (10, 0)
    assert not Order.all_objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("payment_method", "bitcoin"), ("channel", "fax"), ("address", "   ")]
)
def test_unknown_payment_method_channel_or_blank_address_is_refused(field, value):
    product = ProductFactory(initial_stock=10)
    with pytest.raises(DomainError) as exc:
        place(vendor=product.vendor, items=[(product, 1)], **{field: value})
    assert exc.value.code == "invalid"
    assert list(exc.value.errors) == [field]
    assert stock_of(product) == (10, 0)


def test_a_vendor_may_place_phone_orders_for_its_own_shop():
    vendor = VendorFactory()
    order = place(vendor=vendor, channel=Channel.PHONE, actor=vendor_actor(vendor))
    assert order.channel == Channel.PHONE
    assert order.vendor == vendor


@pytest.mark.parametrize("channel", [Channel.STOREFRONT, Channel.ADMIN])
def test_a_vendor_may_not_place_other_than_phone_orders(channel):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=3)
    with pytest.raises(NotAllowed):
        place(vendor=vendor, items=[(product, 1)], channel=channel, actor=vendor_actor(vendor))
    assert stock_of(product) == (3, 0)
    assert not Order.all_objects.exists()


def test_a_vendor_may_not_place_orders_for_another_vendor():
    mine, theirs = VendorFactory(), VendorFactory()
    product = ProductFactory(vendor=theirs, initial_stock=3)
    with pytest.raises(NotAllowed):
        place(vendor=theirs, items=[(product, 1)], channel=Channel.PHONE, actor=vendor_actor(mine))
    assert stock_of(product) == (3, 0)
    assert not Order.all_objects.exists()


def test_staff_may_place_admin_orders_for_any_vendor():
    order = place(channel=Channel.ADMIN, actor=staff_actor())
    assert order.channel == Channel.ADMIN


# --- Placing for a phone number (the storefront's POST /orders) ---------------------------------


def place_for_phone(**kwargs: Any) -> PlacedOrder:
    vendor = kwargs.pop("vendor", None) or VendorFactory()
    product = kwargs.pop("product", None) or ProductFactory(vendor=vendor, price_xaf=1000, initial_stock=10)
    zone = kwargs.pop("zone", None) or ZoneFactory(delivery_fee_xaf=500)
    args: dict[str, Any] = {
        "vendor_id": vendor.pk,
        "phone": "677 11 22 33",
        "name": "Awa Mbarga",
        "zone_id": zone.pk,
        "items": [(product.pk, 2)],
        "payment_method": PaymentMethod.MTN_MOMO,
        "channel": Channel.STOREFRONT,
        "address": "Akwa",
        "actor": actor_for(STOREFRONT),
    }
    return order_place_for_phone(**{**args, **kwargs})


def test_placing_for_a_phone_reuses_the_live_customer_and_returns_what_was_stored():
    existing = CustomerFactory(phone="+237677112233", name="Awa M.")
    CustomerFactory(phone="+237677112233", deleted_at=timezone.now())  # a deleted one is not reused

    placed = place_for_phone()

    order = Order.objects.get()
    assert placed.order.pk == order.pk and placed.order.customer_id == existing.pk
    for field in Order._meta.concrete_fields:
        if field.name != "search_vector":
            assert getattr(placed.order, field.attname) == getattr(order, field.attname), field.name
    assert (placed.order.customer.name, placed.order.customer.phone) == ("Awa M.", "+237677112233")
    stored_items = list(OrderItem.objects.filter(order=order).order_by("name", "id").values())
    assert [
        {f.attname: getattr(i, f.attname) for f in OrderItem._meta.concrete_fields} for i in placed.items
    ] == stored_items
    [payment] = placed.payments
    assert {f.attname: getattr(payment, f.attname) for f in Payment._meta.concrete_fields} == (
        Payment.objects.filter(order=order).values().get()
    )
    assert Customer.objects.count() == 1  # no new live one


def test_the_payment_a_placement_returns_is_the_stored_one_whenever_the_clock_ticks():
    # v6 wrote the payment's created_at and updated_at as two readings of the clock, which differ
    # whenever it ticks in between (one placement in twenty on an idle machine, more under load:
    # the test above failed that way now and then); the answer is built from one reading.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000, initial_stock=1000)
    zone = ZoneFactory()
    CustomerFactory(phone="+237677112233")
    for _ in range(150):
        placed = place_for_phone(vendor=vendor, product=product, zone=zone, items=[(product.pk, 1)])
        [payment] = placed.payments
        stored = Payment.objects.filter(pk=payment.pk).values("created_at", "updated_at").get()
        assert (payment.created_at, payment.updated_at) == (stored["created_at"], stored["updated_at"])


def test_placing_for_a_new_phone_creates_the_customer_once_then_reuses_it():
    zone = ZoneFactory()
    first = place_for_phone(zone=zone, payment_method=PaymentMethod.CASH)
    second = place_for_phone(zone=zone, name="Someone else")
    customer = Customer.objects.get()
    assert first.order.customer_id == second.order.customer_id == customer.pk
    assert (customer.name, customer.zone_id, customer.default_address) == ("Awa Mbarga", zone.pk, "Akwa")
    assert first.payments == [] and len(second.payments) == 1


def test_an_order_for_a_phone_keeps_the_name_given_and_the_customer_keeps_its_own():
    # The customer record of a number is shared by every vendor: the order keeps the name this
    # placement gave (stripped, cut as a new customer's), in the row, its history and the
    # object returned; the record's name is neither shown nor changed (orders migration 0029).
    awa = CustomerFactory(phone="+237677112233", name="Awa Mbarga")
    vendor = VendorFactory()
    placed = place_for_phone(vendor=vendor, name="  X Y  ", channel=Channel.PHONE, actor=vendor_actor(vendor))
    order = Order.objects.get()
    assert placed.order.customer_id == awa.pk
    assert placed.order.customer_name == order.customer_name == order.history.get().customer_name == "X Y"
    assert placed.order.shown_customer_name == order.shown_customer_name == "X Y"
    assert Customer.objects.get().name == "Awa Mbarga"
    long = place_for_phone(name="N" * 250)
    assert long.order.customer_name == Order.objects.get(pk=long.order.pk).customer_name == "N" * 200


def test_a_service_placement_keeps_the_customers_name_in_the_order_and_its_history():
    customer = CustomerFactory(name="Awa Mbarga")
    order = place(customer=customer, channel=Channel.ADMIN, actor=staff_actor())
    stored = Order.objects.get(pk=order.pk)
    assert order.customer_name == stored.customer_name == stored.history.get().customer_name == "Awa Mbarga"


def test_an_order_placed_before_names_were_kept_shows_its_customers_name():
    # Orders placed before migration 0029 hold '' (no backfill): they show the customer's name,
    # as they did before.
    order = place(customer=CustomerFactory(name="Awa Mbarga"))
    Order.objects.filter(pk=order.pk).update(customer_name="")
    assert Order.objects.select_related("customer").get(pk=order.pk).shown_customer_name == "Awa Mbarga"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"phone": "12"}, "phone"),
        ({"name": "  "}, "name"),
        ({"vendor_id": NO_ROW}, "vendor"),
        ({"zone_id": NO_ROW}, "zone"),
        ({"address": " "}, "address"),
        ({"items": []}, "items"),
    ],
)
def test_placing_for_a_phone_refuses_bad_input_and_creates_no_customer(change, field):
    product = ProductFactory(initial_stock=5)
    with pytest.raises(InvalidInput) as exc:
        place_for_phone(vendor=product.vendor, product=product, **change)
    assert list(exc.value.errors) == [field]
    assert not Customer.objects.exists()
    assert not Order.objects.exists()
    assert stock_of(product) == (5, 0)


def test_staff_placing_for_a_phone_need_the_payment_permission_for_mobile_money():
    clerk = Actor(role=STAFF, user=UserFactory(is_staff=True))  # no group, no permission
    CustomerFactory(phone="+237677112233")
    with pytest.raises(NotAllowed):
        place_for_phone(channel=Channel.ADMIN, actor=clerk)
    assert not Order.objects.exists()
    placed = place_for_phone(channel=Channel.ADMIN, actor=clerk, payment_method=PaymentMethod.CASH)
    assert placed.payments == []


def test_placing_for_a_phone_keeps_order_places_refusals():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=1)
    CustomerFactory(phone="+237677112233")
    with pytest.raises(OutOfStock):
        place_for_phone(vendor=vendor, product=product)
    vendor_suspend(vendor=vendor, actor=staff_actor())
    with pytest.raises(VendorNotActive):
        place_for_phone(vendor=vendor, product=product)
    other = ProductFactory(initial_stock=5)
    with pytest.raises(ProductUnavailable):
        place_for_phone(product=other)
    with pytest.raises(NotAllowed):  # a vendor places phone orders for its own shop only
        place_for_phone(
            product=other,
            vendor=other.vendor,
            channel=Channel.PHONE,
            actor=vendor_actor(vendor),
        )
    assert not Order.objects.exists()


# --- Transitions --------------------------------------------------------------------------------


def test_the_transition_table_is_the_documented_lifecycle():
    assert {key: set(roles) for key, roles in TRANSITIONS.items()} == LIFECYCLE


@pytest.mark.parametrize(("frm", "to", "role"), ALLOWED)
def test_allowed_transition_succeeds_and_writes_an_event(frm, to, role):
    # Only unpaid mobile-money orders may expire.
    order = order_in_status(frm, **({"payment_method": PaymentMethod.MTN_MOMO} if to == S.EXPIRED else {}))
    user: Any = None
    if role == VENDOR:
        user = UserFactory()
    elif role == STAFF:
        user = UserFactory(is_staff=True, is_superuser=True)
    actor = actor_for(role, order, user=user)
    events_before = OrderEvent.objects.filter(order_id=order.pk).count()

    returned = order_transition(order=order, to=to, actor=actor, note="by phone")

    assert returned.status == to
    assert Order.objects.get(pk=order.pk).status == to
    assert OrderEvent.objects.filter(order_id=order.pk).count() == events_before + 1
    event = OrderEvent.objects.filter(order_id=order.pk).latest("created_at")
    assert (event.kind, event.from_status, event.to_status) == ("status", frm, to)
    assert event.actor == str(actor)
    assert event.actor_user_id == (user.pk if user else None)
    assert event.data == {"note": "by phone"}
    history = order.history.latest()
    assert (history.status, history.history_user, history.history_change_reason) == (
        to,
        user,
        f"order -> {to}" if user else f"order -> {to} [{actor}]",
    )
    assert stock_audit() == []


@pytest.mark.parametrize(("frm", "to", "role"), REFUSED)
def test_refused_transition_raises_and_changes_nothing(frm, to, role):
    order = order_in_status(frm)
    actor = actor_for(role, order)
    before = snapshot(order)

    expected = TransitionNotAllowed if (frm, to) in LIFECYCLE else InvalidTransition
    with pytest.raises(expected) as exc:
        order_transition(order=order, to=to, actor=actor)

    assert str(exc.value)
    assert snapshot(order) == before


def test_invalid_transition_lists_what_the_actor_may_do_instead():
    order = order_in_status(S.PENDING)
    with pytest.raises(InvalidTransition) as exc:
        order_transition(order=order, to=S.DELIVERED, actor=actor_for(STOREFRONT))
    assert exc.value.data["allowed"] == [S.CANCELLED]
    with pytest.raises(InvalidTransition) as exc:
        order_transition(order=order, to=S.READY, actor=actor_for(STAFF))
    assert sorted(exc.value.data["allowed"]) == sorted([S.ACCEPTED, S.CANCELLED])


@pytest.mark.parametrize("method", [PaymentMethod.MTN_MOMO, PaymentMethod.ORANGE_MONEY])
@pytest.mark.parametrize("role", [VENDOR, STAFF])
def test_an_unpaid_mobile_money_order_cannot_leave_pending_but_for_cancel_or_expiry(method, role):
    order = place(payment_method=method)
    actor = actor_for(role, order)
    before = snapshot(order)

    with pytest.raises(AwaitingPayment) as exc:
        order_transition(order=order, to=S.ACCEPTED, actor=actor)

    assert (exc.value.code, exc.value.status) == ("awaiting_payment", 409)
    assert snapshot(order) == before
    assert allowed_targets(order=order, actor=actor) == [S.CANCELLED]
    assert order_cancel(order=order, actor=actor).status == S.CANCELLED


def test_a_paid_mobile_money_order_and_a_cash_order_may_be_accepted():
    paid = momo_order()
    record(paid)
    callback(paid, "succeeded")
    cash = place(payment_method=PaymentMethod.CASH)
    for order in (Order.objects.get(pk=paid.pk), cash):
        actor = vendor_actor(order.vendor)
        assert allowed_targets(order=order, actor=actor) == [S.ACCEPTED, S.CANCELLED]
        assert order_transition(order=order, to=S.ACCEPTED, actor=actor).status == S.ACCEPTED


@pytest.mark.parametrize("to", [S.ACCEPTED, S.CANCELLED])
def test_a_vendor_cannot_transition_another_vendors_order(to):
    order = order_in_status(S.PENDING)
    stranger = vendor_actor(VendorFactory())
    before = snapshot(order)
    with pytest.raises(TransitionNotAllowed):
        order_transition(order=order, to=to, actor=stranger)
    assert snapshot(order) == before


def test_a_vendor_actor_with_no_vendor_cannot_transition_orders():
    order = order_in_status(S.PENDING)
    before = snapshot(order)
    with pytest.raises(TransitionNotAllowed):
        order_transition(order=order, to=S.ACCEPTED, actor=Actor(role=VENDOR))
    assert snapshot(order) == before


@pytest.mark.parametrize("frm", [S.PENDING, S.ACCEPTED, S.PREPARING, S.READY])
def test_cancel_releases_the_reservation(frm):
    vendor = VendorFactory()
    a = ProductFactory(vendor=vendor, initial_stock=10)
    b = ProductFactory(vendor=vendor, initial_stock=4)
    order = order_in_status(frm, vendor=vendor, items=[(a, 3), (b, 4)])
    assert (stock_of(a), stock_of(b)) == ((10, 3), (4, 4))

    order_cancel(order=order, actor=staff_actor(), note="client unreachable")

    assert (stock_of(a), stock_of(b)) == ((10, 0), (4, 0))
    releases = StockMovement.objects.filter(kind="release", reference=order.number)
    assert sorted(releases.values_list("product_id", "delta")) == sorted([(a.pk, -3), (b.pk, -4)])
    assert stock_audit() == []


def test_expire_releases_the_reservation():
    product = ProductFactory(initial_stock=6)
    order = place(vendor=product.vendor, items=[(product, 5)], payment_method=PaymentMethod.ORANGE_MONEY)
    order_transition(order=order, to=S.EXPIRED, actor=Actor.system("test"))
    assert stock_of(product) == (6, 0)
    assert StockMovement.objects.filter(kind="release", reference=order.number, delta=-5).exists()
    assert stock_audit() == []


def test_out_for_delivery_turns_the_reservation_into_a_sale():
    product = ProductFactory(initial_stock=10)
    order = order_in_status(S.READY, vendor=product.vendor, items=[(product, 3)])
    assert stock_of(product) == (10, 3)

    order_transition(order=order, to=S.OUT_FOR_DELIVERY, actor=vendor_actor(product.vendor))

    assert stock_of(product) == (7, 0)  # on_hand and reserved both drop
    sale = StockMovement.objects.get(kind="sale", reference=order.number)
    assert (sale.product_id, sale.delta) == (product.pk, -3)
    assert stock_audit() == []


def test_delivering_and_refunding_do_not_move_stock():
    product = ProductFactory(initial_stock=10)
    order = order_in_status(S.OUT_FOR_DELIVERY, vendor=product.vendor, items=[(product, 2)])
    ledger = StockMovement.objects.count()
    order = order_transition(order=order, to=S.DELIVERED, actor=staff_actor())
    order_transition(order=order, to=S.REFUNDED, actor=staff_actor())
    assert stock_of(product) == (8, 0)
    assert StockMovement.objects.count() == ledger


def test_refunded_sets_the_payment_status_to_refunded():
    order = place(payment_method=PaymentMethod.MTN_MOMO)
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MP-REFUND",
        amount_xaf=order.total_xaf,
        status=Payment.Status.SUCCEEDED,
        actor=staff_actor(),
    )
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    order = advance(order, S.DELIVERED)

    order_transition(order=order, to=S.REFUNDED, actor=staff_actor())

    order.refresh_from_db()
    assert (order.status, order.payment_status) == (S.REFUNDED, PaymentStatus.REFUNDED)
    assert order.history.latest().payment_status == PaymentStatus.REFUNDED


def test_a_cancelled_order_cannot_be_cancelled_again_and_releases_only_once():
    product = ProductFactory(initial_stock=5)
    order = place(vendor=product.vendor, items=[(product, 2)])
    order_cancel(order=order, actor=staff_actor())
    with pytest.raises(InvalidTransition):
        order_cancel(order=order, actor=staff_actor())
    assert stock_of(product) == (5, 0)
    assert StockMovement.objects.filter(kind="release", reference=order.number).count() == 1


def test_transitions_use_the_current_row_not_the_callers_stale_copy():
    order = place()
    stale = Order.objects.get(pk=order.pk)
    order_cancel(order=order, actor=staff_actor())
    with pytest.raises(InvalidTransition):
        order_transition(order=stale, to=S.ACCEPTED, actor=staff_actor())
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED


def test_every_order_change_writes_history_with_the_actors_user_and_reason():
    placer, worker = UserFactory(), UserFactory(is_staff=True, is_superuser=True)
    vendor = VendorFactory()
    order = place(vendor=vendor, channel=Channel.PHONE, actor=vendor_actor(vendor, user=placer))
    order = order_transition(order=order, to=S.ACCEPTED, actor=Actor(role=STAFF, user=worker))
    order_cancel(order=order, actor=Actor(role=STAFF, user=worker), note="duplicate")

    rows = list(order.history.order_by("history_date", "history_id"))
    assert [(r.history_type, r.status) for r in rows] == [
        ("+", "pending"),
        ("~", "accepted"),
        ("~", "cancelled"),
    ]
    assert [r.history_user for r in rows] == [placer, worker, worker]
    assert [r.history_change_reason for r in rows] == [
        "order placed",
        "order -> accepted",
        "order -> cancelled",
    ]


# --- Payments -----------------------------------------------------------------------------------


def momo_order(**kwargs: Any) -> Order:
    kwargs.setdefault("payment_method", PaymentMethod.MTN_MOMO)
    return place(**kwargs)


def record(order: Order, reference: str = "MTN-TX-1", amount: int | None = None) -> Payment:
    return payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference=reference,
        amount_xaf=amount or order.total_xaf,
        actor=Actor(role=STOREFRONT, label="web"),
    )


def callback(order: Order, status: str = "succeeded", reference: str = "MTN-TX-1", **payload: Any) -> Payment:
    return payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference=reference,
        status=status,
        amount_xaf=order.total_xaf,
        payload={"status": status, **payload},
    ).payment


def cash(order: Order, key: str, amount: int, actor: Actor | None = None) -> Payment:
    """Cash received, entered by staff under an idempotency key."""
    return payment_record(
        order=order,
        provider=PaymentMethod.CASH,
        idempotency_key=key,
        amount_xaf=amount,
        status=Payment.Status.SUCCEEDED,
        actor=actor or staff_actor(),
    )


def refund_flags(order: Order) -> list[dict[str, Any]]:
    return [e.data for e in OrderEvent.objects.filter(order_id=order.pk, kind=OrderEvent.Kind.NOTE)]


def payment_events(order: Order, status: str | None = None) -> list[OrderEvent]:
    events = OrderEvent.objects.filter(order_id=order.pk, kind="payment")
    if status:
        events = events.filter(data__status=status)
    return list(events)


def test_payment_record_creates_a_pending_payment_and_an_event_but_not_paid():
    order = momo_order()
    payment = record(order)
    assert (payment.status, payment.paid_at, payment.amount_xaf) == ("pending", None, order.total_xaf)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID
    [event] = payment_events(order)
    assert event.data["reference"] == "MTN-TX-1"
    assert event.data["status"] == "pending"


def test_a_successful_callback_marks_the_order_paid():
    order = momo_order()
    record(order)

    payment = callback(order, "succeeded", transaction_id="123")

    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.paid_at is not None
    assert payment.callbacks == [{"status": "succeeded", "transaction_id": "123"}]
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.PAID
    assert len(payment_events(order, "succeeded")) == 1
    history = order.history.latest()
    assert (history.payment_status, history.history_change_reason) == (
        "paid",
        "payment callback [system:callback:mtn_momo]",
    )


def test_the_same_callback_twice_changes_nothing_the_second_time():
    order = momo_order()
    record(order)
    first = callback(order, "succeeded")
    first_paid_at = Payment.objects.get(pk=first.pk).paid_at
    order_history = order.history.count()

    second = callback(order, "succeeded")

    assert second.pk == first.pk
    stored = Payment.objects.get(pk=first.pk)
    assert (stored.status, stored.paid_at, len(stored.callbacks)) == ("succeeded", first_paid_at, 1)
    assert second.paid_at == first_paid_at
    assert len(payment_events(order, "succeeded")) == 1
    assert order.history.count() == order_history
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID


def test_a_failure_callback_after_success_does_not_unpay_the_order():
    order = momo_order()
    record(order)
    callback(order, "succeeded")
    late = callback(order, "failed")
    assert late.status == Payment.Status.SUCCEEDED
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    # The late failure is on the timeline only as a callback that was not applied.
    assert [e.data.get("not_applied") for e in payment_events(order, "failed")] == [True]


def test_a_failed_callback_leaves_the_order_unpaid():
    order = momo_order()
    record(order)
    payment = callback(order, "failed", reason="insufficient balance")
    assert (payment.status, payment.paid_at) == (Payment.Status.FAILED, None)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID
    assert len(payment_events(order, "failed")) == 1


def test_a_callback_for_an_unknown_reference_raises_unknown_payment():
    order = momo_order()
    record(order, reference="MTN-TX-1")
    with pytest.raises(UnknownPayment):
        callback(order, "succeeded", reference="MTN-TX-404")
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_a_callback_with_an_unknown_status_is_refused():
    order = momo_order()
    record(order)
    with pytest.raises(DomainError):
        callback(order, "maybe")
    assert Payment.objects.get().status == Payment.Status.PENDING


def test_a_partial_payment_does_not_mark_the_order_paid():
    order = momo_order()
    cash(order, "cash-1", order.total_xaf - 100)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID
    cash(order, "cash-2", 100)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    assert not Payment.objects.needing_refund().exists()


def test_recorded_cash_payment_marks_the_order_paid_with_history_of_the_user():
    user = UserFactory(is_staff=True, is_superuser=True)
    order = place(payment_method=PaymentMethod.CASH)
    payment = cash(order, "cash-1", order.total_xaf, actor=Actor(role=STAFF, user=user))
    assert payment.paid_at is not None
    assert (payment.amount_xaf, payment.received_xaf, payment.needs_refund) == (
        order.total_xaf,
        order.total_xaf,
        False,
    )
    order.refresh_from_db()
    assert order.payment_status == PaymentStatus.PAID
    latest = order.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (user, "payment recorded")


def test_a_repeated_request_returns_the_first_payment_whatever_became_of_it():
    order = momo_order()
    first = record(order, reference="MTN-TX-1")
    assert record(order, reference="MTN-TX-1").pk == first.pk
    callback(order, "succeeded", reference="MTN-TX-1")

    again = record(order, reference="MTN-TX-1")

    assert (again.pk, again.status) == (first.pk, Payment.Status.SUCCEEDED)
    assert Payment.objects.count() == 1
    assert len(payment_events(order, "pending")) == 1


def test_a_mobile_money_request_named_by_its_key_gets_a_reference_for_its_callback():
    order = momo_order()
    request = {
        "order": order,
        "provider": PaymentMethod.MTN_MOMO,
        "idempotency_key": f"order-placed:{order.pk}",
        "amount_xaf": order.total_xaf,
        "actor": Actor(role=STOREFRONT, label="web"),
    }
    payment = payment_record(**request)
    assert payment.provider_reference.startswith("mtn_momo-")
    assert payment_record(**request).pk == payment.pk  # a repeat: no second request

    callback(order, "succeeded", reference=payment.provider_reference)

    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    assert Payment.objects.count() == 1


def test_payment_record_refuses_a_reference_already_recorded_for_another_payment():
    order, other = momo_order(), momo_order()
    record(order, reference="MTN-TX-1")
    with pytest.raises(AlreadyRecorded):
        record(other, reference="MTN-TX-1")
    with pytest.raises(AlreadyRecorded):
        record(order, reference="MTN-TX-1", amount=order.total_xaf + 1)
    assert Payment.objects.count() == 1
    assert len(payment_events(order)) == 1
    assert payment_events(other) == []


def test_payment_record_without_a_key_or_a_reference_is_refused():
    # A retried entry could not be told from a new one: it would be counted twice.
    order = momo_order()
    with pytest.raises(InvalidInput) as exc:
        payment_record(
            order=order,
            provider=PaymentMethod.CASH,
            amount_xaf=order.total_xaf,
            status=Payment.Status.SUCCEEDED,
            actor=staff_actor(),
        )
    assert "idempotency_key" in exc.value.errors
    assert not Payment.objects.exists()
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID


def test_a_retried_cash_entry_with_the_same_key_is_recorded_once():
    order = place(payment_method=PaymentMethod.CASH)
    first = cash(order, "retry-me", order.total_xaf)
    history = order.history.count()

    again = cash(order, "retry-me", order.total_xaf, actor=staff_actor())

    assert again.pk == first.pk
    assert Payment.objects.count() == 1
    assert len(payment_events(order)) == 1
    assert order.history.count() == history
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    assert not Payment.objects.needing_refund().exists()


@pytest.mark.parametrize("change", ["amount", "order", "provider", "received_where_requested"])
def test_a_key_reused_for_a_different_payment_is_refused_with_idempotency_mismatch(change):
    order, other_order = momo_order(), momo_order()
    first = {
        "order": order,
        "provider": PaymentMethod.MTN_MOMO,
        "provider_reference": "MTN-TX-1",
        "amount_xaf": order.total_xaf,
        "status": Payment.Status.PENDING,
    }
    payment_record(**first, idempotency_key="key-1", actor=staff_actor())
    repeat = (
        first
        | {
            "amount": {"amount_xaf": order.total_xaf + 500},
            "order": {"order": other_order},
            "provider": {"provider": PaymentMethod.ORANGE_MONEY},
            "received_where_requested": {"status": Payment.Status.SUCCEEDED},
        }[change]
    )
    before = snapshot(order), snapshot(other_order)

    with pytest.raises(IdempotencyMismatch) as exc:
        payment_record(**repeat, idempotency_key="key-1", actor=staff_actor())

    assert (exc.value.code, exc.value.status) == ("idempotency_mismatch", 422)
    assert Payment.objects.count() == 1
    assert (snapshot(order), snapshot(other_order)) == before


def test_a_second_successful_mobile_money_payment_is_kept_and_flagged_for_refund():
    order = momo_order()
    first, second = record(order, "MTN-TX-1"), record(order, "MTN-TX-2")
    callback(order, "succeeded", reference="MTN-TX-1")
    assert refund_flags(order) == []

    callback(order, "succeeded", reference="MTN-TX-2")

    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    assert list(Payment.objects.needing_refund()) == [second]
    assert not Payment.objects.get(pk=first.pk).needs_refund
    [flag] = refund_flags(order)
    assert (flag["needs_refund"], flag["payment_id"], flag["reasons"]) == (True, str(second.pk), ["overpaid"])
    assert (flag["order_received_xaf"], flag["order_total_xaf"]) == (2 * order.total_xaf, order.total_xaf)


def test_a_callback_for_more_than_the_total_is_kept_and_flagged_beside_the_amount_requested():
    order = momo_order()
    requested = record(order)

    payment = payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MTN-TX-1",
        status="succeeded",
        amount_xaf=order.total_xaf + 500,
        payload={},
    ).payment

    stored = Payment.objects.get(pk=requested.pk)
    assert (stored.amount_xaf, stored.received_xaf, stored.needs_refund) == (
        order.total_xaf,
        order.total_xaf + 500,
        True,
    )
    assert payment.received_xaf == order.total_xaf + 500
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.PAID
    [flag] = refund_flags(order)
    assert flag["reasons"] == ["overpaid", "amount_differs"]
    assert (flag["requested_xaf"], flag["received_xaf"]) == (order.total_xaf, order.total_xaf + 500)


def test_a_callback_for_less_than_requested_is_recorded_as_received_and_flagged():
    order = momo_order()
    record(order)

    payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MTN-TX-1",
        status="succeeded",
        amount_xaf=order.total_xaf - 100,
        payload={},
    )

    stored = Payment.objects.get()
    assert (stored.status, stored.amount_xaf, stored.received_xaf) == (
        Payment.Status.SUCCEEDED,
        order.total_xaf,
        order.total_xaf - 100,
    )
    assert list(Payment.objects.needing_refund()) == [stored]
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID
    assert [flag["reasons"] for flag in refund_flags(order)] == [["amount_differs"]]


def unchanged(order: Order) -> dict[str, Any]:
    """`snapshot` but its event count: a callback not applied adds an event, and changes nothing."""
    return {key: value for key, value in snapshot(order).items() if key != "events"}


def deliver(order: Order, amount: int, transaction_id: str, status: str = "succeeded") -> tuple[Payment, str]:
    """A provider callback as the API passes it on: (the payment, the outcome)."""
    result = payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MTN-TX-1",
        status=status,
        amount_xaf=amount,
        payload={"status": status, "amount_xaf": amount, "transaction_id": transaction_id},
    )
    return result.payment, result.outcome


def test_a_callback_says_it_applied_a_repeat_or_did_not_apply_what_differs(caplog):
    order = momo_order()
    record(order)
    # The provider reports success for less than was asked: received, flagged, the order unpaid.
    payment, outcome = deliver(order, 100, "MTN-TX-0")
    assert (outcome, payment.status, payment.received_xaf, payment.needs_refund) == (
        "applied",
        "succeeded",
        100,
        True,
    )
    before = (unchanged(order), Payment.objects.filter(pk=payment.pk).values().get(), order.events.count())
    caplog.clear()

    # The same callback again: a repeat, nothing changes, nothing to warn about.
    assert deliver(order, 100, "MTN-TX-0")[1] == "repeat"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Another amount, another transaction id or another status for the decided payment: not
    # applied, the payment unchanged; each is a warning naming the payment, and an event on the
    # order's timeline saying what the callback said, once however often it comes.
    said = (
        (order.total_xaf, "MTN-TX-0", "succeeded"),
        (100, "MTN-TX-9", "succeeded"),
        (100, "MTN-TX-0", "failed"),
    )
    for amount, transaction_id, status in said:
        caplog.clear()
        late, outcome = deliver(order, amount, transaction_id, status)
        assert (outcome, late.status, late.received_xaf) == ("not_applied", "succeeded", 100)
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert str(payment.pk) in warning.getMessage() and order.number in warning.getMessage()
        # ... and a replay of it is just as safe.
        assert deliver(order, amount, transaction_id, status)[1] == "not_applied"

    after = (unchanged(order), Payment.objects.filter(pk=payment.pk).values().get())
    assert after == before[:2]
    noted = order.events.filter(kind="payment", data__not_applied=True).order_by("created_at", "id")
    assert [(e.data["status"], e.data["amount_xaf"], e.data["transaction_id"]) for e in noted] == [
        (status, amount if status == "succeeded" else 0, transaction_id)
        for amount, transaction_id, status in said
    ]
    assert {(e.data["payment_status"], e.data["received_xaf"], e.actor) for e in noted} == {
        ("succeeded", 100, "system:callback:mtn_momo")
    }
    assert order.events.count() == before[2] + len(said)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID


def test_a_repeated_failure_is_a_repeat_and_a_later_success_is_not_applied():
    order = momo_order()
    record(order)
    assert deliver(order, order.total_xaf, "", status="failed")[1] == "applied"
    assert deliver(order, order.total_xaf, "", status="failed")[1] == "repeat"
    payment, outcome = deliver(order, order.total_xaf, "MTN-TX-5")
    assert (outcome, payment.status, payment.received_xaf) == ("not_applied", "failed", None)
    assert Order.objects.get(pk=order.pk).payment_status == PaymentStatus.UNPAID


@pytest.mark.parametrize("role", [VENDOR, STOREFRONT])
@pytest.mark.parametrize("provider", [PaymentMethod.CASH, PaymentMethod.MTN_MOMO])
def test_a_vendor_or_the_storefront_may_not_record_money_received(role, provider):
    order = momo_order()
    before = snapshot(order)
    with pytest.raises(NotAllowed):
        payment_record(
            order=order,
            provider=provider,
            provider_reference="TX-1",
            amount_xaf=order.total_xaf,
            status=Payment.Status.SUCCEEDED,
            actor=actor_for(role, order),
        )
    assert not Payment.objects.exists()
    assert snapshot(order) == before


@pytest.mark.parametrize("role", [VENDOR, STOREFRONT])
def test_a_vendor_or_the_storefront_may_request_a_mobile_money_payment_only(role):
    order = momo_order()
    actor = actor_for(role, order)
    payment = payment_record(
        order=order, provider=PaymentMethod.MTN_MOMO, provider_reference="TX-1", amount_xaf=100, actor=actor
    )
    assert (payment.status, payment.received_xaf) == (Payment.Status.PENDING, None)
    with pytest.raises(InvalidInput):  # cash is not requested: it is recorded when received
        payment_record(
            order=order, provider=PaymentMethod.CASH, idempotency_key="k", amount_xaf=100, actor=actor
        )
    assert Payment.objects.count() == 1


def test_a_vendor_may_not_request_a_payment_for_another_vendors_order():
    order = momo_order()
    with pytest.raises(NotAllowed):
        payment_record(
            order=order,
            provider=PaymentMethod.MTN_MOMO,
            provider_reference="TX-1",
            amount_xaf=order.total_xaf,
            actor=vendor_actor(VendorFactory()),
        )
    assert not Payment.objects.exists()


def test_payment_record_for_a_deleted_order_is_not_found():
    order = order_in_status(S.CANCELLED)
    Order.objects.get(pk=order.pk).delete()
    with pytest.raises(NotFound):
        cash(order, "cash-1", order.total_xaf)
    assert not Payment.objects.exists()


@pytest.mark.parametrize(("provider", "amount"), [("paypal", 1000), (PaymentMethod.MTN_MOMO, 0)])
def test_payment_record_refuses_unknown_providers_and_non_positive_amounts(provider, amount):
    order = momo_order()
    with pytest.raises(DomainError):
        payment_record(order=order, provider=provider, amount_xaf=amount, actor=staff_actor())
    assert not Payment.objects.exists()


# --- Expiry -------------------------------------------------------------------------------------


def test_order_expire_unpaid_expires_only_pending_unpaid_mobile_money_orders_past_the_deadline(settings):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)

    def order(method: str, deadline_minutes: int = 30) -> Order:
        settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES = deadline_minutes
        return place(vendor=vendor, items=[(product, 2)], payment_method=method)

    late_momo = order(PaymentMethod.MTN_MOMO)
    late_orange = order(PaymentMethod.ORANGE_MONEY)
    cash = order(PaymentMethod.CASH)
    paid = order(PaymentMethod.MTN_MOMO)
    record(paid, reference="PAID-1")
    callback(paid, "succeeded", reference="PAID-1")
    # The vendor tries to accept it unpaid: refused, so the expiry job still sees it.
    tried = order(PaymentMethod.MTN_MOMO)
    with pytest.raises(AwaitingPayment):
        order_transition(order=tried, to=S.ACCEPTED, actor=vendor_actor(vendor))
    not_yet = order(PaymentMethod.MTN_MOMO, deadline_minutes=120)
    assert stock_of(product) == (100, 12)

    in_an_hour = timezone.now() + timedelta(minutes=60)
    assert order_expire_unpaid(now=in_an_hour) == 3

    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses[late_momo.pk] == statuses[late_orange.pk] == statuses[tried.pk] == S.EXPIRED
    assert statuses[cash.pk] == statuses[paid.pk] == statuses[not_yet.pk] == S.PENDING
    assert stock_of(product) == (100, 6)
    for expired in (late_momo, late_orange, tried):
        event = OrderEvent.objects.get(order_id=expired.pk, kind="status")
        assert (event.from_status, event.to_status) == (S.PENDING, S.EXPIRED)
        assert event.actor == "system:expire_unpaid_orders"
        assert StockMovement.objects.filter(kind="release", reference=expired.number, delta=-2).exists()
        history = expired.history.latest()
        assert (history.status, history.history_change_reason) == (
            S.EXPIRED,
            "order -> expired [system:expire_unpaid_orders]",
        )
    assert stock_audit() == []

    # A second run has nothing left to do.
    assert order_expire_unpaid(now=in_an_hour) == 0


def test_order_expire_unpaid_does_nothing_before_the_deadline():
    order = momo_order()
    assert order.expires_at is not None
    assert order_expire_unpaid(now=order.expires_at - timedelta(seconds=1)) == 0
    assert order_expire_unpaid() == 0
    assert Order.objects.get(pk=order.pk).status == S.PENDING


def test_order_expire_unpaid_respects_its_limit(settings):
    settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES = -1
    orders = [momo_order() for _ in range(3)]
    assert order_expire_unpaid(limit=2) == 2
    assert order_expire_unpaid(limit=2) == 1
    assert all(Order.objects.get(pk=o.pk).status == S.EXPIRED for o in orders)


# --- Review fixes: bounds, expiry guard, late payments --------------------------------------------


def test_order_place_accepts_product_ids_as_strings_and_refuses_bad_ids_and_huge_quantities():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    order = place(vendor=vendor, items=[(str(product.pk), 1)])
    assert order.items.get().product_id == product.pk

    with pytest.raises(DomainError, match="UUID"):
        place(vendor=vendor, items=[("not-a-uuid", 1)])
    with pytest.raises(DomainError, match="from 1 to"):
        place(vendor=vendor, items=[(product, 10**12)])
    assert stock_of(product) == (5, 1)


def test_a_cash_or_paid_order_cannot_be_expired_even_by_the_system():
    cash = order_in_status(S.PENDING, payment_method=PaymentMethod.CASH)
    with pytest.raises(InvalidTransition, match="mobile-money"):
        order_transition(order=cash, to=S.EXPIRED, actor=Actor.system("test"))
    assert Order.objects.get(pk=cash.pk).status == S.PENDING


def test_money_arriving_after_expiry_is_recorded_and_flagged_for_refund():
    order = order_in_status(S.PENDING, payment_method=PaymentMethod.MTN_MOMO)
    payment = payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        amount_xaf=order.total_xaf,
        actor=staff_actor(),
        provider_reference="MP-LATE",
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=2))  # asked for
    order_transition(order=order, to=S.EXPIRED, actor=Actor.system("test"))
    before = timezone.now()

    payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="MP-LATE",
        status=Payment.Status.SUCCEEDED,
        amount_xaf=order.total_xaf,
        payload={"late": True},
    )

    order.refresh_from_db()
    payment.refresh_from_db()
    assert (order.status, order.payment_status, payment.status) == (S.EXPIRED, "paid", "succeeded")
    assert list(Payment.objects.needing_refund()) == [payment]
    flag = OrderEvent.objects.get(order_id=order.pk, kind=OrderEvent.Kind.NOTE)
    assert (flag.data["needs_refund"], flag.data["reasons"]) == (True, ["order_expired"])
    # Owed since the money arrived and was flagged, not since the request two days before.
    assert payment.refund_flagged_at is not None and before <= payment.refund_flagged_at <= flag.created_at


def test_money_received_before_a_cancel_is_owed_back_once_and_a_refund_already_owed_is_not_flagged_again():
    order = OrderFactory(payment_method=PaymentMethod.CASH)
    paid = payment_record(
        order=order,
        provider=PaymentMethod.CASH,
        idempotency_key="till-1",
        amount_xaf=order.total_xaf,
        status=Payment.Status.SUCCEEDED,
        actor=staff_actor(),
    )
    more = payment_record(  # a second payment: already owed back (overpaid)
        order=order,
        provider=PaymentMethod.CASH,
        idempotency_key="till-2",
        amount_xaf=100,
        status=Payment.Status.SUCCEEDED,
        actor=staff_actor(),
    )
    assert not Payment.objects.get(pk=paid.pk).needs_refund and Payment.objects.get(pk=more.pk).needs_refund

    order_cancel(order=order, actor=staff_actor())

    assert set(Payment.objects.needing_refund()) == {paid, more}
    flags = OrderEvent.objects.filter(order_id=order.pk, kind=OrderEvent.Kind.NOTE, data__needs_refund=True)
    assert sorted((f.data["payment_id"], f.data["reasons"]) for f in flags) == sorted(
        [(str(more.pk), ["overpaid"]), (str(paid.pk), ["order_cancelled"])]
    )
    assert Order.objects.get(pk=order.pk).payment_status == "paid"


def test_a_callback_without_a_positive_amount_is_refused_and_changes_nothing():
    order = order_in_status(S.PENDING, payment_method=PaymentMethod.MTN_MOMO)
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        amount_xaf=order.total_xaf,
        actor=staff_actor(),
        provider_reference="MP-ZERO",
    )
    with pytest.raises(DomainError, match="positive"):
        payment_apply_callback(
            provider=PaymentMethod.MTN_MOMO,
            provider_reference="MP-ZERO",
            status=Payment.Status.SUCCEEDED,
            amount_xaf=0,
            payload={},
        )
    assert Payment.objects.get(provider_reference="MP-ZERO").status == Payment.Status.PENDING


def test_refunding_an_unpaid_delivered_order_leaves_it_unpaid():
    order = order_in_status(S.DELIVERED, payment_method=PaymentMethod.CASH)
    order_transition(order=order, to=S.REFUNDED, actor=staff_actor())
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (S.REFUNDED, PaymentStatus.UNPAID)


def test_expiry_job_goes_on_when_one_order_cannot_be_expired():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    broken = place(vendor=vendor, items=[(product, 2)], payment_method=PaymentMethod.MTN_MOMO)
    other_product = ProductFactory(vendor=vendor, initial_stock=10)
    fine = place(vendor=vendor, items=[(other_product, 1)], payment_method=PaymentMethod.MTN_MOMO)
    Order.objects.filter(pk=broken.pk).update(expires_at=timezone.now() - timedelta(hours=2))
    Order.objects.filter(pk=fine.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    # Corrupt the stock so releasing the broken order's reservation fails.
    Stock.objects.filter(product=product).update(reserved=0)

    assert order_expire_unpaid() == 1
    assert Order.objects.get(pk=broken.pk).status == S.PENDING
    assert Order.objects.get(pk=fine.pk).status == S.EXPIRED


def test_placing_writes_a_history_row_identical_to_the_order_row(django_assert_num_queries):
    # okada_order_place() writes the history row in SQL: a column added to Order without a new
    # version of that function shows up here.
    order = place(payment_method=PaymentMethod.MTN_MOMO)
    row = Order.objects.get(pk=order.pk)
    history = row.history.get()
    assert history.history_type == "+"
    for field in Order._meta.concrete_fields:
        if field.name == "search_vector":
            continue
        assert getattr(history, field.attname) == getattr(row, field.attname), field.name
    # The object returned by the service matches what was stored, and knows its relations.
    for field in Order._meta.concrete_fields:
        assert getattr(order, field.attname) == getattr(row, field.attname), field.name
    assert not order._state.adding
    with django_assert_num_queries(0):
        assert (order.vendor.pk, order.customer.pk, order.zone.pk) == (
            row.vendor_id,
            row.customer_id,
            row.zone_id,
        )


SCANNED_BY_PLACING = ["catalog_stock", "catalog_product", "catalog_vendor", "orders_zone", "orders_customer"]


def _sequential_scans() -> dict[str, int]:
    """This transaction's sequential scans per table so far (PostgreSQL counts them per table)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
            [SCANNED_BY_PLACING],
        )
        return dict.fromkeys(SCANNED_BY_PLACING, 0) | dict(cursor.fetchall())


def test_order_place_reaches_rows_by_key_even_on_a_small_catalog():
    # The function's plans are generic, and on a small table a generic plan would read every
    # stock row under the placement's locks (orders migration 0009): only key lookups are allowed.
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=10) for _ in range(3)]
    customer = CustomerFactory()
    before = _sequential_scans()

    place(vendor=vendor, customer=customer, zone=customer.zone, items=[(products[0], 1), (products[2], 2)])

    assert _sequential_scans() == before
    assert stock_of(products[2]) == (10, 2)


def test_order_place_gives_every_row_it_writes_a_uuid7_id_of_its_time():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc('milliseconds', clock_timestamp())")
        (before,) = cursor.fetchone()
        order = place(vendor=vendor, items=[(product, 1)])
        cursor.execute("SELECT clock_timestamp()")
        (after,) = cursor.fetchone()
    rows = [
        order,
        OrderItem.objects.get(order=order),
        OrderEvent.objects.get(order_id=order.pk),
        StockMovement.objects.get(reference=order.number, kind="reserve"),
    ]
    for row in rows:
        assert before <= uuid7_time(row.pk) <= after, type(row).__name__


def test_order_place_calls_no_sql_function_it_could_inline():
    # okada_order_number() and okada_uuid7() are SQL functions: inlined, they cost an expression;
    # not inlined (e.g. okada_order_number(nextval(...))), each call is a function call planned
    # again in every transaction (orders migration 0015).
    names = ["okada_order_place", "okada_order_number", "okada_uuid7"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'all'")  # the test database's owner is a superuser
        place()
        cursor.execute(
            "SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname = ANY(%s)", [names]
        )
        calls = dict(cursor.fetchall())
    assert calls == {"okada_order_place": 1}


def test_order_place_function_keeps_its_planner_settings():
    # CREATE OR REPLACE FUNCTION drops settings not written in the definition: the next version
    # of okada_order_place() must carry them (orders migration 0010).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure",
            [ORDER_PLACE.SIGNATURE],
        )
        (settings,) = cursor.fetchone()
    assert {"plan_cache_mode=force_generic_plan", "enable_seqscan=off", "enable_bitmapscan=off"} <= set(
        settings
    )


# --- Zones, customers, notes, deleting orders -----------------------------------------------------


def test_zones_are_unique_per_city_among_live_ones_and_not_deleted_while_used():
    from okada.core.errors import InUse
    from orders.services import ZoneTaken, zone_create, zone_restore, zone_soft_delete, zone_update

    akwa = zone_create(city="douala", name="Akwa", delivery_fee_xaf=500, actor=staff_actor())
    zone_create(city="yaounde", name="Akwa", delivery_fee_xaf=500, actor=staff_actor())  # another city
    with pytest.raises(ZoneTaken):
        zone_create(city="douala", name="Akwa", delivery_fee_xaf=0, actor=staff_actor())
    assert zone_update(zone=akwa, data={"delivery_fee_xaf": 700}, actor=staff_actor()).delivery_fee_xaf == 700
    OrderFactory(zone=akwa)
    with pytest.raises(InUse):
        zone_soft_delete(zone=akwa, actor=staff_actor())
    empty = zone_create(city="douala", name="Bonapriso", delivery_fee_xaf=500, actor=staff_actor())
    zone_soft_delete(zone=empty, actor=staff_actor())
    zone_create(city="douala", name="Bonapriso", delivery_fee_xaf=400, actor=staff_actor())
    with pytest.raises(ZoneTaken):
        zone_restore(zone=empty, actor=staff_actor())


def test_customers_get_a_normalised_unique_phone_and_a_live_zone():
    from orders.services import PhoneTaken, customer_create, customer_update, zone_create, zone_soft_delete

    zone = zone_create(city="douala", name="Deido", delivery_fee_xaf=500, actor=staff_actor())
    customer = customer_create(name="Awa", phone="6 99 11 22 33", zone=zone, actor=staff_actor())
    assert customer.phone == "+237699112233"
    with pytest.raises(PhoneTaken):
        customer_create(name="Autre", phone="+237699112233", actor=staff_actor())
    with pytest.raises(InvalidInput):
        customer_update(customer=customer, data={"phone": "12"}, actor=staff_actor())
    gone = zone_create(city="douala", name="Vieux", delivery_fee_xaf=500, actor=staff_actor())
    zone_soft_delete(zone=gone, actor=staff_actor())
    with pytest.raises(InvalidInput):
        customer_update(customer=customer, data={"zone": gone}, actor=staff_actor())
    assert Customer.objects.get(pk=customer.pk).zone_id == zone.pk


def test_notes_are_events_and_an_open_order_is_never_soft_deleted():
    from okada.core.errors import Conflict
    from orders.services import order_add_note, order_restore, order_soft_delete

    order = place()
    event = order_add_note(order=order, note="  Livrer après 18 h  ", actor=staff_actor())
    assert (event.kind, event.data) == ("note", {"note": "Livrer après 18 h"})
    with pytest.raises(InvalidInput):
        order_add_note(order=order, note="   ", actor=staff_actor())
    with pytest.raises(Conflict):
        order_soft_delete(order=order, actor=staff_actor())
    order = order_cancel(order=order, actor=staff_actor())
    order_soft_delete(order=order, actor=staff_actor())
    assert Order.deleted_objects.filter(pk=order.pk).exists()
    with translation.override("en"), pytest.raises(NotFound, match="restore it before"):
        order_add_note(order=order, note="trop tard", actor=staff_actor())
    assert OrderEvent.objects.filter(order_id=order.pk, kind="note").count() == 1
    order_restore(order=order, actor=staff_actor())
    assert Order.objects.filter(pk=order.pk).exists()


def test_changing_a_row_deleted_since_it_was_read_is_not_found_and_changes_nothing():
    # The caller read the row, then another request deleted (or restored) it: a clear 404.
    from orders.services import order_restore, order_soft_delete, zone_soft_delete, zone_update

    order = order_cancel(order=place(), actor=staff_actor())
    stale = Order.objects.get(pk=order.pk)
    order_soft_delete(order=order, actor=staff_actor())
    with pytest.raises(NotFound):
        order_transition(order=stale, to=S.ACCEPTED, actor=staff_actor())
    with pytest.raises(NotFound):
        order_soft_delete(order=stale, actor=staff_actor())
    order_restore(order=order, actor=staff_actor())
    with translation.override("en"), pytest.raises(NotFound, match="restored meanwhile"):
        order_restore(order=order, actor=staff_actor())

    zone = ZoneFactory(delivery_fee_xaf=500)
    zone_soft_delete(zone=Zone.objects.get(pk=zone.pk), actor=staff_actor())
    with pytest.raises(NotFound) as refused:
        zone_update(zone=zone, data={"delivery_fee_xaf": 700}, actor=staff_actor())
    assert refused.value.as_dict()["status"] == 404
    assert Zone.all_objects.get(pk=zone.pk).delivery_fee_xaf == 500


def test_staff_transitions_follow_their_roles_permissions():
    from django.contrib.auth.models import Group

    from okada.core.errors import NotAllowed
    from orders.services import allowed_targets

    def staff(role: str) -> Actor:
        user: Any = UserFactory(is_staff=True)
        user.groups.set(Group.objects.filter(name=role))
        return Actor.for_staff_user(user)

    order = place()
    assert allowed_targets(order=order, actor=staff("Support")) == []
    assert set(allowed_targets(order=order, actor=staff("Operations"))) == {S.ACCEPTED, S.CANCELLED}
    with pytest.raises(NotAllowed):
        order_cancel(order=order, actor=staff("Support"))
    assert Order.objects.get(pk=order.pk).status == S.PENDING


# --- Refunds owed: Finance's follow-up ------------------------------------------------------------


def test_finance_settles_a_refund_owed_once_with_a_note_on_the_timeline():
    from okada.core.roles import FINANCE
    from tests.catalog.factories import role_user

    payment = payment_needing_refund()
    assert payment.needs_refund
    user = role_user(FINANCE)

    settled = payment_refund_settle(payment=payment, actor=Actor.for_staff_user(user), note=" MoMo 2231 ")

    assert not settled.needs_refund and settled.refund_settled_by == user
    assert settled.refund_settled_at is not None
    assert not Payment.objects.needing_refund().exists()
    event = OrderEvent.objects.filter(order=payment.order_id).order_by("-created_at").first()
    assert event is not None and (event.kind, event.actor_user) == ("note", user)
    assert event.data == {
        "refund_settled": True,
        "payment_id": str(payment.pk),
        "received_xaf": payment.received_xaf,
        "note": "MoMo 2231",
    }
    events = OrderEvent.objects.filter(order=payment.order_id).count()
    with pytest.raises(RefundNotOwed) as again:
        payment_refund_settle(payment=payment, actor=Actor.for_staff_user(user), note="twice")
    assert (again.value.code, again.value.status) == ("refund_not_owed", 409)
    assert again.value.data["settled_at"] == settled.refund_settled_at.isoformat()
    assert OrderEvent.objects.filter(order=payment.order_id).count() == events
    assert Payment.objects.get(pk=payment.pk).refund_settled_at == settled.refund_settled_at


def test_settling_a_refund_needs_finance_a_note_and_money_owed():
    from okada.core.roles import OPERATIONS, SUPPORT
    from tests.catalog.factories import role_user

    payment = payment_needing_refund()
    for role in (OPERATIONS, SUPPORT):
        with pytest.raises(NotAllowed):
            payment_refund_settle(payment=payment, actor=Actor.for_staff_user(role_user(role)), note="x")
    with pytest.raises(NotAllowed):
        payment_refund_settle(payment=payment, actor=vendor_actor(payment.order.vendor), note="x")
    with pytest.raises(InvalidInput) as empty:
        payment_refund_settle(payment=payment, actor=staff_actor(), note="   ")
    assert empty.value.errors.keys() == {"note"}
    fitting = cash(place(), "cash-ok", 1)  # short of the total: no refund owed
    assert not fitting.needs_refund
    with pytest.raises(RefundNotOwed):
        payment_refund_settle(payment=fitting, actor=staff_actor(), note="x")
    assert Payment.objects.get(pk=payment.pk).needs_refund


def test_the_database_refuses_a_settled_refund_still_owed():
    from django.db import IntegrityError

    payment = payment_needing_refund()
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute("UPDATE orders_payment SET refund_settled_at = now() WHERE id = %s", [payment.pk])


def test_the_database_refuses_a_refund_owed_without_since_when():
    from django.db import IntegrityError

    payment = payment_needing_refund()
    assert payment.refund_flagged_at is not None
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute("UPDATE orders_payment SET refund_flagged_at = NULL WHERE id = %s", [payment.pk])


def test_order_hard_delete_refuses_an_open_order_and_removes_a_finished_one():
    superuser = UserFactory(is_staff=True, is_superuser=True)
    actor = Actor.for_staff_user(superuser)
    open_order = OrderFactory()
    with pytest.raises(Conflict):
        order_hard_delete(order=open_order, actor=actor)
    assert Order.objects.filter(pk=open_order.pk).exists()

    done = order_in_status(OrderStatus.CANCELLED)
    with pytest.raises(NotAllowed):
        order_hard_delete(order=done, actor=Actor.for_staff_user(UserFactory(is_staff=True)))
    events = list(OrderEvent.objects.filter(order_id=done.pk).values_list("pk", flat=True))
    order_hard_delete(order=done, actor=actor)
    assert not Order.all_objects.filter(pk=done.pk).exists()
    # Its timeline is append-only and references no order by key: it stays, as the audit trail.
    assert sorted(OrderEvent.objects.filter(order_id=done.pk).values_list("pk", flat=True)) == sorted(events)
    assert len(events) == 2  # placed, cancelled
