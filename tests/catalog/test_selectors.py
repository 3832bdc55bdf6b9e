"""catalog.selectors: the stock audit (ledger vs stock) and the vendor's product list."""

from __future__ import annotations

import pytest
from django.db import connection

from catalog.apis import PRODUCT_ORDERINGS
from catalog.models import STOREFRONT_SORT_INDEXES, Stock, StockMovement
from catalog.selectors import (
    StockMismatch,
    _product_page_sql,
    newest_products,
    product_list_for_vendor,
    product_page,
    stock_audit,
)
from catalog.services import (
    product_soft_delete,
    product_update,
    stock_adjust,
    stock_count,
)
from okada.core.actors import Actor
from orders.models import OrderStatus, PaymentMethod
from orders.services import OutOfStock, order_cancel, order_transition
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory, staff_actor
from tests.orders.factories import OrderFactory, advance
from tests.plans import plan_nodes

pytestmark = pytest.mark.django_db

S = OrderStatus


def test_the_ledger_sums_to_the_stock_after_a_mixed_sequence_of_service_calls():
    staff = staff_actor()
    vendor = VendorFactory()
    a = ProductFactory(vendor=vendor, sku="A", initial_stock=10)
    b = ProductFactory(vendor=vendor, sku="B")
    c = ProductFactory(vendor=vendor, sku="C", initial_stock=5)
    other_vendor_product = ProductFactory(initial_stock=7)

    stock_adjust(product=a, delta=5, kind="restock", reason="delivery", actor=staff)
    stock_adjust(product=b, delta=20, kind="restock", reason="delivery", actor=staff)
    stock_adjust(product=c, delta=-1, reason="broken", actor=staff)
    stock_count(product=b, on_hand=18, expected_on_hand=20, actor=staff)

    delivered = advance(OrderFactory(vendor=vendor, items=[(a, 3), (b, 2)]), S.DELIVERED)
    order_cancel(order=OrderFactory(vendor=vendor, items=[(a, 1)]), actor=staff)
    late = OrderFactory(vendor=vendor, items=[(c, 2)], payment_method=PaymentMethod.MTN_MOMO)
    order_transition(order=late, to=S.EXPIRED, actor=Actor.system("test"))
    OrderFactory(vendor=vendor, items=[(b, 5)])  # stays pending: reserved
    advance(
        OrderFactory(vendor=other_vendor_product.vendor, items=[(other_vendor_product, 7)]),
        S.OUT_FOR_DELIVERY,
    )
    with pytest.raises(OutOfStock):
        OrderFactory(vendor=vendor, items=[(a, 1), (b, 100)])
    product_update(product=a, data={"price_xaf": 1100}, actor=staff)
    product_soft_delete(product=c, actor=staff)
    stock_adjust(product=a, delta=1, kind="return", reason="client returned it", actor=staff)
    order_transition(order=delivered, to=S.REFUNDED, actor=staff)

    stocks = {s.product.sku: (s.on_hand, s.reserved) for s in Stock.objects.select_related("product")}
    assert stocks["A"] == (10 + 5 - 3 + 1, 0)
    assert stocks["B"] == (18 - 2, 5)
    assert stocks["C"] == (4, 0)
    assert stocks[other_vendor_product.sku] == (0, 0)
    assert stock_audit() == []
    assert stock_audit(vendor=vendor) == []


def test_stock_audit_reports_a_stock_row_corrupted_behind_the_ledgers_back():
    product = ProductFactory(initial_stock=10)
    OrderFactory(vendor=product.vendor, items=[(product, 2)])
    healthy = ProductFactory(initial_stock=3)
    assert stock_audit() == []

    with connection.cursor() as cur:
        cur.execute("UPDATE catalog_stock SET on_hand = on_hand + 5 WHERE product_id = %s", [product.pk])

    assert stock_audit() == [
        StockMismatch(product_id=product.pk, on_hand=15, ledger_on_hand=10, reserved=2, ledger_reserved=2)
    ]
    assert stock_audit(vendor=healthy.vendor) == []
    assert [m.product_id for m in stock_audit(vendor=product.vendor)] == [product.pk]


def test_stock_audit_reports_reserved_units_the_ledger_does_not_know_about():
    product = ProductFactory(initial_stock=10)
    Stock.objects.filter(product=product).update(reserved=4)  # a raw write, no movement
    [mismatch] = stock_audit()
    assert (mismatch.reserved, mismatch.ledger_reserved) == (4, 0)
    assert (mismatch.on_hand, mismatch.ledger_on_hand) == (10, 10)


def test_stock_audit_reports_a_movement_without_a_stock_change():
    product = ProductFactory(initial_stock=10)
    StockMovement.objects.bulk_create(
        [StockMovement(product_id=product.pk, vendor_id=product.vendor_id, delta=3, kind="restock")]
    )
    [mismatch] = stock_audit()
    assert (mismatch.product_id, mismatch.on_hand, mismatch.ledger_on_hand) == (product.pk, 10, 13)


