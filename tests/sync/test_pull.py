"""Pulls against the real database, with real commits (transaction=True): the snapshot horizon
only moves past committed transactions, so these tests commit like production does."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.core import signing
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Product, Stock
from catalog.services import product_restore, product_soft_delete, product_update, stock_adjust
from okada.core.actors import Actor
from okada.core.services import bulk_create_tracked, bulk_update_tracked
from orders.models import Order, OrderItem, Payment
from orders.services import order_transition
from sync import feed
from sync import pull as sync_pull
from sync.models import ConflictStatus, SyncConflict
from sync.pull import pull
from sync.services import (
    KEEP_SERVER,
    DeviceRevoked,
    conflict_resolve,
    device_revoke,
    generation_current,
    generation_rotate,
)
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory, ZoneFactory
from tests.plans import plan_nodes
from tests.sync.factories import WAIT, Phone

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(role=Actor.STAFF, label="ops")


def bulk_products(vendor, count: int, prefix: str = "B") -> list[Product]:
    """`count` products with their stock rows, in two statements (setup for large pages)."""
    products = bulk_create_tracked(
        Product,
        [
            Product(vendor=vendor, sku=f"{prefix}-{n:05d}", name=f"Article {n}", price_xaf=500)
            for n in range(count)
        ],
    )
    Stock.objects.bulk_create([Stock(product=p, vendor=vendor) for p in products])
    return products


def test_initial_download_brings_the_vendors_rows_and_the_shared_ones():
    vendor = VendorFactory()
    category = CategoryFactory()
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10, category=category)
    order = OrderFactory(vendor=vendor, zone=zone, items=[(product, 2)])
    phone = Phone(vendor)

    assert phone.pull_all() == 1
    assert set(phone.copy("products")) == {str(product.pk)}
    assert phone.copy("products")[str(product.pk)]["category_id"] == str(category.pk)
    stock = Stock.objects.get(product=product)
    assert phone.copy("stock")[str(stock.pk)]["reserved"] == 2
    assert phone.copy("orders")[str(order.pk)]["status"] == "pending"
    assert phone.copy("orders")[str(order.pk)]["customer_phone"] == order.customer.phone
    item = OrderItem.objects.get(order=order)
    assert phone.copy("order_items")[str(item.pk)]["quantity"] == 2
    assert str(category.pk) in phone.copy("categories")
    assert str(zone.pk) in phone.copy("zones")
    assert set(phone.copy("vendors")) == {str(vendor.pk)}


def test_a_device_receives_only_the_fields_its_schema_needs():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    row = phone.copy("products")[str(product.pk)]
    assert "search_vector" not in row and "deleted_at" not in row and "vendor_id" not in row
    assert set(row) == {name for name, _ in feed.BY_NAME["products"].fields}


def test_a_payment_reaches_the_device_with_what_arrived_and_the_refund_owed():
    # A success for less than asked does not pay the order: the device must see what arrived.
    from orders.services import payment_apply_callback, payment_record

    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor, payment_method="mtn_momo")
    payment_record(
        order=order,
        provider="mtn_momo",
        provider_reference="MTN-SYNC-1",
        amount_xaf=order.total_xaf,
        actor=Actor(role=Actor.STOREFRONT, label="web"),
    )
    payment_apply_callback(
        provider="mtn_momo", provider_reference="MTN-SYNC-1", status="succeeded", amount_xaf=100, payload={}
    )
    phone = Phone(vendor)
    phone.pull_all()
    [row] = phone.copy("payments").values()
    assert (row["amount_xaf"], row["status"], row["received_xaf"], row["needs_refund"]) == (
        order.total_xaf,
        "succeeded",
        100,
        True,
    )
    assert phone.copy("orders")[str(order.pk)]["payment_status"] == "unpaid"


def test_an_order_reaches_the_device_with_the_name_it_was_placed_with_not_the_customers():
    # A vendor's phone order for a number whose customer it never had: its devices must not
    # learn the name the marketplace holds for that number (orders migration 0029).
    from orders.services import order_place_for_phone
    from tests.catalog.factories import vendor_actor
    from tests.orders.factories import CustomerFactory

    awa = CustomerFactory(phone="+237677000111", name="Awa Mbarga")
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    placed = order_place_for_phone(
        vendor_id=vendor.pk,
        phone="+237677000111",
        name="X Y",
        zone_id=ZoneFactory(city=vendor.city).pk,
        items=[(product.pk, 1)],
        payment_method="cash",
        channel="phone",
        address="Akwa",
        actor=vendor_actor(vendor),
    )
    assert placed.order.customer_id == awa.pk
    # Placed before names were kept (no backfill: ''): the customer's name, as before.
    old = OrderFactory(vendor=vendor, customer=awa)
    Order.objects.filter(pk=old.pk).update(customer_name="")

    changed = phone.pull()["changes"]["orders"]["upserted"]
    assert {r["id"]: r["customer_name"] for r in changed} == {
        str(placed.order.pk): "X Y",
        str(old.pk): "Awa Mbarga",
    }
    downloaded = Phone(vendor, name="Caisse 2")
    downloaded.pull_all()
    assert {i: r["customer_name"] for i, r in downloaded.copy("orders").items()} == {
        str(placed.order.pk): "X Y",
        str(old.pk): "Awa Mbarga",
    }


def test_changes_after_the_download_arrive_once_each_with_the_current_row():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    for n in range(5):
        product = product_update(product=product, data={"name": f"Nom {n}"}, actor=STAFF)
    stock_adjust(product=product, delta=3, reason="livraison", actor=STAFF)

    page = phone.pull()

    assert [r["name"] for r in page["changes"]["products"]["upserted"]] == ["Nom 4"]
    assert [r["on_hand"] for r in page["changes"]["stock"]["upserted"]] == [13]
    assert page["has_more"] == {"0": False, "1": False, "2": False}
    assert phone.pull()["changes"] == {}  # nothing new: nothing sent


def test_a_transaction_that_began_before_a_pull_and_commits_after_it_arrives_with_the_next_pull():
    vendor = VendorFactory()
    slow_product = ProductFactory(vendor=vendor)
    fast_product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    written, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                product_update(product=slow_product, data={"name": "Lent"}, actor=STAFF)
                written.set()
                assert release.wait(WAIT)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert written.wait(WAIT)
        # A later transaction commits while the slow one is still open: a feed ordered by
        # commit or by id alone would serve it now and move the cursor past the slow one.
        product_update(product=fast_product, data={"name": "Rapide"}, actor=STAFF)
        page = phone.pull()
        assert "products" not in page["changes"]  # both wait for the slow transaction's end
        assert phone.copy("products")[str(slow_product.pk)]["name"] == slow_product.name
    finally:
        release.set()
        thread.join(WAIT)

    page = phone.pull()

    names = {r["id"]: r["name"] for r in page["changes"]["products"]["upserted"]}
    assert names == {str(slow_product.pk): "Lent", str(fast_product.pk): "Rapide"}


def test_a_1200_row_transaction_arrives_in_whole_pages_with_no_loss_or_duplicate():
    vendor = VendorFactory()
    products = bulk_products(vendor, 1200)
    phone = Phone(vendor, limit=500)
    phone.pull_all()
    for p in products:
        p.name = f"{p.name} (nouveau)"
    with transaction.atomic():
        bulk_update_tracked(Product, products, ["name"])

    pages = [phone.pull() for _ in range(3)]

    served = [r["id"] for page in pages for r in page["changes"]["products"]["upserted"]]
    assert [len(page["changes"]["products"]["upserted"]) for page in pages] == [500, 500, 200]
    assert len(served) == len(set(served)) == 1200
    assert [page["has_more"]["1"] for page in pages] == [True, True, False]
    assert all(r["name"].endswith("(nouveau)") for r in phone.copy("products").values())


def test_the_initial_download_of_1200_products_comes_in_whole_pages():
    vendor = VendorFactory()
    bulk_products(vendor, 1200)
    phone = Phone(vendor, limit=500)

    phone.pull_all()

    product_pages = [len(p["changes"].get("products", {}).get("upserted", [])) for p in phone.pages]
    stock_pages = [len(p["changes"].get("stock", {}).get("upserted", [])) for p in phone.pages]
    assert all(
        sum(len(c["upserted"]) + len(c["deleted"]) for c in p["changes"].values()) <= 500 for p in phone.pages
    )
    assert sum(product_pages) == len(phone.copy("products")) == 1200
    assert sum(stock_pages) == len(phone.copy("stock")) == 1200


@override_settings(OKADA_SYNC_PAGE_MAX_BYTES=4000)
def test_pages_are_capped_by_bytes_and_lose_nothing():
    vendor = VendorFactory()
    bulk_products(vendor, 120)
    phone = Phone(vendor)

    phone.pull_all()

    assert len(phone.pages) > 5
    for page in phone.pages[:-1]:
        rows = [r for c in page["changes"].values() for r in c["upserted"]]
        assert len(rows) >= 1 and len(str(rows)) < 6000
    assert len(phone.copy("products")) == 120


def test_soft_delete_then_restore_arrive_as_delete_then_upsert():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=4)
    stock = Stock.objects.get(product=product)
    phone = Phone(vendor)
    phone.pull_all()

    product_soft_delete(product=product, actor=STAFF)
    deleted = phone.pull()
    product_restore(product=product, actor=STAFF)
    restored = phone.pull()

    assert deleted["changes"]["products"] == {"upserted": [], "deleted": [str(product.pk)]}
    assert deleted["changes"]["stock"] == {"upserted": [], "deleted": [str(stock.pk)]}  # follows it
    assert [r["id"] for r in restored["changes"]["products"]["upserted"]] == [str(product.pk)]
    assert restored["changes"]["products"]["deleted"] == []
    assert phone.copy("stock")[str(stock.pk)]["on_hand"] == 4


def test_an_orders_items_leave_and_come_back_with_it():
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    item = OrderItem.objects.get(order=order)
    phone = Phone(vendor)
    phone.pull_all()
    order = Order.objects.get(pk=order.pk)

    from orders.services import order_cancel

    order_cancel(order=order, actor=STAFF)
    with transaction.atomic():
        Order.objects.get(pk=order.pk).delete(reason="test")
    phone.pull_all()
    assert str(item.pk) not in phone.copy("order_items")
    assert str(order.pk) not in phone.copy("orders")

    with transaction.atomic():
        Order.deleted_objects.get(pk=order.pk).restore(reason="test")
    phone.pull_all()
    assert phone.copy("order_items")[str(item.pk)]["order_id"] == str(order.pk)
    assert phone.copy("orders")[str(order.pk)]["status"] == "cancelled"


def test_priority_0_arrives_before_a_10000_row_priority_2_backlog():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    order = OrderFactory(vendor=vendor, items=[(product, 1)])
    phone = Phone(vendor, limit=500)
    phone.pull_all()
    Payment.objects.bulk_create(
        [
            Payment(order=order, provider="cash", provider_reference=f"cash-{n}", amount_xaf=100)
            for n in range(10_000)
        ]
    )
    urgent = OrderFactory(vendor=vendor, items=[(product, 3)])

    first = phone.pull()

    assert [r["id"] for r in first["changes"]["orders"]["upserted"]] == [str(urgent.pk)]
    assert first["changes"]["stock"]["upserted"][0]["reserved"] == 4
    assert first["has_more"] == {"0": False, "1": False, "2": True}
    pages = 1 + phone.pull_all()
    assert len(phone.copy("payments")) == 10_000
    assert pages == 1 + 10_000 // 500


def test_the_initial_download_serves_priority_0_before_priority_2():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    order = OrderFactory(vendor=vendor, items=[(product, 1)])
    Payment.objects.bulk_create(
        [
            Payment(order=order, provider="cash", provider_reference=f"cash-{n}", amount_xaf=100)
            for n in range(30)
        ]
    )
    phone = Phone(vendor, limit=5)

    phone.pull_all()

    tables = [t for page in phone.pages for t in page["changes"]]
    assert tables.index("orders") < tables.index("payments")
    assert max(i for i, t in enumerate(tables) if t in ("orders", "order_items", "stock")) < min(
        i for i, t in enumerate(tables) if t == "payments"
    )
    assert len(phone.copy("payments")) == 30


def pushed_conflicts(vendor, count: int) -> list[SyncConflict]:
    """`count` open conflicts of the vendor, oldest first: sales of more than the shelf holds
    (impossible_stock), pushed by the vendor's till."""
    product = ProductFactory(vendor=vendor, initial_stock=1)
    till = Phone(vendor, "Caisse")
    sales = [till.mutation("stock.adjust", product_id=str(product.pk), delta=-5) for _ in range(count)]
    answer = till.push(*sales)
    assert [r["code"] for r in answer["results"]] == ["impossible_stock"] * count
    return [SyncConflict.objects.get(pk=r["conflict_id"]) for r in answer["results"]]


