"""The capture triggers: every write path to a synced table lands in the change feed."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from catalog.models import Category, Product, Stock
from catalog.services import product_soft_delete, product_upsert_many, stock_adjust
from okada.core.actors import Actor
from orders.models import Order, OrderItem, Payment, Zone
from sync import feed
from sync.models import Change
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory, ZoneFactory

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(role=Actor.STAFF, label="ops")


def feed_rows(entity: str) -> list[tuple[str | None, set[str]]]:
    code = feed.BY_NAME[entity].code
    return [
        (str(c.vendor_id) if c.vendor_id else None, {str(i) for i in c.row_ids})
        for c in Change.objects.filter(entity=code).order_by("xid", "id")
    ]


def ids_in_feed(entity: str) -> set[str]:
    return {i for _v, ids in feed_rows(entity) for i in ids}


def test_every_synced_table_has_its_three_capture_triggers():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname, count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE %s AND NOT t.tgisinternal GROUP BY 1",
            [feed.TRIGGER_PREFIX + "%"],
        )
        triggers = dict(cur.fetchall())
    assert triggers == {e.table: 3 for e in feed.ENTITIES}


def test_placing_an_order_writes_one_feed_row_per_table_with_the_vendor():
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=5) for _ in range(3)]
    Change.objects.all().delete()

    order = OrderFactory(vendor=vendor, items=[(p, 1) for p in products])

    items = {str(pk) for pk in OrderItem.objects.filter(order=order).values_list("pk", flat=True)}
    stocks = {str(pk) for pk in Stock.objects.filter(product__in=products).values_list("pk", flat=True)}
    assert feed_rows("orders") == [(str(vendor.pk), {str(order.pk)})]
    assert feed_rows("order_items") == [(str(vendor.pk), items)]
    assert feed_rows("stock") == [(str(vendor.pk), stocks)]
    placing = Change.objects.get(entity=feed.BY_NAME["orders"].code).xid
    assert Change.objects.filter(xid=placing).count() == 3  # one transaction, three feed rows


def test_conditional_updates_querysets_and_raw_sql_are_captured():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    other = ProductFactory(vendor=vendor)
    zone = ZoneFactory()
    Change.objects.all().delete()

    stock_adjust(product=product, delta=1, reason="x", actor=STAFF)  # a conditional UPDATE
    Product.objects.filter(pk=other.pk).update(name="QuerySet.update")  # no service at all
    with connection.cursor() as cur:
        cur.execute("UPDATE orders_zone SET name = 'SQL' WHERE id = %s", [zone.pk])

    assert ids_in_feed("stock") == {str(Stock.objects.get(product=product).pk)}
    assert ids_in_feed("products") == {str(other.pk)}
    assert feed_rows("zones") == [(None, {str(zone.pk)})]  # shared: every device


def test_a_copy_writes_one_feed_row_per_thousand_rows():
    zone_count = 2500
    Change.objects.all().delete()
    with (
        connection.cursor() as cur,
        cur.cursor.copy(
            "COPY orders_zone (id, created_at, updated_at, deleted_by_cascade, city, name, delivery_fee_xaf) "
            "FROM STDIN"
        ) as copy,
    ):
        for n in range(zone_count):
            copy.write_row((okada_uuid(), "now", "now", False, "douala", f"Zone {n}", 500))

    chunks = feed_rows("zones")
    assert sorted(len(ids) for _v, ids in chunks) == [500, 1000, 1000]  # one statement, one xid
    assert len(set().union(*(ids for _v, ids in chunks))) == zone_count == Zone.objects.count()


def okada_uuid():
    from okada.core.ids import uuid7

    return uuid7()


def test_deleting_a_product_also_puts_its_stock_in_the_feed_and_a_hard_delete_is_captured():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    stock = Stock.objects.get(product=product)
    Change.objects.all().delete()

    product_soft_delete(product=product, actor=STAFF)

    assert ids_in_feed("products") == {str(product.pk)}
    assert ids_in_feed("stock") == {str(stock.pk)}
    Change.objects.all().delete()
    with transaction.atomic():
        Product.all_objects.get(pk=product.pk).hard_delete(reason="test")
    assert ids_in_feed("products") == {str(product.pk)}
    assert ids_in_feed("stock") == {str(stock.pk)}


def test_payments_and_items_are_captured_with_their_orders_vendor():
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    Change.objects.all().delete()

    payment = Payment.objects.create(order=order, provider="cash", provider_reference="c-1", amount_xaf=10)

    assert feed_rows("payments") == [(str(vendor.pk), {str(payment.pk)})]


def test_a_rolled_back_transaction_leaves_nothing_in_the_feed():
    vendor = VendorFactory()
    Change.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        ProductFactory(vendor=vendor)
        raise RuntimeError("rolled back")
    assert not Change.objects.exists()


def test_a_category_change_reaches_every_vendor():
    category = CategoryFactory()
    Change.objects.all().delete()
    Category.objects.filter(pk=category.pk).update(name_fr="Épicerie")
    assert feed_rows("categories") == [(None, {str(category.pk)})]


def test_feed_rows_of_one_transaction_share_its_id_and_later_transactions_have_larger_ones():
    vendor = VendorFactory()
    Change.objects.all().delete()
    with transaction.atomic():
        a = ProductFactory(vendor=vendor)
        b = ProductFactory(vendor=vendor)
    c = ProductFactory(vendor=vendor)
    xids = {
        str(p.pk): Change.objects.get(entity=feed.BY_NAME["products"].code, row_ids__contains=[p.pk]).xid
        for p in (a, b, c)
    }
    assert xids[str(a.pk)] == xids[str(b.pk)] < xids[str(c.pk)]
    assert Order.objects.count() == 0


def test_the_installed_capture_functions_are_the_ones_the_code_describes():
    """Migration 0002 froze the SQL; a change to sync.feed needs a migration that installs it."""
    import re

    with connection.cursor() as cur:
        for entity in feed.ENTITIES:
            cur.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [feed.function_name(entity)])
            installed = cur.fetchone()[0]
            described = re.search(r"AS \$\$(.*?)\$\$;", feed.capture_sql(entity), re.S)
            assert described is not None and installed == described.group(1), entity.name


def test_a_bulk_upsert_lands_in_the_feed_one_row_per_statement():
    # The set-based upsert writes its new products, their stock and its updates in one statement
    # each: every id is in the feed, in a feed row per statement (not per item).
    vendor = VendorFactory()
    old = [ProductFactory(vendor=vendor, sku=f"OLD-{i}", price_xaf=100) for i in range(5)]
    Change.objects.all().delete()
    items = [{"sku": p.sku, "price_xaf": 150} for p in old] + [
        {"sku": f"NEW-{i}", "name": "Nouveau", "price_xaf": 100, "initial_stock": 1} for i in range(5)
    ]

    product_upsert_many(vendor=vendor, items=items, actor=STAFF, atomic=False)

    products = {str(pk) for pk in Product.objects.filter(vendor=vendor).values_list("pk", flat=True)}
    new = {
        str(pk)
        for pk in Product.objects.filter(vendor=vendor, sku__startswith="NEW").values_list("pk", flat=True)
    }
    new_stock = {str(pk) for pk in Stock.objects.filter(product_id__in=new).values_list("pk", flat=True)}
    assert ids_in_feed("products") == products
    assert len(feed_rows("products")) == 2  # the insert, the update
    assert feed_rows("stock") == [(str(vendor.pk), new_stock)]
