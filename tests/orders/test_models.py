"""orders.models: the database itself refuses bad rows (Python bypassed)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import SEARCH_QUERY
from okada.core.actors import Actor
from okada.partitions.ddl import partition_name, utc_month_of
from orders.models import (
    Customer,
    Order,
    OrderEvent,
    OrderItem,
    Payment,
    PaymentMethod,
    customer_name_matches,
)
from orders.services import order_add_note, order_place_for_phone, order_transition, payment_record
from tests.append_only import assert_append_only, refused
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory
from tests.statistics import bulk_analyzed

pytestmark = pytest.mark.django_db


def violated_constraint(write: Callable[[], Any]) -> str:
    """Run a raw write that skips Python validation; return the constraint PostgreSQL named."""
    with pytest.raises(IntegrityError) as exc, transaction.atomic():
        write()
    return exc.value.__cause__.diag.constraint_name  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "change",
    [
        {"total_xaf": F("total_xaf") + 1},
        {"total_xaf": F("subtotal_xaf")},
        {"subtotal_xaf": F("subtotal_xaf") - 1},
        {"delivery_fee_xaf": F("delivery_fee_xaf") + 100},
    ],
    ids=["total+1", "total-without-fee", "subtotal-1", "fee+100"],
)
def test_database_refuses_an_order_total_that_is_not_subtotal_plus_fee(change):
    order = OrderFactory()
    assert violated_constraint(lambda: Order.objects.filter(pk=order.pk).update(**change)) == (
        "orders_order_total_sum"
    )
    order.refresh_from_db()
    assert order.total_xaf == order.subtotal_xaf + order.delivery_fee_xaf


def test_database_accepts_totals_that_add_up():
    order = OrderFactory()
    Order.objects.filter(pk=order.pk).update(
        delivery_fee_xaf=F("delivery_fee_xaf") + 100, total_xaf=F("total_xaf") + 100
    )
    order.refresh_from_db()
    assert order.total_xaf == order.subtotal_xaf + order.delivery_fee_xaf


def test_database_refuses_an_unknown_order_status():
    order = OrderFactory()
    assert violated_constraint(lambda: Order.objects.filter(pk=order.pk).update(status="lost")) == (
        "orders_order_status_valid"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"line_total_xaf": F("line_total_xaf") + 1},
        {"quantity": F("quantity") + 1},
        {"unit_price_xaf": F("unit_price_xaf") + 1},
    ],
    ids=["line_total+1", "quantity+1", "price+1"],
)
def test_database_refuses_a_line_total_that_is_not_price_times_quantity(change):
    order = OrderFactory()
    items = OrderItem.objects.filter(order=order)
    assert violated_constraint(lambda: items.update(**change)) == "orders_item_line_total"


def test_database_refuses_a_zero_quantity_even_with_a_matching_line_total():
    order = OrderFactory()
    items = OrderItem.objects.filter(order=order)
    assert violated_constraint(lambda: items.update(quantity=0, line_total_xaf=0)) == (
        "orders_item_quantity_positive"
    )
    assert items.get().quantity == 1


def test_database_refuses_a_second_line_for_the_same_product():
    order = OrderFactory()
    item = order.items.get()
    copy = OrderItem(
        order=order,
        product_id=item.product_id,
        sku=item.sku,
        name=item.name,
        unit_price_xaf=item.unit_price_xaf,
        quantity=1,
        line_total_xaf=item.unit_price_xaf,
    )
    assert violated_constraint(lambda: OrderItem.objects.bulk_create([copy])) == (
        "orders_item_one_line_per_product"
    )


@pytest.mark.parametrize("phone", ["690123456", "+2250701020304", "+237 690123456", "+23769012345"])
def test_database_refuses_a_customer_phone_that_is_not_cameroonian_e164(phone):
    row = Customer(name="Raw", phone=phone)
    assert violated_constraint(lambda: Customer.objects.bulk_create([row])) == "orders_customer_phone_e164"


def test_database_refuses_two_live_customers_with_one_phone_but_not_a_deleted_one():
    first = CustomerFactory(phone="+237690111222")
    row = Customer(name="Again", phone="+237690111222")
    assert (
        violated_constraint(lambda: Customer.objects.bulk_create([row])) == "orders_customer_phone_live_uniq"
    )
    first.delete()
    Customer.objects.bulk_create([row])
    assert Customer.objects.get(phone="+237690111222").pk == row.pk


def pending_payment(order: Order, reference: str, provider: str = PaymentMethod.MTN_MOMO) -> Payment:
    return Payment(order=order, provider=provider, provider_reference=reference, amount_xaf=order.total_xaf)


def test_database_refuses_a_duplicate_provider_reference_for_one_provider():
    order = OrderFactory()
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="TX-42",
        amount_xaf=order.total_xaf,
        actor=Actor.system("test"),
    )
    duplicate = pending_payment(order, "TX-42")
    assert violated_constraint(lambda: Payment.objects.bulk_create([duplicate])) == (
        "orders_payment_provider_ref_uniq"
    )
    # The same reference at another provider is another transaction.
    Payment.objects.bulk_create([pending_payment(order, "TX-42", provider=PaymentMethod.ORANGE_MONEY)])
    assert Payment.objects.filter(provider_reference="TX-42").count() == 2


@pytest.mark.parametrize("amount", [0, -500])
def test_database_refuses_a_non_positive_payment(amount):
    order = OrderFactory()
    row = pending_payment(order, "TX-1")
    row.amount_xaf = amount
    assert violated_constraint(lambda: Payment.objects.bulk_create([row])) == "orders_payment_amount_positive"


def test_database_refuses_a_payment_without_a_key_or_a_reference():
    row = pending_payment(OrderFactory(), "")
    assert violated_constraint(lambda: Payment.objects.bulk_create([row])) == "orders_payment_named"


def test_database_refuses_a_duplicate_idempotency_key_but_not_two_blank_ones():
    order = OrderFactory()
    Payment.objects.bulk_create([pending_payment(order, "TX-1"), pending_payment(order, "TX-2")])
    keyed = [pending_payment(order, "", provider=PaymentMethod.CASH) for _ in range(2)]
    for row in keyed:
        row.idempotency_key = "key-1"
    Payment.objects.bulk_create(keyed[:1])
    assert violated_constraint(lambda: Payment.objects.bulk_create(keyed[1:])) == (
        "orders_payment_idempotency_key_uniq"
    )


@pytest.mark.parametrize(
    ("status", "received"), [("succeeded", None), ("pending", 500), ("failed", 500), ("succeeded", 0)]
)
def test_database_refuses_a_received_amount_unless_the_payment_succeeded(status, received):
    row = pending_payment(OrderFactory(), "TX-1")
    row.status, row.received_xaf = status, received
    assert violated_constraint(lambda: Payment.objects.bulk_create([row])) == (
        "orders_payment_received_iff_succeeded"
    )


@pytest.mark.django_db(transaction=True)  # bulk_analyzed: committed, then truncated
def test_payments_needing_refund_are_listed_from_their_partial_index():
    # Statistics like production's (thousands of payments, hardly any owed money): on an empty
    # table every index costs the same and the planner's pick is a coin toss.
    order = OrderFactory()
    bulk_analyzed(
        "orders_payment",
        """
        INSERT INTO orders_payment (id, created_at, updated_at, provider, amount_xaf, status,
                                    callbacks, order_id, idempotency_key)
        SELECT gen_random_uuid(), now() - g * interval '1 minute', now(), 'cash', 1000,
               'failed', '[]', %s, 'stats-' || g
          FROM generate_series(1, 5000) g
        """,
        [order.pk],
    )
    sql, params = Payment.objects.needing_refund().order_by("-created_at")[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "orders_payment_needs_refund" in plan


# Every index of these tables costs each order placed (okada_order_place writes them all): an
# index is added here on purpose, with `make bench BENCH_ARGS="--only order_place"` before and
# after. Partial indexes that a new order does not enter say so.
PLACEMENT_INDEXES = {
    "orders_order": {
        "orders_order_pkey",
        "orders_order_number_uniq",  # unique forever, deleted orders included
        "orders_order_number_sort",  # (length(number), number): the admin's number column
        "orders_order_vendor_status",  # vendor's orders by status (API, vendor app)
        "orders_order_vendor_upd",  # vendor's orders by update (sync, updated_since)
        "orders_order_storefront_upd",  # the storefront's orders by update (partial: its channel)
        "orders_order_customer",  # a customer's orders; `?q=` a name, by the customers it names
        "orders_order_placed",  # admin lists and dashboard by placing time
        "orders_order_open",  # open orders queue (partial: closed orders leave it)
        "orders_order_expiring",  # expiry job (partial: unpaid mobile money only)
        "orders_order_deleted",  # deleted filter (partial: a new order never enters it)
    },
    "orders_historicalorder": {
        "orders_historicalorder_pkey",
        "orders_historicalorder_id_91eda5cd",  # one order's history
        "orders_horder_date",  # BRIN
        "orders_horder_user",  # partial: storefront orders have no user
    },
    "orders_orderitem": {"orders_orderitem_pkey", "orders_item_one_line_per_product"},
    "orders_orderevent": {
        "orders_orderevent_pkey",
        "orders_event_order_ts",
        "orders_event_notes",  # partial: placement writes no note
        "orders_event_actor_user",  # partial: storefront orders have no user
    },
    "catalog_stockmovement": {
        "catalog_stockmovement_pkey",
        "catalog_stockmove_prod_ts",
        # partial: the kinds staff write (restock, adjustment, count, return), never an order's
        "catalog_stockmove_manual_kind",
        "catalog_stockmove_manual_ref",
    },
    "catalog_stock": {
        "catalog_stock_pkey",
        "catalog_stock_product_id_key",
        "catalog_stock_vendor_newest",  # (vendor, id), in place of the vendor's own: a vendor's stock list
        "catalog_stock_low",  # partial on a capped level: placing keeps stock updates HOT
    },
    "sync_change": {"sync_change_pull"},
}


def test_the_tables_an_order_placement_writes_have_exactly_their_budgeted_indexes():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY(%s)",
            [list(PLACEMENT_INDEXES)],
        )
        found: dict[str, set[str]] = {}
        for table, index in cur.fetchall():
            found.setdefault(table, set()).add(index)
    assert found == PLACEMENT_INDEXES


# Partial indexes of the tables placement writes, for the admin: an order placed by the
# storefront (most orders, and the order_place bench) writes no row any of them holds, so they
# cost placement no index entry. (An order placed through a vendor's personal token names its
# user on its events: those enter orders_event_actor_user, as its history row enters
# orders_horder_user.)
NOT_FOR_PLACEMENT = {
    "catalog_stockmovement": ["catalog_stockmove_manual_kind", "catalog_stockmove_manual_ref"],
    "orders_orderevent": ["orders_event_notes", "orders_event_actor_user"],
    "orders_payment": ["orders_payment_settled_by"],
}


def rows_indexed(table: str, index: str) -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = to_regclass(%s)", [index]
        )
        predicate = cur.fetchone()[0]
        assert predicate, f"{index} is not partial"
        cur.execute(f"SELECT count(*) FROM {table} WHERE {predicate}")  # noqa: S608 (the catalog's text)
        return int(cur.fetchone()[0])


def test_an_order_placed_by_the_storefront_enters_none_of_the_admins_partial_indexes():
    zone = ZoneFactory()
    vendor = VendorFactory(city=zone.city)
    products = [ProductFactory(vendor=vendor, initial_stock=10) for _ in range(3)]  # restocks: before
    before = {(t, i): rows_indexed(t, i) for t, names in NOT_FOR_PLACEMENT.items() for i in names}
    storefront = Actor(role=Actor.STOREFRONT, label="web")
    for method, product in zip((PaymentMethod.CASH, PaymentMethod.MTN_MOMO), products, strict=False):
        OrderFactory(
            zone=zone,
            vendor=vendor,
            items=[(product, 2)],
            payment_method=method,
            note="sonner",
            actor=storefront,
        )
    # The storefront's POST /orders for mobile money: its payment request and event too.
    order_place_for_phone(
        vendor_id=vendor.pk,
        phone="+237677123456",
        name="Awa",
        zone_id=zone.pk,
        items=[(products[2], 1)],
        payment_method=PaymentMethod.MTN_MOMO,
        channel="storefront",
        address="Akwa",
        actor=storefront,
    )
    assert Payment.objects.count() == 1 and OrderEvent.objects.filter(kind="payment").count() == 1
    after = {(t, i): rows_indexed(t, i) for t, names in NOT_FOR_PLACEMENT.items() for i in names}
    assert after == before


# --- Order events -------------------------------------------------------------------------------

EVENTS_HINT = "add a note to the order instead"


def test_database_refuses_to_change_or_delete_an_order_event_through_the_parent_or_its_partition():
    order = OrderFactory()
    placed = OrderEvent.objects.get(order_id=order.pk, kind="placed")

    assert_append_only(
        "orders_orderevent",
        placed.pk,
        partition=partition_name("orders_orderevent", utc_month_of(placed.created_at)),
        hint=EVENTS_HINT,
    )
    assert refused("UPDATE orders_orderevent SET to_status = 'delivered'") == (
        f"orders_orderevent is append-only: {EVENTS_HINT}"
    )
    for change in (
        lambda: OrderEvent.objects.filter(order_id=order.pk).update(data={"edited": True}),
        lambda: OrderEvent.objects.filter(order_id=order.pk).delete(),
    ):
        refusal = pytest.raises(IntegrityError, match="orders_orderevent is append-only")
        with refusal, transaction.atomic():
            change()
    assert OrderEvent.objects.get(pk=placed.pk).data == placed.data


def test_the_services_still_append_events_to_the_timeline():
    order = OrderFactory()
    staff = Actor(role=Actor.STAFF, label="test")
    order_transition(order=order, to="accepted", actor=staff)
    order_add_note(order=order, note="the customer called back: the address is wrong", actor=staff)

    timeline = OrderEvent.objects.filter(order_id=order.pk).order_by("created_at", "id")
    assert list(timeline.values_list("kind", "to_status")) == [
        ("placed", "pending"),
        ("status", "accepted"),
        ("note", ""),
    ]


def test_an_order_number_stays_unique_after_its_order_is_deleted_and_the_order_comes_back():
    # DESIGN section 3: numbers are unique forever; a deleted order keeps its number.
    from orders.services import order_cancel, order_restore, order_soft_delete
    from tests.catalog.factories import staff_actor

    staff = staff_actor()
    gone = order_soft_delete(order=order_cancel(order=OrderFactory(), actor=staff), actor=staff)
    live = OrderFactory()
    assert (
        violated_constraint(lambda: Order.all_objects.filter(pk=live.pk).update(number=gone.number))
        == "orders_order_number_uniq"
    )
    restored = order_restore(order=Order.all_objects.get(pk=gone.pk), actor=staff)
    assert restored.deleted_at is None
    assert Order.objects.filter(number=gone.number).get().pk == gone.pk


def test_an_orders_last_change_time_only_moves_forward_whatever_the_writers_clock():
    """A change stamped before the time the order already has (a web server whose clock is
    behind) is stamped one microsecond after it; a later stamp is kept, and an update that
    leaves `updated_at` alone leaves it alone (orders migration 0033)."""
    order = OrderFactory()
    rows = Order.objects.filter(pk=order.pk)
    before = rows.get().updated_at
    tick = timedelta(microseconds=1)

    rows.update(note="clock behind", updated_at=before - timedelta(hours=1))
    assert rows.get().updated_at == before + tick
    rows.update(note="untouched")
    assert rows.get().updated_at == before + tick
    later = before + timedelta(seconds=5)
    rows.update(note="clock ahead", updated_at=later)
    assert rows.get().updated_at == later


def test_a_saved_order_holds_the_change_time_the_database_stored_when_the_clock_is_behind():
    # The trigger of migration 0033 stamps the row after its last change; the saved instance
    # (what the services return, and the API answers) kept the writer's earlier time.
    order = OrderFactory()
    ahead = timezone.now() + timedelta(hours=1)  # stamped by a server whose clock is ahead
    Order.objects.filter(pk=order.pk).update(updated_at=ahead)
    order.refresh_from_db()

    order.note = "clock behind"
    order.save()

    stored = Order.objects.get(pk=order.pk).updated_at
    assert stored == ahead + timedelta(microseconds=1)
    assert order.updated_at == stored


@pytest.mark.parametrize(
    "text",
    [
        "-jean",
        "(-jean)",
        "paul|-jean",
        "paul&-jean",
        "<-jean",
        '"paul"-jean',
        "paul\u00a0-jean",  # a no-break space
        "\u2013jean",  # en dash: unaccent makes it "-", as the em dash, minus sign, soft hyphen ...
        "\u2014jean",
        "\u2212jean",
        "\u00adjean",
        "\uff0djean",
        "\uffebjean",  # "->"
        "paul\uffe9 jean",  # "<-", after a word too
        "\u201cpaul\u201d-jean",  # quotation marks: '"'
        "\u02bapaul\u02ba-jean",  # a modifier letter that unaccent makes '"'
        "\u2474-jean",  # "(1)"
    ],
)
def test_a_name_search_never_hands_websearch_a_not(text):
    # websearch_to_tsquery reads "-" as NOT after a space, an operator or a quote, and
    # okada_search_query reads the text unaccented too: a NOT-only query matches nearly every
    # name, read from every customer (orders.models.customer_name_matches).
    param, *_ = customer_name_matches(text).params
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {SEARCH_QUERY}::text", [param])
        query = cursor.fetchone()[0]
    assert "!" not in query and "jean" in query, (param, query)


def test_a_name_search_keeps_a_hyphenated_name_whole():
    param, *_ = customer_name_matches("Jean-Pierre x-y \u00e9-b").params
    assert param == "Jean-Pierre x-y \u00e9-b"
