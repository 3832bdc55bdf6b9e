"""orders.selectors: the order lists, the order page and the open-orders queue, and their query
counts (constant in the number of rows: what a screen shows is joined or prefetched)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from catalog.models import Vendor
from okada.core.errors import InvalidInput, NotFound
from orders.models import OPEN_STATUSES, Order, OrderStatus, Payment, PaymentMethod
from orders.selectors import (
    OPEN_AGE_BANDS,
    customers_with_phone,
    oldest_open_orders,
    open_order_ages,
    open_queue,
    order_detail,
    order_list,
    order_list_for_vendor,
    stuck_orders,
)
from orders.services import customer_soft_delete, order_cancel, order_transition, payment_record
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor
from tests.orders.factories import CustomerFactory, OrderFactory, advance, order_in_status
from tests.statistics import bulk_analyzed

pytestmark = pytest.mark.django_db

S = OrderStatus
SIZES = [1, 6]  # each query-count test runs with both: the same bound must hold for both


def oldest_first(orders: list[Order]) -> list[uuid.UUID]:
    return [o.pk for o in sorted(orders, key=lambda o: (o.placed_at, o.pk))]


def newest_first(orders: list[Order]) -> list[uuid.UUID]:
    return oldest_first(orders)[::-1]


def vendor_with_orders(rows: int) -> Vendor:
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    for _ in range(rows):
        OrderFactory(vendor=vendor, items=[(product, 1)])
    return vendor


def test_order_list_for_vendor_lists_the_vendors_live_orders_newest_first_on_a_unique_key():
    vendor = VendorFactory()
    orders = [OrderFactory(vendor=vendor) for _ in range(3)]
    deleted = order_cancel(order=OrderFactory(vendor=vendor), actor=staff_actor())
    Order.objects.get(pk=deleted.pk).delete()
    OrderFactory()  # another vendor's

    listed = list(order_list_for_vendor(vendor=vendor))

    assert [o.pk for o in listed] == newest_first(orders)
    assert list(order_list_for_vendor(vendor=vendor.pk)) == listed


def test_order_list_for_vendor_filters_by_status():
    vendor = VendorFactory()
    pending = OrderFactory(vendor=vendor)
    accepted = advance(OrderFactory(vendor=vendor), S.ACCEPTED)

    assert list(order_list_for_vendor(vendor=vendor, status=S.PENDING)) == [pending]
    assert list(order_list_for_vendor(vendor=vendor, status=S.ACCEPTED)) == [accepted]
    assert list(order_list_for_vendor(vendor=vendor, status=S.DELIVERED)) == []
    with pytest.raises(InvalidInput) as refused:
        order_list_for_vendor(vendor=vendor, status="lost")
    assert refused.value.errors == {"status": [refused.value.message]}


def test_order_list_for_vendor_since_a_time_lists_what_changed_oldest_change_first():
    vendor = VendorFactory()
    first, second, untouched = (OrderFactory(vendor=vendor) for _ in range(3))
    since = timezone.now()
    second = order_transition(order=second, to=S.ACCEPTED, actor=staff_actor())
    first = order_transition(order=first, to=S.ACCEPTED, actor=staff_actor())

    changed = list(order_list_for_vendor(vendor=vendor, updated_since=since))

    assert changed == [second, first]
    assert untouched not in changed
    assert list(order_list_for_vendor(vendor=vendor, updated_since=first.updated_at)) == [first]  # inclusive


@pytest.mark.parametrize("rows", SIZES)
def test_order_list_for_vendor_takes_one_query_for_any_number_of_rows(rows, django_assert_max_num_queries):
    vendor = vendor_with_orders(rows)

    with django_assert_max_num_queries(1):
        shown = [(o.number, o.customer.name, o.zone.name) for o in order_list_for_vendor(vendor=vendor)]

    assert len(shown) == rows


def test_order_detail_shows_items_payments_and_the_timeline_in_order():
    vendor = VendorFactory()
    a = ProductFactory(vendor=vendor, sku="A", initial_stock=5)
    b = ProductFactory(vendor=vendor, sku="B", initial_stock=5)
    order = advance(OrderFactory(vendor=vendor, items=[(a, 1), (b, 2)]), S.PREPARING)

    shown = order_detail(order_id=order.pk)

    assert shown == order
    assert sorted(i.sku for i in shown.items.all()) == ["A", "B"]
    assert [(e.kind, e.to_status) for e in shown.events.all()] == [
        ("placed", S.PENDING),
        ("status", S.ACCEPTED),
        ("status", S.PREPARING),
    ]
    assert order_detail(order_id=str(order.pk), vendor=vendor) == order


@pytest.mark.parametrize(
    "order_id",
    [uuid.uuid4(), "not-a-uuid"],
    ids=["unknown", "malformed"],
)
def test_order_detail_of_no_such_order_is_not_found(order_id):
    with pytest.raises(NotFound):
        order_detail(order_id=order_id)


def test_order_detail_hides_another_vendors_order_and_deleted_orders():
    order = OrderFactory()
    with pytest.raises(NotFound):
        order_detail(order_id=order.pk, vendor=VendorFactory())
    cancelled = order_cancel(order=order, actor=staff_actor())
    Order.objects.get(pk=cancelled.pk).delete()
    with pytest.raises(NotFound):
        order_detail(order_id=order.pk)


@pytest.mark.parametrize("rows", SIZES)
def test_order_detail_takes_four_queries_however_many_items_payments_and_events(
    rows, django_assert_max_num_queries
):
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=5) for _ in range(rows)]
    order = advance(OrderFactory(vendor=vendor, items=[(p, 1) for p in products]), S.READY)
    for n in range(rows):
        payment_record(
            order=order,
            provider=PaymentMethod.CASH,
            provider_reference=f"cash-{n}",
            amount_xaf=100,
            actor=staff_actor(),
            status=Payment.Status.SUCCEEDED,
        )

    with django_assert_max_num_queries(4):  # the order with its joins, items, payments, events
        order = order_detail(order_id=order.pk)
        shown = (
            (order.number, order.vendor.name, order.customer.name, order.zone.name),
            [(i.sku, i.quantity) for i in order.items.all()],
            [(p.provider_reference, p.amount_xaf) for p in order.payments.all()],
            [(e.kind, e.to_status) for e in order.events.all()],
        )

    assert (len(shown[1]), len(shown[2])) == (rows, rows)
    assert len(shown[3]) >= rows


def test_customers_with_phone_are_the_live_and_the_deleted_customers_with_that_number():
    before = CustomerFactory(phone="+237677001122")
    customer_soft_delete(customer=before, actor=staff_actor())
    now = CustomerFactory(phone="+237677001122")
    CustomerFactory(phone="+237677001123")

    assert set(customers_with_phone("+237677001122")) == {before, now}
    assert list(customers_with_phone("+237699999999")) == []


def test_oldest_open_orders_are_the_first_of_the_whole_queue_whatever_their_status():
    by_status = {status: [order_in_status(status) for _ in range(2)] for status in OPEN_STATUSES}
    for status in (S.DELIVERED, S.CANCELLED, S.EXPIRED):
        order_in_status(status)  # closed: never in the queue
    queue = oldest_first([order for orders in by_status.values() for order in orders])

    for limit in (1, 3, 10, 20):
        assert [o.pk for o in oldest_open_orders(limit=limit)] == queue[:limit]
    ready = oldest_first(by_status[S.READY])
    assert [o.pk for o in oldest_open_orders(limit=1, status=S.READY)] == ready[:1]
    assert [o.pk for o in oldest_open_orders(limit=5, status=S.READY)] == ready
    with pytest.raises(InvalidInput):
        oldest_open_orders(limit=1, status=S.DELIVERED)


def test_open_queue_marks_the_orders_past_their_status_limit_as_stuck(settings):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 15, "ready": 30}
    pending, ready = OrderFactory(), order_in_status(S.READY)
    twenty_minutes_later = max(pending.placed_at, ready.placed_at) + timedelta(minutes=20)

    stuck = {o.pk: o.is_stuck for o in open_queue(limit=10, now=twenty_minutes_later)}  # type: ignore[attr-defined]

    assert stuck == {pending.pk: True, ready.pk: False}


def test_stuck_orders_are_the_oldest_past_their_status_limit(settings):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 15, "accepted": 60}
    pending = [OrderFactory() for _ in range(3)]
    accepted = order_in_status(S.ACCEPTED)  # placed last, not stuck 20 minutes later
    order_in_status(S.DELIVERED)
    later = accepted.placed_at + timedelta(minutes=20)

    assert [o.pk for o in stuck_orders(limit=10, now=later)] == oldest_first(pending)
    assert [o.pk for o in stuck_orders(limit=2, now=later)] == oldest_first(pending)[:2]
    assert stuck_orders(limit=10, now=accepted.placed_at) == []
    assert [o.pk for o in stuck_orders(limit=10, now=later + timedelta(hours=1))] == oldest_first(
        [*pending, accepted]
    )


@pytest.mark.parametrize("rows", SIZES)
def test_oldest_open_orders_take_one_query_for_any_number_of_rows(rows, django_assert_max_num_queries):
    vendor_with_orders(rows)

    with django_assert_max_num_queries(1):
        orders = oldest_open_orders(limit=50)
        shown = [(o.number, o.vendor.name, o.customer.name, o.customer.phone, o.zone.name) for o in orders]

    assert len(shown) == rows


def test_open_order_ages_counts_open_orders_per_status_and_age_band():
    pending = OrderFactory()
    order_in_status(S.READY)
    order_in_status(S.READY)
    order_in_status(S.DELIVERED)
    placed = pending.placed_at  # one transaction: every order here was placed at this instant

    def counts(after: timedelta) -> dict[str, tuple[int, ...]]:
        return {row.status: row.counts for row in open_order_ages(now=placed + after)}

    assert list(counts(timedelta(0))) == list(OPEN_STATUSES)
    assert counts(timedelta(minutes=5))[S.PENDING] == (1, 0, 0, 0)
    assert counts(timedelta(minutes=5))[S.READY] == (2, 0, 0, 0)
    assert counts(timedelta(minutes=30))[S.READY] == (0, 2, 0, 0)
    assert counts(timedelta(hours=2))[S.READY] == (0, 0, 2, 0)
    assert counts(timedelta(hours=5))[S.READY] == (0, 0, 0, 2)
    assert counts(timedelta(hours=5))[S.ACCEPTED] == (0, 0, 0, 0)
    assert len(OPEN_AGE_BANDS) == 4
    assert sum(row.total for row in open_order_ages(now=placed + timedelta(hours=5))) == 3


@pytest.mark.parametrize("rows", SIZES)
def test_open_order_ages_takes_one_query_for_any_number_of_orders(rows, django_assert_max_num_queries):
    for status in OPEN_STATUSES[:rows]:
        order_in_status(status)

    with django_assert_max_num_queries(1):
        ages = open_order_ages()

    assert sum(row.total for row in ages) == min(rows, len(OPEN_STATUSES))


def test_refunds_owed_lists_first_those_waiting_longest_since_their_flag():
    # The panel shows how long each refund has waited since it was flagged: its "oldest" are the
    # ones waiting longest, not the payments asked for first (a request may be paid, and so
    # flagged, days after it was made).
    from orders.selectors import refunds_owed
    from tests.orders.factories import payment_needing_refund

    now = timezone.now()
    asked_first = payment_needing_refund(key="asked-first")
    Payment.objects.filter(pk=asked_first.pk).update(
        created_at=now - timedelta(days=9), refund_flagged_at=now - timedelta(hours=1)
    )
    waiting_longest = payment_needing_refund(key="waiting-longest")
    Payment.objects.filter(pk=waiting_longest.pk).update(
        created_at=now - timedelta(days=4), refund_flagged_at=now - timedelta(days=4)
    )
    count, oldest = refunds_owed(limit=1)
    assert count == 2
    assert [p.pk for p in oldest] == [waiting_longest.pk]


FIRST_NAMES = ["Jean", "Aïcha", "Thérèse", "Paul", "Awa", "Éric", "Grâce", "Hervé", "Flore", "Achille"]
LAST_NAMES = ["Ndongo", "Kamga", "Mbarga", "Eto", "Biyong", "Njoya", "Song", "Wandji", "Owona"]


@pytest.mark.django_db(transaction=True)  # bulk_analyzed: committed, then truncated
def test_a_name_search_page_reads_the_name_indexes_never_the_vendors_orders():
    # Statistics like production's (tests.statistics): 3,000 customers, 40,000 orders of 20
    # vendors, half placed before orders kept their name (''), half with it. On an empty table
    # every plan costs nothing and the planner's pick says nothing about a big one.
    first = OrderFactory()
    vendors = [first.vendor.pk, *(VendorFactory(city=first.vendor.city).pk for _ in range(19))]
    bulk_analyzed(
        "orders_customer",
        """
        INSERT INTO orders_customer (id, created_at, updated_at, deleted_by_cascade, name, phone,
                                     default_address)
        SELECT gen_random_uuid(), now(), now(), false,
               (%s::text[])[1 + g %% 10] || ' ' || (%s::text[])[1 + g %% 9],
               '+237' || (650000000 + g)::text, ''
          FROM generate_series(1, 3000) g
        """,
        [FIRST_NAMES, LAST_NAMES],
    )
    bulk_analyzed(
        "orders_order",
        """
        INSERT INTO orders_order (id, created_at, updated_at, deleted_by_cascade, number, status,
                                  channel, payment_method, payment_status, subtotal_xaf,
                                  delivery_fee_xaf, total_xaf, address, placed_at, note,
                                  customer_name, customer_id, vendor_id, zone_id)
        SELECT gen_random_uuid(), now(), now(), false,
               okada_order_number(nextval('orders_order_number_seq')), 'delivered', 'storefront',
               'cash', 'paid', 1000, 0, 1000, '', now() - g * interval '1 minute', '',
               CASE g %% 3 WHEN 0 THEN c.name WHEN 1 THEN ''
                           ELSE split_part(c.name, ' ', 1) || ' Autre' END,
               c.id, (%s::uuid[])[1 + g %% 20], %s
          FROM generate_series(1, 40000) g
          JOIN (SELECT id, name, row_number() OVER (ORDER BY id) AS n FROM orders_customer) c
            ON c.n = 1 + (g * 7) %% 3000
        """,
        [vendors, first.zone_id],
    )
    # The orders under another name than their customer record's, as the services write them
    # (orders migration 0036's backfill).
    bulk_analyzed(
        "orders_customer_alias",
        """
        INSERT INTO orders_customer_alias (vendor_id, customer_id, name)
        SELECT DISTINCT o.vendor_id, o.customer_id, o.customer_name
          FROM orders_order o JOIN orders_customer c ON c.id = o.customer_id
         WHERE o.customer_name <> '' AND o.customer_name <> c.name
        """,
        [],
    )
    page = order_list(vendor_id=first.vendor.pk, search="Jean").order_by("-placed_at", "-id")[:51]
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    nodes = list(walk(json.loads(plan) if isinstance(plan, str) else plan))
    indexes = {n.get("Index Name") for n in nodes}
    # The customers named, by record (GIN) or alias (its GIN, or the vendor's few through the
    # unique (vendor, customer, name) index), then their orders by customer: no index on every
    # order's name (orders migration 0036).
    assert {"orders_order_customer", "orders_customer_name_search"} <= indexes, plan
    assert indexes & {"orders_alias_name_search", "orders_customer_alias_uniq"}, plan
    # Orders and aliases are never read in full (a join may read this test's 3,000 customers
    # whole: the planner's pick on a small table, the primary key on a big one).
    read_whole = [n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not {"orders_order", "orders_customer_alias"} & set(read_whole), read_whole
    # And the page is right: the vendor's orders of a Jean, kept name or not, newest first.
    expected = list(
        Order.objects.filter(vendor_id=first.vendor.pk)
        .filter(
            Q(customer_name__startswith="Jean ") | Q(customer_name="", customer__name__startswith="Jean ")
        )
        .order_by("-placed_at", "-id")
        .values_list("pk", flat=True)[:51]
    )
    assert len(expected) == 51
    assert [o.pk for o in page] == expected
    # The storefront's search (every vendor's orders it placed): every vendor's aliases, by name.
    storefront = order_list(channel="storefront", search="Jean").order_by("-placed_at", "-id")[:51]
    sql, params = storefront.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    nodes = list(walk(json.loads(plan) if isinstance(plan, str) else plan))
    assert {"orders_alias_name_search", "orders_customer_name_search"} <= {n.get("Index Name") for n in nodes}
    assert not {"orders_order", "orders_customer_alias"} & {
        n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"
    }, plan


def walk(plan: Any) -> Any:
    for node in plan if isinstance(plan, list) else [plan]:
        node = node.get("Plan", node)
        yield node
        for child in node.get("Plans", []):
            yield from walk(child)