def made_long_ago(conflict: SyncConflict, *, days: float, resolved: bool = False) -> None:
    """The conflict as if pushed `days` days ago and, if `resolved`, settled by staff then."""
    at = timezone.now() - timedelta(days=days)
    settled = {"status": ConflictStatus.KEPT_SERVER, "resolved_at": at + timedelta(hours=1)}
    SyncConflict.objects.filter(pk=conflict.pk).update(created_at=at, **(settled if resolved else {}))


def operations_staff() -> Actor:
    from okada.core.roles import OPERATIONS
    from tests.catalog.factories import role_user

    return Actor.for_staff_user(role_user(OPERATIONS))


def test_a_new_device_downloads_the_open_conflicts_and_those_resolved_lately_not_every_one_ever():
    vendor = VendorFactory()
    open_old, open_new, lately, long_ago, just_too_old = pushed_conflicts(vendor, 5)
    made_long_ago(open_old, days=400)  # staff have yet to decide: the device shows it pending
    made_long_ago(lately, days=3, resolved=True)  # how a recent push ended
    made_long_ago(long_ago, days=400, resolved=True)
    made_long_ago(just_too_old, days=feed.CONFLICTS_RESOLVED_DAYS + 1, resolved=True)
    pushed_conflicts(VendorFactory(), 1)  # another vendor's
    phone = Phone(vendor, limit=2)

    phone.pull_all()

    conflicts = phone.copy("conflicts")
    assert set(conflicts) == {str(c.pk) for c in (open_old, open_new, lately)}
    assert {c["status"] for c in conflicts.values()} == {"open", "kept_server"}
    assert conflicts[str(lately.pk)]["resolved_at"] is not None


