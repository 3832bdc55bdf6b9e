"""orders.audit: each invariant check finds a real inconsistency written with raw SQL, and a
marketplace kept by the services passes them all."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection

from catalog.models import Product
from okada.core.actors import Actor
from orders.audit import CHECKS, invariant_audit
from orders.models import Order, OrderStatus, PaymentMethod
from orders.services import order_transition, payment_apply_callback, payment_record
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory, order_in_status

pytestmark = pytest.mark.django_db

S = OrderStatus
STAFF = Actor(role=Actor.STAFF, label="audit-test")


def sql(statement: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def only(check: str, count: int) -> dict[str, int]:
    return dict.fromkeys(CHECKS, 0) | {check: count}


def pay(order: Order, reference: str, amount: int) -> None:
    """A mobile-money request and its successful callback."""
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference=reference,
        amount_xaf=order.total_xaf,
        actor=STAFF,
    )
    payment_apply_callback(
        provider=PaymentMethod.MTN_MOMO,
        provider_reference=reference,
        status="succeeded",
        amount_xaf=amount,
        payload={},
    )


@pytest.fixture
def shop() -> dict[str, Any]:
    """Orders in every status, paid and unpaid, flagged refunds: all written by the services."""
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=50) for _ in range(3)]
    items = [(products[0], 1), (products[1], 2)]
    orders = {status: order_in_status(status, vendor=vendor, items=items) for status in S.values}
    momo_pending = OrderFactory.create(vendor=vendor, items=items, payment_method=PaymentMethod.MTN_MOMO)
    momo_paid = OrderFactory.create(
        vendor=vendor, items=[(products[2], 3)], payment_method=PaymentMethod.MTN_MOMO
    )
    pay(momo_paid, "TX-1", momo_paid.total_xaf)
    pay(momo_paid, "TX-2", 700)  # overpaid: flagged for a refund, still consistent
    order_transition(order=momo_paid, to=S.ACCEPTED, actor=STAFF)
    late = OrderFactory.create(vendor=vendor, items=items, payment_method=PaymentMethod.ORANGE_MONEY)
    order_transition(order=late, to=S.EXPIRED, actor=Actor.system("test"))
    pay(late, "TX-3", late.total_xaf)  # money after expiry: paid, flagged
    return {
        "products": products,
        "orders": orders,
        "momo_pending": momo_pending,
        "momo_paid": momo_paid,
        "paid_late": late,
    }


def test_a_marketplace_kept_by_the_services_passes_every_check(shop, caplog):
    report = invariant_audit()
    assert report.counts == dict.fromkeys(CHECKS, 0)
    assert (report.findings, report.samples) == (0, {})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_stock_that_differs_from_its_ledger_is_found_and_logged_at_error(shop, caplog):
    product: Product = shop["products"][1]
    sql("UPDATE catalog_stock SET on_hand = on_hand + 3 WHERE product_id = %s", [product.pk])

    report = invariant_audit()

    assert report.counts == only("stock_vs_ledger", 1)
    [row] = report.samples["stock_vs_ledger"]
    assert (row["product_id"], row["on_hand"] - row["ledger_on_hand"]) == (str(product.pk), 3)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "stock_vs_ledger" in record.getMessage()


def test_a_subtotal_that_is_not_the_sum_of_the_line_totals_is_found(shop):
    order = shop["orders"][S.DELIVERED]  # cash, unpaid: a higher total stays unpaid
    sql(
        "UPDATE orders_order SET subtotal_xaf = subtotal_xaf + 100, total_xaf = total_xaf + 100"
        " WHERE id = %s",
        [order.pk],
    )

    report = invariant_audit()

    assert report.counts == only("order_subtotals", 1)
    [row] = report.samples["order_subtotals"]
    assert (row["order_id"], row["subtotal_xaf"] - row["items_total_xaf"]) == (str(order.pk), 100)


def test_a_total_that_is_not_subtotal_plus_fee_is_found(shop):
    # The CHECK constraint guards this; the audit must still see it (e.g. a restored old dump).
    order = shop["orders"][S.PREPARING]
    sql("SET CONSTRAINTS ALL IMMEDIATE", [])  # ALTER TABLE waits for no deferred checks
    sql("ALTER TABLE orders_order DROP CONSTRAINT orders_order_total_sum", [])  # rolled back with the test
    sql("UPDATE orders_order SET total_xaf = total_xaf - 1 WHERE id = %s", [order.pk])

    report = invariant_audit()

    assert report.counts == only("order_totals", 1)
    assert report.samples["order_totals"][0]["number"] == order.number


def test_reserved_stock_that_no_open_order_holds_is_found(shop):
    order = shop["orders"][S.READY]  # cash: cancelled behind the services' back, stock not released
    sql("UPDATE orders_order SET status = 'cancelled' WHERE id = %s", [order.pk])

    report = invariant_audit()

    assert report.counts == only("reserved_vs_open_orders", 2)
    held = {
        row["product_id"]: row["reserved"] - row["held"] for row in report.samples["reserved_vs_open_orders"]
    }
    assert held == {str(shop["products"][0].pk): 1, str(shop["products"][1].pk): 2}


@pytest.mark.parametrize(("which", "payment_status"), [("momo_pending", "paid"), ("paid_late", "unpaid")])
def test_a_payment_status_the_payments_do_not_support_is_found(shop, which, payment_status):
    order = shop[which]
    sql("UPDATE orders_order SET payment_status = %s WHERE id = %s", [payment_status, order.pk])

    report = invariant_audit()

    assert report.counts == only("paid_vs_payments", 1)
    [row] = report.samples["paid_vs_payments"]
    assert (row["number"], row["payment_status"]) == (order.number, payment_status)


def test_a_refunded_payment_status_on_an_order_not_refunded_is_found(shop):
    order = shop["momo_paid"]
    sql("UPDATE orders_order SET payment_status = 'refunded' WHERE id = %s", [order.pk])
    assert invariant_audit().counts == only("paid_vs_payments", 1)


def test_an_unpaid_mobile_money_order_past_pending_is_found(shop):
    order = shop["momo_pending"]  # accepted by a vendor behind the rule (legacy data)
    sql("UPDATE orders_order SET status = 'accepted' WHERE id = %s", [order.pk])

    report = invariant_audit()

    assert report.counts == only("unpaid_mobile_money_past_pending", 1)
    assert report.samples["unpaid_mobile_money_past_pending"][0]["number"] == order.number
