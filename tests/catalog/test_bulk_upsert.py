"""The set-based bulk upsert (catalog.services.product_upsert_many): the same answers, rows and
history rows as the single-item services, in a number of statements that does not grow with the
items, and SKUs created by two requests at once (real concurrent connections)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Category, Product, Stock, StockMovement, Vendor
from catalog.services import (
    UpsertResult,
    category_soft_delete,
    product_create,
    product_soft_delete,
    product_update,
    product_upsert_many,
)
from okada.core.actors import Actor
from okada.core.errors import DomainError
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory, staff_actor
from tests.concurrency import post_together, race, run_together
from tests.credentials.factories import vendor_api, vendor_key

pytestmark = pytest.mark.django_db(transaction=False)

Answer = tuple[str, int | None, tuple[str, str, dict[str, list[str]]] | None]


def integration(vendor: Vendor) -> Actor:
    """A vendor's API key: no user, so the history reason names it."""
    return Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="integration")


def error_of(exc: DomainError | None) -> tuple[str, str, dict[str, list[str]]] | None:
    if exc is None:
        return None
    return exc.code, exc.message, {f: [str(m) for m in ms] for f, ms in exc.errors.items()}


def one_by_one(vendor: Vendor, items: list[dict[str, Any]], actor: Actor) -> list[Answer]:
    """The single-item path: product_create for a new SKU, product_update for a known one, each
    in a savepoint (a refused item changes nothing), answered as the bulk upsert answers."""
    answers: list[Answer] = []
    for item in items:
        fields = {k: v for k, v in item.items() if k not in ("sku", "initial_stock")}
        current = Product.objects.filter(vendor=vendor, sku=item["sku"]).first()
        try:
            with transaction.atomic():
                if current is None:
                    stock = item.get("initial_stock", 0)
                    product = product_create(
                        vendor=vendor, sku=item["sku"], actor=actor, initial_stock=stock, **fields
                    )
                    answers.append(("created", product.version, None))
                else:
                    product = product_update(product=current, data=fields, actor=actor)
                    status = "updated" if product.version != current.version else "unchanged"
                    answers.append((status, product.version, None))
        except DomainError as exc:
            answers.append(("failed", None, error_of(exc)))
    return answers


def in_bulk(vendor: Vendor, items: list[dict[str, Any]], actor: Actor) -> list[Answer]:
    results = product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False)
    return [(r.status, r.product.version if r.product else None, error_of(r.error)) for r in results]


def state(vendor: Vendor) -> dict[str, Any]:
    """What the upsert wrote for `vendor`, without ids and times: products (deleted ones too),
    their search vectors, history rows, stock rows and ledger."""
    products = Product.all_objects.filter(vendor=vendor)
    sku_of = dict(products.values_list("pk", "sku"))
    history = Product.history.filter(vendor=vendor).order_by("sku", "history_date")
    return {
        "products": sorted(
            (*row[:-2], row[-2] is None, row[-1])
            for row in products.values_list(
                "sku",
                "name",
                "description",
                "category_id",
                "price_xaf",
                "compare_at_price_xaf",
                "unit",
                "is_active",
                "attributes",
                "version",
                "deleted_at",
                "search_vector",
            )
        ),
        "history": [
            (
                h.sku,
                h.history_type,
                h.history_change_reason,
                h.history_user_id,
                h.name,
                h.description,
                h.category_id,
                h.price_xaf,
                h.compare_at_price_xaf,
                h.unit,
                h.is_active,
                h.attributes,
                h.version,
                h.deleted_at is None,
            )
            for h in history
        ],
        "stock": sorted(
            (sku_of[s.product_id], s.on_hand, s.reserved, s.version)
            for s in Stock.objects.filter(vendor=vendor)
        ),
        "ledger": sorted(
            (sku_of[m.product_id], m.kind, m.delta, m.reason, m.reference, m.actor)
            for m in StockMovement.objects.filter(vendor=vendor)
        ),
    }