def test_every_later_change_of_a_conflict_reaches_the_device_as_an_upsert_downloaded_or_not():
    vendor = VendorFactory()
    held, long_ago = pushed_conflicts(vendor, 2)
    made_long_ago(held, days=400)
    made_long_ago(long_ago, days=400, resolved=True)
    phone = Phone(vendor)
    phone.pull_all()
    assert set(phone.copy("conflicts")) == {str(held.pk)}

    # The old conflict the device holds is resolved; the settled one it never downloaded is
    # changed (a data fix): both come as upserts, not as the delete of a row it may hold.
    conflict_resolve(conflict=held, resolution=KEEP_SERVER, actor=operations_staff(), note="recompté")
    SyncConflict.objects.filter(pk=long_ago.pk).update(resolution_note="corrigé", updated_at=timezone.now())
    page = phone.pull()

    assert page["changes"]["conflicts"]["deleted"] == []
    changed = {r["id"]: (r["status"], r["resolution_note"]) for r in page["changes"]["conflicts"]["upserted"]}
    assert changed == {
        str(held.pk): ("kept_server", "recompté"),
        str(long_ago.pk): ("kept_server", "corrigé"),
    }
    assert phone.copy("conflicts")[str(held.pk)]["status"] == "kept_server"


def test_conflicts_resolved_while_the_download_runs_reach_the_device_resolved():
    vendor = VendorFactory()
    first, last = pushed_conflicts(vendor, 2)
    phone = Phone(vendor, limit=1)
    while str(first.pk) not in phone.copy("conflicts"):
        assert any(phone.pull()["has_more"].values())
    assert str(last.pk) not in phone.copy("conflicts")  # not downloaded yet

    staff = operations_staff()
    for conflict in (first, last):  # one already downloaded, one still ahead of the cursor
        conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff)
    phone.pull_all()

    assert {k: c["status"] for k, c in phone.copy("conflicts").items()} == {
        str(first.pk): "kept_server",
        str(last.pk): "kept_server",
    }


