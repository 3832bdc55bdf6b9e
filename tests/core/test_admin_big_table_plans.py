"""The lists of the big tables (a million products, orders, stock movements...) read a page
through an index: every sort they offer, in both directions, is an index's order, never a Sort of
the whole table. Planned with sequential scans and sorts off, as the planner would plan millions of
rows (on the test database's few rows a Seq Scan and a Sort are cheaper, and say nothing): a Sort
or a Seq Scan of the table left in the plan is one no index can spare."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.admin import StockMovementAdmin
from catalog.models import Product, Stock, StockMovement
from okada.core.ids import RANDOM_BITS, uuid7_int
from orders.models import Customer, Order, OrderEvent, Payment
from sync.models import Mutation, SyncConflict
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory
from tests.plans import plan_nodes

pytestmark = pytest.mark.django_db

BIG_TABLES = [Product, Stock, StockMovement, Customer, Order, OrderEvent, Payment, Mutation, SyncConflict]


def shape(plan: list[dict[str, Any]]) -> list[str]:
    return [
        f"{n['Node Type']} {n.get('Index Name') or n.get('Relation Name') or n.get('Sort Key')}" for n in plan
    ]


def page_plan(client, url: str) -> list[dict[str, Any]]:
    response = client.get(url)
    assert response.status_code == 200, url
    cl = response.context["cl"]
    sql, params = cl.queryset[: cl.list_per_page + 1].query.sql_with_params()
    return plan_nodes(sql, params)


def offered_sorts(client, url: str) -> list[str]:
    """The `o=` of each column the list offers to sort by, both directions."""
    cl = client.get(url).context["cl"]
    offered = []
    for i, name in enumerate(cl.list_display):
        if cl.sortable_by is not None and name not in cl.sortable_by:
            continue
        if cl.get_ordering_field(name) is not None:
            offered += [str(i), f"-{i}"]
    return offered


def changelist(model: Any) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.mark.parametrize("model", BIG_TABLES, ids=lambda m: m.__name__)
def test_every_sort_a_big_list_offers_reads_an_index_in_order(admin_client, model):
    url = changelist(model)
    table = model._meta.db_table
    for query in ["", *(f"?o={o}" for o in offered_sorts(admin_client, url))]:
        plan = page_plan(admin_client, url + query)
        sorts = [n for n in plan if n["Node Type"] == "Sort"]  # an Incremental Sort is fine
        scans = [n for n in plan if n["Node Type"] == "Seq Scan" and n["Relation Name"].startswith(table)]
        assert not sorts and not scans, (query, shape(plan))


@pytest.mark.parametrize(
    ("model", "column"),
    [(Product, "name"), (Product, "price"), (StockMovement, "created_at"), (Order, "total")],
)
def test_a_big_list_ignores_a_sort_it_does_not_offer(admin_client, model, column):
    # An old bookmark or a hand-made link: `?o=` of a column without an index keeps the list's
    # own order (Django would sort the whole table by it).
    url = changelist(model)
    cl = admin_client.get(url).context["cl"]
    position = list(cl.list_display).index(column)
    default = list(dict.fromkeys(cl.queryset.query.order_by))  # Django may name a key twice
    for query in (f"?o={position}", f"?o=-{position}"):
        asked = admin_client.get(url + query).context["cl"]
        assert list(dict.fromkeys(asked.queryset.query.order_by)) == default, query


@pytest.mark.parametrize("descending", [False, True])
def test_a_big_list_narrowed_to_one_vendor_sorts_by_any_column(admin_client, descending):
    # One vendor's products: read through the vendor's index, few enough to sort by name.
    vendor = VendorFactory()
    for name in ("Mangue", "Ananas", "Riz"):
        ProductFactory(vendor=vendor, name=name)
    ProductFactory(name="Banane")  # another vendor's
    url = changelist(Product)
    position = list(admin_client.get(url).context["cl"].list_display).index("name")
    query = f"?vendor__id__exact={vendor.pk}&o={'-' if descending else ''}{position}"
    shown = [p.name for p in admin_client.get(url + query).context["cl"].result_list]
    assert shown == sorted(["Mangue", "Ananas", "Riz"], reverse=descending)


@pytest.mark.parametrize("model", [Product, Stock], ids=lambda m: m.__name__)
def test_one_vendors_list_reads_the_vendors_rows_newest_first_from_one_index(admin_client, model):
    # Newest first with the vendor's own index alone, PostgreSQL walked the whole primary key and
    # tested each row's vendor: seconds for the list of an old vendor's products or stock.
    vendor = VendorFactory()
    for other in [vendor, *VendorFactory.create_batch(4)]:
        ProductFactory.create_batch(3, vendor=other)
    with connection.cursor() as cursor:
        # Statistics of these rows (a vendor among several), not whatever earlier tests left:
        # the plan must not depend on when autovacuum last analyzed the table.
        cursor.execute(f"ANALYZE {model._meta.db_table}")
    plan = page_plan(admin_client, f"{changelist(model)}?vendor__id__exact={vendor.pk}")
    table = model._meta.db_table
    scans = [n for n in plan if n.get("Relation Name") == table]
    assert [n["Node Type"] for n in plan if n["Node Type"] == "Sort"] == [], shape(plan)
    assert scans and all("vendor_id" in n.get("Index Cond", "") for n in scans), shape(plan)


def index_names(node: dict[str, Any]) -> list[str]:
    """The indexes a scan reads: its own, or those of the bitmaps under it."""
    return (
        [node["Index Name"]]
        if "Index Name" in node
        else [n for c in node.get("Plans", []) for n in index_names(c)]
    )


def reads_only(plan: list[dict[str, Any]], table: str, *indexes: str) -> bool:
    """Every scan of `table`'s partitions reads one of `indexes` (their partitions' copies are
    named after them), directly or through a bitmap; no Seq Scan, no Sort."""
    scans = [n for n in plan if (n.get("Relation Name") or "").startswith(table)]
    return (
        bool(scans)
        and all(index_names(n) and all(i.startswith(indexes) for i in index_names(n)) for n in scans)
        and not [n for n in plan if n["Node Type"] == "Sort"]
    )


@pytest.mark.parametrize("kind", ["restock", "adjustment", "count", "return"])
def test_the_ledger_filtered_by_a_kind_staff_write_reads_that_kinds_index_newest_first(admin_client, kind):
    # By the primary key, newest first, PostgreSQL read the orders' movements (most of the ledger)
    # back until it found a page of these: 0.3 to 1.5 s on 7.5 million movements.
    plan = page_plan(admin_client, f"{changelist(StockMovement)}?kind__exact={kind}")
    assert reads_only(plan, "catalog_stockmovement", "catalog_stockmove_manual_kind"), shape(plan)


def test_the_timelines_notes_read_their_index_newest_first(admin_client):
    plan = page_plan(admin_client, f"{changelist(OrderEvent)}?kind__exact=note")
    assert reads_only(plan, "orders_orderevent", "orders_event_notes"), shape(plan)


def read_through_index_conditions(plan: list[dict[str, Any]], table: str) -> bool:
    """Every scan of `table`'s partitions is bounded by an index condition: no Seq Scan, no walk
    of a whole index testing each row (a partial index whose predicate the query implies is
    read whole: the kind filter's, holding every restock of a product's creation)."""
    scans = [n for n in plan if (n.get("Relation Name") or "").startswith(table)]
    bitmaps = [n for n in plan if n["Node Type"] == "Bitmap Index Scan"]
    return (
        bool(scans)
        and all(n["Node Type"] == "Bitmap Heap Scan" or "Index Cond" in n for n in scans)
        and all("Index Cond" in n for n in bitmaps)
        and not [n for n in plan if (n.get("Index Name") or "").startswith("catalog_stockmove_manual_kind")]
    )


@pytest.mark.parametrize("term", ["zzqxw", "BL-2024", "OK-0000001", "1"])
def test_the_ledger_search_reads_indexes_not_every_reference(admin_client, term):
    # An ILIKE '%term%' of the reference read every partition: 2 to 6 s. An order's number is
    # looked up through its products (the placed order below), any other term by the start of
    # the references staff write; the few found are then listed by key.
    product = ProductFactory(initial_stock=10)
    order = OrderFactory(vendor=product.vendor, items=[(product, 1)])
    term = order.number if term.startswith("OK-") else term
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(f"{changelist(StockMovement)}?q={term}").status_code == 200
    asked = [q["sql"] for q in queries.captured_queries if 'FROM "catalog_stockmovement"' in q["sql"]]
    matches, *page = asked  # the page: those found, by key (none when nothing matched)
    plan = plan_nodes(matches)
    assert read_through_index_conditions(plan, "catalog_stockmovement"), [
        (n["Node Type"], n.get("Index Name"), n.get("Index Cond")) for n in plan if "Relation Name" in n
    ]
    assert '"catalog_stockmovement"."id" IN (' in "".join(page) or not page
    for sql in page:
        assert not [n for n in plan_nodes(sql) if n["Node Type"] == "Seq Scan"], sql


@pytest.mark.parametrize(
    ("table", "index"),
    [("orders_orderevent", "orders_event_actor_user"), ("orders_payment", "orders_payment_settled_by")],
)
def test_a_users_delete_page_asks_whether_a_row_names_them_through_an_index(admin_client, table, index):
    # Whether any event names the user, or any payment's settled refund (okada.core.admin.
    # _named_in_records): an EXISTS on a column without an index read every row (1.2 to 1.8 s
    # for the events' partitions, 0.1 s for the payments).
    user = get_user_model().objects.create_user("leaving")
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(f"/admin/auth/user/{user.pk}/delete/").status_code == 200
    asked = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    assert len(asked) == 1, asked
    plan = plan_nodes(asked[0])
    assert reads_only(plan, table, index), shape(plan)


def movement_at(product: Any, kind: str, at: dt.datetime) -> StockMovement:
    """A ledger line of `at`, keyed as the services key them then (a v7 id of that millisecond)."""
    key = uuid.UUID(int=uuid7_int(int(at.timestamp() * 1000), secrets.randbits(RANDOM_BITS)))
    delta = -1 if kind in ("sale", "release") else 1
    return StockMovement.objects.create(
        id=key, product_id=product.pk, vendor_id=product.vendor_id, delta=delta, kind=kind, created_at=at
    )


def placement_filters(product: Any) -> list[str]:
    return [
        *(f"kind__exact={kind}" for kind in ("reserve", "sale", "release")),
        f"vendor__id__exact={product.vendor_id}",
    ]


def test_the_ledger_filtered_by_vendor_or_a_placement_kind_bounds_every_months_scan_by_key(admin_client):
    # Newest first, each month's primary key was read back to its newest row passing the filter:
    # the months of the first stock, before any order, hold none, and were read whole (0.9 to
    # 1.2 s on 7 million movements). The page is first asked of the newest keys: an index
    # condition on every month's scan, which ends an older month's at its first key.
    product = ProductFactory(initial_stock=10)
    for kind in ("reserve", "sale", "release"):
        movement_at(product, kind, timezone.now())
    for query in placement_filters(product):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(f"{changelist(StockMovement)}?{query}").status_code == 200
        pages = [q["sql"] for q in queries.captured_queries if 'FROM "catalog_stockmovement"' in q["sql"]]
        plan = plan_nodes(pages[0])
        scans = [n for n in plan if (n.get("Relation Name") or "").startswith("catalog_stockmovement")]
        assert scans, shape(plan)
        assert all("id >= " in n.get("Index Cond", "") for n in scans), (
            query,
            [(n["Node Type"], n.get("Index Name"), n.get("Index Cond")) for n in scans],
        )


@pytest.mark.parametrize("page_size", [2, 3])
def test_the_ledgers_pages_read_newest_first_are_the_whole_lists_pages(admin_client, monkeypatch, page_size):
    # Pages the last month's keys fill, and pages only the whole list fills (one row of the
    # month, the rest older; none of the month).
    monkeypatch.setattr(StockMovementAdmin, "list_per_page", page_size)
    product, other = ProductFactory(), ProductFactory()
    now = timezone.now()
    for days in (0, 0, 0, 100, 100, 100, 800, 800, 800):
        movement_at(product, "sale", now - dt.timedelta(days=days))
        movement_at(product, "restock", now - dt.timedelta(days=days))  # not a sale
        movement_at(other, "sale", now - dt.timedelta(days=days))  # another vendor's
    lists: dict[str, dict[str, Any]] = {
        "kind__exact=sale": {"kind": "sale"},
        f"vendor__id__exact={product.vendor_id}": {"vendor_id": product.vendor_id},
    }
    for query, rows in lists.items():
        everything = list(StockMovement.objects.filter(**rows).order_by("-id").values_list("id", flat=True))
        shown = []
        for number in range(1, len(everything) // page_size + 2):
            response = admin_client.get(f"{changelist(StockMovement)}?{query}&p={number}")
            assert response.status_code == 200
            shown += [m.pk for m in response.context["cl"].result_list]
        assert shown == everything, query


@pytest.mark.parametrize("term", ["zzqxw", "CON-00347", "347", "con-003 47"])
def test_the_stock_search_finds_skus_through_their_trigram_index(admin_client, term):
    # A word anywhere in a SKU (Django's icontains), which no b-tree serves: the products were
    # read one by one, all million for a SKU nobody has (0.3 to 0.5 s).
    ProductFactory(sku="CON-00347", initial_stock=1)
    ProductFactory(sku="FRU-00001", initial_stock=1)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist(Stock), {"q": term})
    assert response.status_code == 200
    probes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('SELECT "catalog_product"."id"') and "LIKE UPPER" in q["sql"]
    ]
    assert len(probes) == 1, probes
    plan = plan_nodes(probes[0])
    assert reads_only(plan, "catalog_product", "catalog_product_sku_trgm"), shape(plan)
    shown = [s.product.sku for s in response.context["cl"].result_list]
    assert shown == ([] if term == "zzqxw" else ["CON-00347"])
