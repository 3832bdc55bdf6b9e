"""Query counts of the main admin pages: fixed, whatever the number of rows shown.

Each page is read with a few rows, then with many more; the count must not move (related rows
come in the same query) and stays under a ceiling that would catch a new per-row query.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from okada.core.models import JobRun
from okada.core.roles import OPERATIONS
from orders.services import order_add_note, payment_record
from tests.catalog.factories import ProductFactory, VendorFactory, role_user, staff_actor
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def add_rows(vendor, n: int) -> None:
    for _ in range(n):
        product = ProductFactory(vendor=vendor, initial_stock=5)
        order: Any = OrderFactory(vendor=vendor, items=[(product, 1)])
        payment_record(
            order=order,
            provider="cash",
            amount_xaf=order.total_xaf,
            actor=staff_actor(),
            status="succeeded",
            idempotency_key=f"cash:{order.pk}",
        )
        order_add_note(order=order, note="appel", actor=staff_actor())
        JobRun.objects.create(name=f"job.{order.number}", outcome="success")


def count(client, url: str) -> int:
    client.get(url)  # warms the process-wide caches (content types), as in a running server
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


LISTS = [
    "/admin/",
    "/admin/orders/order/",
    "/admin/orders/order/?q=Client",
    "/admin/orders/order/queue/",
    "/admin/orders/orderevent/",
    "/admin/orders/payment/",
    "/admin/orders/customer/",
    "/admin/catalog/product/",
    "/admin/catalog/product/?q=produit",
    "/admin/catalog/stock/",
    "/admin/catalog/stockmovement/",
    "/admin/catalog/vendor/",
    "/admin/catalog/category/",
    "/admin/core/jobrun/",
]
CEILING = 25


def test_lists_and_dashboard_make_the_same_few_queries_for_3_or_15_rows(client, settings):
    settings.OKADA_DASHBOARD_CACHE_SECONDS = 0  # count the dashboard's queries, not its cache hits
    vendor = VendorFactory()
    add_rows(vendor, 3)
    client.force_login(role_user(OPERATIONS))
    few = {url: count(client, url) for url in LISTS}
    add_rows(vendor, 12)
    many = {url: count(client, url) for url in LISTS}
    # The ledger reads a page among the last month's movements first, and the whole ledger when
    # those do not fill it (NewestFirstPaginator): one statement more while it is shorter than a
    # page, as here with 3 orders' movements.
    ledger = "/admin/catalog/stockmovement/"
    assert few.pop(ledger) == many.pop(ledger) + 1
    assert many == few
    assert max(many.values()) <= CEILING, many


def test_change_pages_make_the_same_few_queries_for_small_and_large_objects(client):
    def pages(vendor, order, product):
        return [
            f"/admin/orders/order/{order.pk}/change/",
            f"/admin/catalog/product/{product.pk}/change/",
            f"/admin/catalog/vendor/{vendor.pk}/change/",
            f"/admin/orders/customer/{order.customer_id}/change/",
            f"/admin/orders/order/{order.pk}/history/",
        ]

    client.force_login(role_user(OPERATIONS))
    small_vendor = VendorFactory()
    small_product = ProductFactory(vendor=small_vendor, initial_stock=5)
    small_order = OrderFactory(vendor=small_vendor, items=[(small_product, 1)])
    few = [count(client, url) for url in pages(small_vendor, small_order, small_product)]

    big_vendor = VendorFactory()
    products = [ProductFactory(vendor=big_vendor, initial_stock=10) for _ in range(8)]
    big_order = OrderFactory(vendor=big_vendor, items=[(p, 1) for p in products])
    for i in range(5):
        order_add_note(order=big_order, note="relance", actor=staff_actor())
        payment_record(
            order=big_order,
            provider="cash",
            amount_xaf=100,
            actor=staff_actor(),
            status="succeeded",
            idempotency_key=f"cash:{i}",
        )
    for _ in range(5):
        OrderFactory(vendor=big_vendor, items=[(products[0], 1)])
    many = [count(client, url) for url in pages(big_vendor, big_order, products[0])]
    assert many == few
    assert max(many) <= 40, many


BIG_LISTS = [
    "/admin/orders/order/",
    "/admin/orders/orderevent/",
    "/admin/orders/payment/",
    "/admin/orders/customer/",
    "/admin/catalog/product/",
    "/admin/catalog/stock/",
    "/admin/catalog/stockmovement/",
    "/admin/sync/mutation/",
]


@pytest.mark.parametrize("url", BIG_LISTS)
def test_the_big_lists_offer_no_counts_per_filter_choice(client, admin_user, url):
    # Django's "Show counts" link (?_facets=True) counts the whole table once per choice of
    # every filter (statuses, payment, city...): seconds on a million orders.
    client.force_login(admin_user)
    assert "_facets=True" not in client.get(url).content.decode()
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(f"{url}?_facets=True").status_code == 200
    app, model = url.strip("/").split("/")[1:]
    table = f'"{app}_{model}"'
    assert not [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper() and table in q["sql"]]