@pytest.mark.parametrize("who", ["vendor key", "staff"])
def test_the_bulk_upsert_writes_what_the_single_item_services_write(who):
    # The same catalog and the same request, once item by item through product_create and
    # product_update, once through the bulk upsert: the same answers, and the same rows,
    # history rows (who, why, what), stock and ledger.
    food, drinks, gone = CategoryFactory(), CategoryFactory(), CategoryFactory()
    category_soft_delete(category=gone, actor=staff_actor())
    staff = staff_actor()
    outcomes = []
    for run in (one_by_one, in_bulk):
        vendor = VendorFactory()
        actor = staff if who == "staff" else integration(vendor)
        catalog: list[tuple[str, str, int, dict[str, Any]]] = [
            ("A-1", "Riz", 1000, {"category": food}),
            ("A-2", "Huile", 2000, {"compare_at_price_xaf": 2500}),
            ("A-3", "Sucre", 500, {}),
            ("A-4", "Sel", 300, {"attributes": {"origine": "Douala"}}),
            ("A-5", "Thé", 400, {}),
            ("A-6", "Farine", 600, {"attributes": {"origine": "Douala"}}),
            ("A-7", "Café", 3000, {"compare_at_price_xaf": 3500, "category": food}),
        ]
        for sku, name, price, extra in catalog:
            product_create(vendor=vendor, sku=sku, name=name, price_xaf=price, actor=actor, **extra)
        product_soft_delete(product=Product.objects.get(vendor=vendor, sku="A-5"), actor=actor)
        items: list[dict[str, Any]] = [
            {"sku": "A-1", "price_xaf": 1100, "category": None},
            {"sku": "A-6", "attributes": {"origine": "Kribi", "bio": True}, "unit": "kg"},
            {"sku": "A-7", "price_xaf": 3200, "compare_at_price_xaf": None, "category": food},
            {"sku": "A-2", "name": "Huile", "price_xaf": 2000},
            {"sku": "A-3", "category": drinks, "description": "Sucre en poudre", "is_active": False},
            {"sku": "A-4", "compare_at_price_xaf": 100},
            {
                "sku": "A-1x",
                "name": "Lait",
                "price_xaf": 800,
                "category": food,
                "initial_stock": 12,
                "unit": "l",
            },
            {"sku": "N-2", "name": "Pain", "price_xaf": 150, "attributes": {"bio": True}},
            {"sku": "N-3", "name": "Beurre", "price_xaf": 900, "compare_at_price_xaf": 900},
            {"sku": "N-4", "name": "Miel", "price_xaf": 700, "category": gone},
            {"sku": "A-5", "name": "Thé vert", "price_xaf": 450, "initial_stock": 3},
            {"sku": "N-5", "name": "", "price_xaf": 100},
            {"sku": "N-6", "name": "Eau", "price_xaf": 100, "initial_stock": -2},
            {"sku": "A-4", "name": "Sel", "price_xaf": 300, "attributes": {"origine": "Kribi"}},
        ]
        # The single-item path has no "appears twice" rule: A-4 comes once to it.
        sent = items[:-1] if run is one_by_one else items
        before = timezone.now()
        answers = run(vendor, sent, actor)
        touched = sorted(Product.all_objects.filter(vendor=vendor, updated_at__gte=before).values_list("sku"))
        outcomes.append((answers[: len(items) - 1], {**state(vendor), "touched": touched}))

    (single_answers, single_state), (bulk_answers, bulk_state) = outcomes
    assert [a[0] for a in bulk_answers] == [
        "updated",
        "updated",
        "updated",
        "unchanged",
        "updated",
        "failed",
        "created",
        "created",
        "failed",
        "failed",
        "created",
        "failed",
        "failed",
    ]
    assert bulk_answers == single_answers
    assert bulk_state["touched"] == [("A-1",), ("A-1x",), ("A-3",), ("A-5",), ("A-6",), ("A-7",), ("N-2",)]
    assert bulk_state == single_state
    reasons = {h[1]: h[2] for h in bulk_state["history"] if h[0] == "A-1x"} | {
        "~": next(h[2] for h in bulk_state["history"] if h[0] == "A-1" and h[1] == "~")
    }
    if who == "staff":
        assert reasons == {"+": "product created", "~": "product updated"}
        assert {h[3] for h in bulk_state["history"]} == {staff.user.pk}
    else:
        assert reasons == {
            "+": "product created [vendor:integration]",
            "~": "product updated [vendor:integration]",
        }