def paid_orders(vendor, count: int, prefix: str = "P") -> list[Payment]:
    """`count` orders of the vendor, each with a cash payment."""
    orders = [OrderFactory(vendor=vendor) for _ in range(count)]
    return Payment.objects.bulk_create(
        [
            Payment(order=o, provider="cash", provider_reference=f"{prefix}-{vendor.pk}-{n}", amount_xaf=100)
            for n, o in enumerate(orders)
        ]
    )


PAYMENTS = feed.DOWNLOAD[2].index(feed.BY_NAME["payments"])  # the payments' table in priority 2


def cursor_body(token: str | None) -> dict | None:
    return None if token is None else signing.loads(token, key=sync_pull._key(), salt=sync_pull.SALT)


def in_payments_download(token: str | None) -> bool:
    """The priority 2 cursor is in the payments download, past its first page."""
    body = cursor_body(token)
    return bool(body and body.get("d") and body["t"] == PAYMENTS and body["k"])


def vendor_payments(vendor) -> set[str]:
    return {str(pk) for pk in Payment.objects.filter(order__vendor=vendor).values_list("pk", flat=True)}


def test_a_payments_download_page_walks_the_vendors_orders_index_then_each_ones_payments():
    """Payments have no vendor column. Keyed by their id, a page walked every vendor's payments
    by id, or joined and sorted all of the vendor's (15,000 orders: 50 to 110 ms a page); keyed
    by their order's (updated_at, id), it walks the vendor's (vendor_id, updated_at) index of
    orders from the cursor and each order's payments by order_id, already in order."""
    vendor = VendorFactory()
    paid_orders(vendor, 4)
    paid_orders(VendorFactory(), 4)  # another vendor's payments, which the page must not walk
    phone = Phone(vendor, limit=2)
    keyed: list[str] = []
    for _ in range(100):
        with CaptureQueriesContext(connection) as queries:
            page = phone.pull()
        keyed += [q["sql"] for q in queries if "FROM orders_payment r" in q["sql"] and ") > (" in q["sql"]]
        if not any(page["has_more"].values()):
            break
    assert set(phone.copy("payments")) == vendor_payments(vendor)
    assert keyed, "no page of the payments download after its first"
    for sql in keyed:
        nodes = plan_nodes(sql)
        assert not [n["Node Type"] for n in nodes if n["Node Type"] in ("Sort", "Seq Scan")], nodes
        scans = {n["Relation Name"]: n for n in nodes if "Relation Name" in n}
        assert set(scans) == {"orders_order", "orders_payment"}, nodes
        orders, payments = scans["orders_order"], scans["orders_payment"]
        assert orders.get("Index Name") == "orders_order_vendor_upd", orders
        assert "vendor_id" in orders["Index Cond"] and "updated_at" in orders["Index Cond"], orders
        assert "order_id" in payments.get("Index Cond", ""), payments