def test_stock_audit_counts_a_product_with_stock_but_no_movement_as_a_mismatch():
    product = ProductFactory()
    Stock.objects.filter(product=product).update(on_hand=1)
    assert [m.product_id for m in stock_audit()] == [product.pk]


def test_product_list_for_vendor_lists_only_the_vendors_live_products():
    vendor = VendorFactory()
    active = ProductFactory(vendor=vendor, name="Ananas")
    inactive = ProductFactory(vendor=vendor, name="Banane", is_active=False)
    gone = ProductFactory(vendor=vendor, name="Citron")
    product_soft_delete(product=gone, actor=staff_actor())
    ProductFactory(name="Other vendor's")

    assert list(product_list_for_vendor(vendor=vendor)) == [active, inactive]
    assert list(product_list_for_vendor(vendor=vendor, is_active=True)) == [active]
    assert list(product_list_for_vendor(vendor=vendor, is_active=False)) == [inactive]


def test_product_list_for_vendor_searches_with_q():
    vendor = VendorFactory()
    cream = ProductFactory(vendor=vendor, name="Crème fraîche")
    ProductFactory(vendor=vendor, name="Plantains mûrs")
    ProductFactory(name="Crème glacée")  # another vendor's
    assert list(product_list_for_vendor(vendor=vendor, q="creme")) == [cream]


def test_newest_products_are_the_vendors_live_products_last_created_first():
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=i) for i in range(4)]
    product_soft_delete(product=products[1], actor=staff_actor())
    ProductFactory()  # another vendor's, newer

    assert newest_products(vendor=vendor, limit=2) == [products[3], products[2]]
    assert newest_products(vendor=vendor, limit=10) == [products[3], products[2], products[0]]


@pytest.mark.parametrize("rows", [1, 6])
def test_newest_products_take_one_query_with_stock_and_category(rows, django_assert_max_num_queries):
    vendor = VendorFactory()
    for _ in range(rows):
        ProductFactory(vendor=vendor, category=CategoryFactory(), initial_stock=3)

    with django_assert_max_num_queries(1):
        shown = [
            (p.name, p.stock.available, p.category and p.category.name_fr)
            for p in newest_products(vendor=vendor)
        ]

    assert len(shown) == rows


@pytest.mark.parametrize("rows", [1, 6])
def test_product_list_for_vendor_takes_one_query_for_any_number_of_rows(rows, django_assert_max_num_queries):
    vendor = VendorFactory()
    category = CategoryFactory()
    for _ in range(rows):
        ProductFactory(vendor=vendor, category=category, initial_stock=3)

    with django_assert_max_num_queries(1):
        shown = [
            (p.sku, p.stock.on_hand, p.stock.reserved, p.category.name_fr if p.category else "")
            for p in product_list_for_vendor(vendor=vendor)
        ]

    assert len(shown) == rows


@pytest.mark.parametrize("rows", [1, 6])
def test_stock_audit_takes_one_query_for_any_number_of_mismatches(rows, django_assert_max_num_queries):
    products = [ProductFactory(initial_stock=2) for _ in range(rows)]
    Stock.objects.filter(product__in=products).update(on_hand=5)  # raw writes, no movements

    with django_assert_max_num_queries(1):
        mismatches = stock_audit()

    assert len(mismatches) == rows


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("ordering", PRODUCT_ORDERINGS)
def test_the_storefront_list_of_the_whole_marketplace_reads_an_index_in_every_ordering(ordering, after):
    """Without a vendor, the storefront's list holds every orderable product: a page must come
    from an index in its order, not from a sort of all of them (about a second on a million)."""
    for i in range(3):
        ProductFactory(name=f"Produit {i}")
    sql = _product_page_sql(
        vendor=False,
        orderable=True,
        search=False,
        is_active=False,
        category=False,
        updated_since=False,
        ordering=ordering,
        after=after,
    )
    key = ordering.lstrip("-")
    after_key: dict[str, int | str] = {
        "price_xaf": 1,
        "updated_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
    params: dict[str, int | str] = {
        "active": "active",
        "after_key": after_key.get(key, "a"),
        "after_id": "00000000-0000-0000-0000-000000000000",
        "limit": 51,
    }
    nodes = plan_nodes(sql, params)
    assert not [n["Node Type"] for n in nodes if "Sort" in n["Node Type"]], nodes
    scans = [n.get("Index Name") for n in nodes if n.get("Relation Name") == "catalog_product"]
    assert scans == [f"catalog_product_shop_{dict(STOREFRONT_SORT_INDEXES)[key]}"], nodes


def test_the_storefront_asking_for_inactive_products_gets_an_empty_page_without_a_query(
    django_assert_num_queries,
):
    ProductFactory(is_active=False)
    ProductFactory()
    with django_assert_num_queries(0):
        assert product_page(vendor_id=None, orderable=True, is_active=False, limit=50) == []
    assert len(product_page(vendor_id=None, orderable=True, is_active=True, limit=50)) == 1