def items_for(vendor: Vendor, count: int, tag: str, category: Category) -> list[dict[str, Any]]:
    """`count` items of every kind: new (with a category and stock), changed, unchanged, invalid."""
    quarter = count // 4
    changed = [ProductFactory(vendor=vendor, sku=f"{tag}-C{i}", price_xaf=1000) for i in range(quarter)]
    same = [ProductFactory(vendor=vendor, sku=f"{tag}-U{i}", price_xaf=1000) for i in range(quarter)]
    new = [
        {
            "sku": f"{tag}-N{i}",
            "name": "Nouveau",
            "price_xaf": 500,
            "category": str(category.pk),
            "initial_stock": 2,
        }
        for i in range(quarter)
    ]
    refused = [
        {"sku": f"{tag}-X{i}", "name": "Mauvais", "price_xaf": 500, "compare_at_price_xaf": 400}
        if i % 2
        else {"sku": f"{tag}-X{i}", "price_xaf": -1}
        for i in range(count - 3 * quarter)
    ]
    return [
        *new,
        *({"sku": p.sku, "price_xaf": 1200, "category": str(category.pk)} for p in changed),
        *({"sku": p.sku, "name": p.name, "price_xaf": 1000} for p in same),
        *refused,
    ]


def test_a_bulk_upsert_sends_as_many_statements_for_200_items_as_for_10():
    # 500 items once cost 5,757 statements (11.5 each): reads, savepoints, inserts and history
    # rows item by item. Each kind of item now costs a statement per request, not per item.
    vendor = VendorFactory()
    api = vendor_api(vendor)
    category = CategoryFactory()
    counts = {}
    api.get("/products")  # the key's first use of the day (last_used_at) is not the upsert's
    for count in (10, 200):
        items = items_for(vendor, count, f"T{count}", category)
        with CaptureQueriesContext(connection) as statements:
            response = api.post("/products/bulk", {"items": items})
        assert response.status_code == 200, response.content
        body = response.json()
        quarter = count // 4
        assert (body["created"], body["updated"], body["unchanged"]) == (quarter, quarter, quarter)
        assert body["failed"] == count - 3 * quarter
        counts[count] = len(statements)
    assert counts[200] == counts[10], counts
    assert Stock.objects.filter(vendor=vendor, on_hand=2).count() == 2 + 50


def statuses(results: Any) -> list[str]:
    assert isinstance(results, list), results
    return [r.status for r in results]


@pytest.mark.django_db(transaction=True)
def test_a_sku_a_single_create_commits_while_the_bulk_inserts_it_is_updated_not_refused():
    # The bulk upsert read the SKU as new; a product_create of it is in flight (not committed).
    # The bulk insert waits for it on the unique index, then finds it taken: that item becomes
    # an update of the row the other created. One row, both answered.
    vendor = VendorFactory()
    actor = integration(vendor)
    items = [
        {"sku": "RACE-1", "name": "Plantain", "price_xaf": 700},
        {"sku": "RACE-2", "name": "Igname", "price_xaf": 900},
    ]

    created, results = race(
        lambda: product_create(vendor=vendor, sku="RACE-1", name="Plantain", price_xaf=600, actor=actor),
        lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False),
    )

    assert isinstance(created, Product), (created, results)
    assert statuses(results) == ["updated", "created"]
    row = Product.objects.get(vendor=vendor, sku="RACE-1")
    assert (row.pk, row.price_xaf, row.version) == (created.pk, 700, 2)
    assert [h.history_type for h in row.history.order_by("history_date")] == ["+", "~"]
    assert Stock.objects.filter(product=row).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_bulk_upsert_waits_for_another_of_the_same_new_skus_then_updates_them():
    vendor = VendorFactory()
    actor = integration(vendor)

    def upsert(price: int) -> Callable[[], list[UpsertResult]]:
        items = [{"sku": f"NEW-{i}", "name": "Manioc", "price_xaf": price} for i in range(30)]
        return lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False)

    first, second = race(upsert(500), upsert(550))

    assert statuses(first) == ["created"] * 30
    assert statuses(second) == ["updated"] * 30
    assert Product.objects.filter(vendor=vendor).count() == 30
    assert set(Product.objects.filter(vendor=vendor).values_list("price_xaf", "version")) == {(550, 2)}
    assert Stock.objects.filter(vendor=vendor).count() == 30