def test_every_full_page_of_a_payments_download_takes_the_same_statements_whatever_its_size():
    vendor = VendorFactory()
    paid_orders(vendor, 13)
    counts: dict[int, set[int]] = {}
    for limit in (3, 6):
        phone = Phone(vendor, limit=limit)
        for _ in range(100):
            with CaptureQueriesContext(connection) as queries:
                page = phone.pull()
            served = page["changes"].get("payments", {}).get("upserted", [])
            if set(page["changes"]) == {"payments"} and len(served) == limit:
                counts.setdefault(limit, set()).add(len(queries))
            if not any(page["has_more"].values()):
                break
        assert set(phone.copy("payments")) == vendor_payments(vendor)
    assert len(counts[3]) == 1 and counts[3] == counts[6], counts


def test_orders_placed_during_the_payments_download_are_neither_skipped_nor_sent_twice_by_it():
    """Orders with a payment placed on another connection between the download's pages (an order
    placed comes after every order the download has passed): every payment reaches the device,
    the download sends none twice, and the feed from the download's start sends the new ones
    again (as it sends every change made meanwhile), the others never."""
    from tests.concurrency import in_thread

    vendor = VendorFactory()
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    before = {str(p.pk) for p in paid_orders(vendor, 10)}
    phone = Phone(vendor, limit=5)  # an order placed is 3 rows of priority 0, 2 left for payments
    for _ in range(100):
        if in_payments_download(phone.cursors["2"]):
            break
        phone.pull()
    assert in_payments_download(phone.cursors["2"])
    pulled, placed = threading.Semaphore(0), threading.Semaphore(0)

    def place() -> None:
        for n in range(6):
            assert pulled.acquire(timeout=WAIT)
            with transaction.atomic():
                order = OrderFactory(vendor=vendor, zone=zone, items=[(product, 1)])
                Payment.objects.create(
                    order=order, provider="cash", provider_reference=f"new-{n}", amount_xaf=9
                )
            placed.release()

    thread, errors = in_thread(place)
    try:
        for _ in range(6):
            pulled.release()
            assert placed.acquire(timeout=WAIT)
            assert in_payments_download(phone.cursors["2"])
            phone.pull()
    finally:
        thread.join(WAIT)
    assert not errors and not thread.is_alive()
    phone.pull_all()

    served: list[str] = []
    within_download: list[str] = []  # pages that began and ended in the download
    previous = None
    for page in phone.pages:
        ids = [r["id"] for r in page["changes"].get("payments", {}).get("upserted", [])]
        served += ids
        if in_payments_download(page["cursors"]["2"]) and (
            previous is None or in_payments_download(previous)
        ):
            within_download += ids
        previous = page["cursors"]["2"]
    new = vendor_payments(vendor) - before
    assert len(new) == 6 and set(phone.copy("payments")) == before | new
    assert len(within_download) == len(set(within_download)) > len(before)
    assert sorted(served) == sorted([*before, *new, *new])  # the new ones: by the download, then the feed
    assert set(phone.copy("orders")) == {str(o.pk) for o in Order.objects.filter(vendor=vendor)}
    assert phone.resets == 0


def test_a_payments_download_cursor_keyed_by_payment_id_alone_goes_on_in_that_order():
    """Devices may hold a cursor issued before payments were keyed by their order: its download
    goes on by payment id from where it was, without a reset, a skip or a repeat."""
    vendor = VendorFactory()
    ids = sorted(str(p.pk) for p in paid_orders(vendor, 7))
    phone = Phone(vendor, limit=1)
    phone.pull()  # priority 2 has not begun: its cursor is a download one at its first table
    body = cursor_body(phone.cursors["2"])
    assert body and body["d"] == 1 and body["k"] is None
    body.update(t=PAYMENTS, k=[ids[2]])  # as issued after the third payment by id
    phone.cursors["2"] = signing.dumps(body, key=sync_pull._key(), salt=sync_pull.SALT, compress=True)
    downloaded = []
    for _ in range(200):
        downloading = bool((cursor_body(phone.cursors["2"]) or {}).get("d"))
        page = phone.pull(limit=2)
        if downloading:
            downloaded += [r["id"] for r in page["changes"].get("payments", {}).get("upserted", [])]
        if not any(page["has_more"].values()):
            break

    assert phone.resets == 0
    assert downloaded == ids[3:]


def test_another_vendors_device_never_receives_a_row_of_ours():
    ours, theirs = VendorFactory(), VendorFactory()
    our_product = ProductFactory(vendor=ours, initial_stock=5)
    OrderFactory(vendor=ours, items=[(our_product, 1)])
    their_phone = Phone(theirs)
    their_product = ProductFactory(vendor=theirs, initial_stock=5)
    their_phone.pull_all()
    product_update(product=our_product, data={"name": "Secret"}, actor=STAFF)
    stock_adjust(product=our_product, delta=2, reason="x", actor=STAFF)
    product_soft_delete(product=our_product, actor=STAFF)
    their_phone.pull_all()

    our_ids = {
        str(our_product.pk),
        str(ours.pk),
        *map(str, Stock.objects.filter(vendor=ours).values_list("pk", flat=True)),
    }
    our_ids |= {str(pk) for pk in Order.all_objects.filter(vendor=ours).values_list("pk", flat=True)}
    seen = {
        row["id"] if isinstance(row, dict) else row
        for page in their_phone.pages
        for change in page["changes"].values()
        for row in [*change["upserted"], *change["deleted"]]
    }
    assert seen and not seen & our_ids
    assert set(their_phone.copy("products")) == {str(their_product.pk)}


def test_after_a_restore_the_device_is_told_to_reset_and_downloads_again():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()

    generation_rotate(reason="restored from backup")
    page = phone.pull()

    assert page["reset"] is True
    assert page["changes"] == {} and page["cursors"] == {"0": None, "1": None, "2": None}
    assert phone.tables == {}
    phone.pull_all()
    assert set(phone.copy("products")) == {str(product.pk)}


def test_a_cursor_from_another_database_resets():
    """The generation token names the database: a restored copy elsewhere is another generation."""
    vendor = VendorFactory()
    phone = Phone(vendor)
    phone.pull_all()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM sync_feedstate")  # as if this were another database's copy
    assert phone.pull()["reset"] is True


def _next_xid() -> int:
    """The next transaction id this server will hand out."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        return int(cur.fetchone()[0])


def test_cursors_of_a_server_the_database_was_restored_from_reset():
    """A backup restored on another server (a fresh cluster): `createdb` gives the new database
    the same oid as the old one had (the first one of a cluster), and the copy keeps the
    generation, so the devices' cursors still verify; but they name positions of the old server's
    transaction ids, far past what the new server has numbered. Served as they are, every change
    made on the new server (smaller ids) would lie behind them: missed until its counter caught up."""
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    token = generation_current().token
    elsewhere = _next_xid() + 1_000_000  # the old server's counter, far ahead of this one
    phone.cursors = {
        str(p): sync_pull.encode(
            sync_pull.Cursor(False, elsewhere), generation=token, vendor_id=vendor.pk, priority=p
        )
        for p in feed.PRIORITIES
    }
    product_update(product=product, data={"name": "Après la restauration"}, actor=STAFF)

    assert phone.pull()["reset"] is True
    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["name"] == "Après la restauration"


def test_a_pruned_position_of_the_server_the_database_came_from_does_not_reset_devices_forever():
    """The copy restored on another server holds the old server's pruned feed position (a month
    retired there), a transaction id this server has not reached: read as it is, every cursor of
    this server is below it, and every pull answered `reset`, again and again. The feed rows the
    copy holds are of that server's numbering too: they are dropped with it."""
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    elsewhere = _next_xid() + 1_000_000
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE sync_feedstate SET pruned_xid = %s::xid8, pruned_id = %s::uuid WHERE id = 1",
            [str(elsewhere), str(uuid.uuid4())],
        )
        cur.execute(  # a change recorded by the old server, in its numbering
            "INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids) "
            "VALUES (okada_uuid7(), now(), %s::xid8, %s, 1, 6, ARRAY[%s::uuid])",
            [str(elsewhere + 5), vendor.pk, product.pk],
        )

    assert phone.pull()["reset"] is True
    phone.pull_all(max_pages=5)  # downloads again, then is served: no reset after reset
    product_update(product=product, data={"name": "Servi"}, actor=STAFF)
    assert phone.pull()["reset"] is False
    phone.pull_all(max_pages=5)
    assert phone.resets == 1
    assert phone.copy("products")[str(product.pk)]["name"] == "Servi"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM sync_change WHERE xid >= %s::xid8", [str(elsewhere)])
        assert cur.fetchone()[0] == 0


def test_a_feed_state_restored_from_a_backup_is_found_out_and_the_feed_started_afresh():
    """The feed state records the database and its own table it was written in: a restore
    re-creates the table (pg_restore, even --clean into the same database), so the state is found
    elsewhere. A new generation (every device downloads again, once), and the copied feed rows
    dropped: numbered by the server the backup came from, a month's retirement would later take
    them for this server's (a pruned position no cursor gets past)."""
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    before = generation_current()
    with connection.cursor() as cur:
        cur.execute("SELECT home, 'sync_feedstate'::regclass::oid::text FROM sync_feedstate")
        here, table_oid = cur.fetchone()
        assert here.endswith(":" + table_oid)  # recorded by the pulls above
        cur.execute("UPDATE sync_feedstate SET home = %s WHERE id = 1", [here.split(":")[0] + ":1"])

    assert phone.pull()["reset"] is True
    assert generation_current().token != before.token
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM sync_change")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT home FROM sync_feedstate")
        assert cur.fetchone()[0] == here
    phone.pull_all(max_pages=5)
    product_update(product=product, data={"name": "Ici"}, actor=STAFF)
    phone.pull_all(max_pages=5)
    assert phone.resets == 1
    assert phone.copy("products")[str(product.pk)]["name"] == "Ici"