@pytest.mark.django_db(transaction=True)
def test_two_bulk_upserts_of_the_same_new_skus_at_once_make_one_row_each():
    vendor = VendorFactory()
    actor = integration(vendor)
    items = [{"sku": f"TWICE-{i:03d}", "name": "Arachide", "price_xaf": 300} for i in range(100)]

    results = run_together(
        [lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False)] * 2, workers=2
    )

    by_sku = {
        sku: sorted(s[i] for s in map(statuses, results)) for i, sku in enumerate(i["sku"] for i in items)
    }
    assert set(map(tuple, by_sku.values())) == {("created", "unchanged")}
    assert Product.objects.filter(vendor=vendor).count() == 100
    assert Stock.objects.filter(vendor=vendor).count() == 100
    assert Product.history.filter(vendor=vendor, history_type="+").count() == 100


def _refuse_inserting_sku_not_nfc() -> None:
    """PostgreSQL refuses the SKU "NOT-NFC" as it would a SKU the checks let through (its Unicode
    tables newer than Python's: CHECK catalog_product_sku_nfc). Dropped by _allow_sku_not_nfc()
    in a test whose transactions commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION bulkupsert_refuse_sku() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.sku = 'NOT-NFC' THEN
                    RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation',
                        CONSTRAINT = 'catalog_product_sku_nfc';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER bulkupsert_refuse_sku BEFORE INSERT ON catalog_product
                FOR EACH ROW EXECUTE FUNCTION bulkupsert_refuse_sku();
            """
        )


def _allow_sku_not_nfc() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER bulkupsert_refuse_sku ON catalog_product; DROP FUNCTION bulkupsert_refuse_sku();"
        )


def test_a_statement_a_check_did_not_foresee_refuses_sends_each_item_through_its_service():
    # PostgreSQL refuses a SKU the checks let through (its Unicode tables newer than Python's:
    # CHECK catalog_product_sku_nfc). The set-based insert fails whole; the items then go one by
    # one, and only that one is refused, as product_create refuses it.
    vendor = VendorFactory()
    actor = integration(vendor)
    kept = ProductFactory(vendor=vendor, sku="KEPT", price_xaf=100)
    _refuse_inserting_sku_not_nfc()
    items = [
        {"sku": "NOT-NFC", "name": "Refusé", "price_xaf": 100},
        {"sku": "FINE", "name": "Accepté", "price_xaf": 100, "initial_stock": 5},
        {"sku": "KEPT", "price_xaf": 120},
    ]

    results = product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False)

    assert statuses(results) == ["failed", "created", "updated"]
    assert (results[0].error.code, list(results[0].error.errors)) == ("invalid", ["sku"])  # type: ignore[union-attr]
    assert set(Product.objects.filter(vendor=vendor).values_list("sku", flat=True)) == {"FINE", "KEPT"}
    assert Product.objects.get(pk=kept.pk).price_xaf == 120
    assert Stock.objects.get(product__sku="FINE", product__vendor=vendor).on_hand == 5


@pytest.mark.django_db(transaction=True)
def test_two_bulk_requests_of_the_same_new_skus_over_http_both_answer_and_make_one_row_each(live_server):
    # A vendor's integration retries on a slow network: the same request twice at once, each
    # with its own Idempotency-Key. Both answer 200; each SKU is one product, created by one
    # request and found unchanged by the other.
    vendor = VendorFactory()
    secret = vendor_key(vendor)
    items = [
        {"sku": f"HTTP-{i:03d}", "name": "Gombo", "price_xaf": 250, "initial_stock": 3} for i in range(50)
    ]
    headers = [
        {
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"retry-{n}",
        }
        for n in range(2)
    ]

    answers = post_together(
        f"{live_server.url}/api/v1/products/bulk", json.dumps({"items": items}).encode(), headers
    )

    assert [status for status, _ in answers] == [200, 200], answers
    bodies = [json.loads(content) for _, content in answers]
    assert sorted((b["created"], b["unchanged"]) for b in bodies) == [(0, 50), (50, 0)]
    ids = [{r["sku"]: r["id"] for r in b["results"]} for b in bodies]
    assert ids[0] == ids[1]
    assert Product.objects.filter(vendor=vendor).count() == 50
    assert set(Stock.objects.filter(vendor=vendor).values_list("on_hand", flat=True)) == {3}
    assert StockMovement.objects.filter(vendor=vendor).count() == 50