def test_starting_the_feed_afresh_waits_for_a_month_being_retired_instead_of_deadlocking():
    """Retiring a month of the feed locks the feed, then records the pruned position in the feed
    state (one transaction, sync.services.feed_partition_detached). Starting the feed afresh must
    take them in the same order: the other way round, each waited for the other (a deadlock, the
    pull a 500 or the retirement undone)."""
    import psycopg

    from tests.concurrency import a_lock_is_awaited, database_url, in_thread, poll

    vendor = VendorFactory()
    phone = Phone(vendor)
    phone.pull_all()
    with connection.cursor() as cur:
        cur.execute("UPDATE sync_feedstate SET home = '1:1' WHERE id = 1")  # a restored copy's
    with psycopg.connect(database_url()) as retiring:
        retiring.execute("LOCK TABLE sync_change IN SHARE UPDATE EXCLUSIVE MODE")  # as DETACH does
        answers: list[dict] = []
        thread, errors = in_thread(lambda: answers.append(phone.pull(apply=False)))
        poll(a_lock_is_awaited, "the pull to wait for the feed")
        retiring.execute("UPDATE sync_feedstate SET updated_at = now() WHERE id = 1")  # as _record_pruned
        retiring.commit()
    thread.join(WAIT)
    assert not errors, errors
    assert answers[0]["reset"] is True


def test_a_cursor_older_than_the_retained_feed_resets(partitions_restored):
    """Partition maintenance retires the feed's old months; its hook records what left."""
    import datetime as dt

    from django.utils import timezone

    from okada.partitions.services import maintenance_run

    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    other = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    product_update(product=product, data={"name": "Vu par personne"}, actor=STAFF)
    fresh = Phone(vendor)
    fresh.pull_all()  # its cursor is past the change: still valid after the retirement

    summary = maintenance_run(now=timezone.now() + dt.timedelta(days=200))

    assert any(done.startswith("detached sync_change_p") for done in summary["done"]), summary
    assert phone.pull()["reset"] is True
    assert fresh.pull()["reset"] is False
    product_update(product=other, data={"name": "Après"}, actor=STAFF)
    fresh.pull_all()
    assert fresh.copy("products")[str(other.pk)]["name"] == "Après"
    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["name"] == "Vu par personne"


def test_a_tampered_cursor_resets_instead_of_serving_anything():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    cursor = phone.cursors["1"]
    assert cursor and "products" not in cursor
    phone.cursors["1"] = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")

    page = phone.pull()

    assert page["reset"] is True and page["changes"] == {}


def test_a_cursor_of_another_vendor_resets():
    ours, theirs = VendorFactory(), VendorFactory()
    ProductFactory(vendor=ours)
    our_phone, their_phone = Phone(ours), Phone(theirs)
    our_phone.pull_all()
    their_phone.cursors = dict(our_phone.cursors)

    assert their_phone.pull()["reset"] is True


def test_a_cursor_of_another_priority_resets_instead_of_a_server_error():
    # Found by fuzzing: the download cursor of the orders (a key of updated_at and id) sent as
    # priority 1's was read as a position among the categories (an id): a 500.
    vendor = VendorFactory()
    for _ in range(3):
        OrderFactory(vendor=vendor)
    phone = Phone(vendor, limit=2)
    phone.pull()
    assert phone.pull(apply=False)["has_more"]["0"] is True  # still downloading the orders
    swapped = dict(phone.cursors)
    swapped["0"], swapped["1"] = phone.cursors["1"], phone.cursors["0"]
    phone.cursors = swapped

    page = phone.pull(limit=1000)  # room for priority 1 once priority 0 is served

    assert page["reset"] is True and page["changes"] == {}


def test_a_cursor_issued_before_cursors_named_their_priority_is_read_if_its_key_fits():
    vendor = VendorFactory()
    for _ in range(3):
        OrderFactory(vendor=vendor)
    phone = Phone(vendor, limit=2)
    phone.pull()
    body = signing.loads(phone.cursors["0"] or "", key=sync_pull._key(), salt=sync_pull.SALT)
    assert body.pop("p") == 0 and body["t"] == 0 and len(body["k"]) == 2  # in the orders
    legacy = signing.dumps(body, key=sync_pull._key(), salt=sync_pull.SALT, compress=True)

    phone.cursors["0"] = legacy
    assert phone.pull(apply=False)["reset"] is False
    phone.cursors = {"0": None, "1": legacy, "2": None}  # categories are keyed by id alone
    assert phone.pull()["reset"] is True


def test_a_feed_cursor_of_another_priority_resets_rather_than_skip_its_changes():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    phone.cursors = {"0": phone.cursors["2"], "1": phone.cursors["1"], "2": phone.cursors["0"]}

    assert phone.pull()["reset"] is True


def test_an_interrupted_pull_is_resumed_by_repeating_it():
    vendor = VendorFactory()
    bulk_products(vendor, 30)
    phone = Phone(vendor, limit=10)
    phone.pull()
    lost = phone.pull(apply=False)  # the answer never reached the phone
    again = phone.pull()

    assert lost["changes"] == again["changes"]
    phone.pull_all()
    assert len(phone.copy("products")) == 30


def test_a_revoked_device_cannot_pull():
    vendor = VendorFactory()
    phone = Phone(vendor)
    device_revoke(device=phone.device, actor=Actor(role=Actor.STAFF, label="ops"), reason="lost")
    with pytest.raises(DeviceRevoked):
        phone.pull()


def test_another_vendors_device_id_is_not_found():
    from okada.core.errors import NotFound

    ours, theirs = VendorFactory(), VendorFactory()
    phone = Phone(ours)
    with pytest.raises(NotFound):
        pull(actor=Actor(role=Actor.VENDOR, vendor_id=theirs.pk), device_id=phone.device.pk, cursors={})
    with pytest.raises(NotFound):
        pull(actor=Actor(role=Actor.VENDOR, vendor_id=ours.pk), device_id=uuid.uuid4(), cursors={})


@pytest.mark.parametrize(
    ("cursors", "limit"),
    [({"3": None}, None), ({"0": 5}, None), ([], None), ({}, 0), ({}, 100_000), ({}, "10")],
)
def test_bad_pull_input_is_refused(cursors, limit):
    from okada.core.errors import InvalidInput

    phone = Phone(VendorFactory())
    with pytest.raises(InvalidInput):
        pull(actor=phone.actor, device_id=phone.device.pk, cursors=cursors, limit=limit)


def test_a_bulk_seed_silences_the_capture_and_its_rows_arrive_by_the_initial_download(partitions_restored):
    import datetime as dt

    from catalog.models import Vendor
    from okada.demo.seed import SeedConfig, seed_demo
    from sync.models import Change

    seed_demo(
        SeedConfig(
            vendors=2, products_per_vendor=30, customers=20, orders=60, months=1, now=dt.datetime.now(dt.UTC)
        ),
        bulk=True,
    )
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('is_superuser') = 'on'")
        superuser = cur.fetchone()[0]
    if superuser:  # replica mode: no capture at all (the usual case for the private cluster)
        assert not Change.objects.exists()
    vendor = Vendor.objects.order_by("slug")[0]
    phone = Phone(vendor, limit=50)

    phone.pull_all()

    assert set(phone.copy("products")) == {
        str(pk) for pk in Product.objects.filter(vendor=vendor).values_list("pk", flat=True)
    }
    live_orders = Order.objects.filter(vendor=vendor)
    assert set(phone.copy("orders")) == {str(pk) for pk in live_orders.values_list("pk", flat=True)}
    assert len(phone.copy("order_items")) == OrderItem.objects.filter(order__in=live_orders).count() > 0


def test_an_order_changed_mid_download_by_a_server_whose_clock_is_behind_keeps_its_items_and_payments():
    """The download walks the vendor's orders by (updated_at, id), bringing each one's items, and
    the payments by their order's (updated_at, id). An order not reached yet and changed by a
    web server whose clock is an hour behind would have moved behind the cursor: the feed brings
    the order again but neither its unchanged items nor its payment, which the device would
    then never get. Its last change time only moves forward (orders migration 0033)."""
    vendor = VendorFactory()
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    orders = [OrderFactory(vendor=vendor, zone=zone, items=[(product, 1)]) for _ in range(6)]
    Payment.objects.bulk_create(
        [
            Payment(order=o, provider="cash", provider_reference=f"skew-{n}", amount_xaf=9)
            for n, o in enumerate(orders)
        ]
    )
    last = max(orders, key=lambda o: (o.updated_at, str(o.pk)))
    phone = Phone(vendor, limit=2)  # an order and its item a page
    while not phone.copy("orders"):
        phone.pull()
    assert str(last.pk) not in phone.copy("orders")

    behind = min(o.updated_at for o in orders) - timedelta(hours=1)
    with mock.patch("django.utils.timezone.now", return_value=behind):
        order_transition(order=last, to="accepted", actor=phone.actor)
    phone.pull_all()

    vendor_orders = Order.objects.filter(vendor=vendor)
    assert phone.copy("orders")[str(last.pk)]["status"] == "accepted"
    assert set(phone.copy("order_items")) == {
        str(pk) for pk in OrderItem.objects.filter(order__in=vendor_orders).values_list("pk", flat=True)
    }
    assert set(phone.copy("payments")) == vendor_payments(vendor)