@pytest.mark.django_db(transaction=True)
def test_a_product_deleted_while_the_bulk_upsert_waits_to_lock_it_is_answered_not_found():
    # The bulk upsert read the product live; a soft delete holds its row. The upsert's lock waits,
    # then finds it deleted: that item is refused as product_update refuses it, the others apply.
    vendor = VendorFactory()
    actor = integration(vendor)
    doomed = ProductFactory(vendor=vendor, sku="GONE", price_xaf=100)
    ProductFactory(vendor=vendor, sku="STAYS", price_xaf=100)
    items = [{"sku": "GONE", "price_xaf": 150}, {"sku": "STAYS", "price_xaf": 150}]

    deleted, results = race(
        lambda: product_soft_delete(product=doomed, actor=actor),
        lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False),
    )

    assert isinstance(deleted, Product), (deleted, results)
    assert statuses(results) == ["failed", "updated"]
    assert results[0].error is not None and results[0].error.code == "not_found"
    assert Product.all_objects.get(pk=doomed.pk).price_xaf == 100
    assert Product.objects.get(vendor=vendor, sku="STAYS").price_xaf == 150


@pytest.mark.django_db(transaction=True)
def test_a_product_renamed_while_the_bulk_upsert_waits_to_lock_it_is_left_as_renamed():
    # The bulk upsert read "OLD" before a rename to "NEW" committed, then waited for its lock.
    # The rename came first: "OLD" names no product any more, so the item makes a new one and the
    # renamed product keeps what it had (before: it took the item's price under its new SKU).
    vendor = VendorFactory()
    actor = integration(vendor)
    renamed = ProductFactory(vendor=vendor, sku="OLD", name="Savon", price_xaf=100)
    items = [{"sku": "OLD", "name": "Savon neuf", "price_xaf": 150}]

    updated, results = race(
        lambda: product_update(product=renamed, data={"sku": "NEW"}, actor=actor),
        lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False),
    )

    assert isinstance(updated, Product), (updated, results)
    assert statuses(results) == ["created"]
    assert Product.objects.get(pk=renamed.pk).sku == "NEW"
    assert Product.objects.get(pk=renamed.pk).price_xaf == 100
    made = Product.objects.get(vendor=vendor, sku="OLD")
    assert made.pk != renamed.pk and (made.name, made.price_xaf) == ("Savon neuf", 150)
    assert results[0].product is not None and results[0].product.pk == made.pk


@pytest.mark.django_db(transaction=True)
def test_a_product_renamed_while_the_bulk_upsert_waits_is_left_as_renamed_when_items_go_one_by_one():
    # The same rename, with another item the set-based insert cannot write (as in the test of
    # a statement a check did not foresee): the items then go through the single-item services,
    # which updated the product the request had read under "OLD", renamed meanwhile.
    vendor = VendorFactory()
    actor = integration(vendor)
    renamed = ProductFactory(vendor=vendor, sku="OLD", name="Savon", price_xaf=100)
    items = [
        {"sku": "NOT-NFC", "name": "Refusé", "price_xaf": 100},
        {"sku": "OLD", "name": "Savon neuf", "price_xaf": 150},
    ]
    _refuse_inserting_sku_not_nfc()
    try:
        updated, results = race(
            lambda: product_update(product=renamed, data={"sku": "NEW"}, actor=actor),
            lambda: product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False),
        )
    finally:
        _allow_sku_not_nfc()

    assert isinstance(updated, Product), (updated, results)
    assert statuses(results) == ["failed", "created"]
    assert (Product.objects.get(pk=renamed.pk).sku, Product.objects.get(pk=renamed.pk).price_xaf) == (
        "NEW",
        100,
    )
    made = Product.objects.get(vendor=vendor, sku="OLD")
    assert made.pk != renamed.pk and (made.name, made.price_xaf) == ("Savon neuf", 150)
