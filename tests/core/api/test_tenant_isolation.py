"""Tenant isolation, every endpoint x two vendors x every method: another vendor's products, stock
and orders answer 404 (as if they did not exist) and stay unchanged; lists, filters, search,
ordering, bulk upserts and nested ids never reach them."""

from __future__ import annotations

import pytest

from catalog.models import Product, Stock, StockMovement
from okada.core.actors import Actor
from orders.models import Order, OrderEvent
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import problem, storefront_api, vendor_api
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shops():
    """Two vendors, each with a product named alike (search would match both) and an order for
    the same customer (searching its name or phone would match both)."""
    shops = {}
    awa = CustomerFactory(name="Awa Mbarga", phone="+237677000123")
    for name in ("a", "b"):
        vendor = VendorFactory(slug=f"shop-{name}")
        product = ProductFactory(vendor=vendor, sku="SAME-SKU", name="Riz parfumé", initial_stock=10)
        order = OrderFactory(vendor=vendor, items=[(product, 1)], customer=awa)
        shops[name] = {"vendor": vendor, "product": product, "order": order, "api": vendor_api(vendor)}
    return shops


def snapshot():
    return (
        sorted(Product.all_objects.values_list("id", "version", "price_xaf", "deleted_at")),
        sorted(Stock.objects.values_list("product_id", "on_hand", "reserved", "version")),
        StockMovement.objects.count(),
        sorted(Order.all_objects.values_list("id", "status", "updated_at")),
        OrderEvent.objects.count(),
    )


STALE = {"HTTP_IF_MATCH": '"99"'}

# Each call also as one the owner would be refused for (a stale version, a count or removal the
# stock does not allow, a move the order cannot make): those refusals name the current version,
# units or status, so they must never be reached before the 404.
OBJECT_CALLS = [
    ("get", "/products/{product}", None, {}),
    ("head", "/products/{product}", None, {}),
    ("patch", "/products/{product}", {"price_xaf": 1}, {}),
    ("patch", "/products/{product}", {"price_xaf": 1}, STALE),
    ("patch", "/products/{product}", {"price_xaf": 1, "version": 99}, {}),
    ("delete", "/products/{product}", None, {}),
    ("delete", "/products/{product}", None, STALE),
    ("post", "/products/{product}/stock-adjustments", {"delta": -5, "reason": "theft"}, {}),
    ("post", "/products/{product}/stock-adjustments", {"delta": -999, "reason": "theft"}, {}),
    ("put", "/products/{product}/stock", {"on_hand": 0, "expected_on_hand": 10}, {}),
    ("put", "/products/{product}/stock", {"on_hand": 0, "expected_on_hand": 999}, {}),
    ("get", "/orders/{order}", None, {}),
    ("head", "/orders/{order}", None, {}),
    ("post", "/orders/{order}/transitions", {"to": "cancelled"}, {}),
    ("post", "/orders/{order}/transitions", {"to": "delivered"}, {}),
]


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("method, path, body, headers", OBJECT_CALLS)
def test_another_vendors_object_is_a_404_and_stays_unchanged(
    shops, owner, intruder, method, path, body, headers
):
    target = shops[owner]
    url = path.format(product=target["product"].pk, order=target["order"].pk)
    before = snapshot()
    api = shops[intruder]["api"]
    response = api.request(method.upper(), url, body, **headers)
    assert response.status_code == 404, (method, url, response.content)
    if method == "head":
        assert response.content == b""
    else:
        assert problem(response)["code"] == "not_found"
    # With an Idempotency-Key too (a POST's key store must not leak or apply anything).
    if method == "post":
        assert api.post(url, body, HTTP_IDEMPOTENCY_KEY="same").status_code == 404
    assert snapshot() == before
    # The owner still reaches it the same way (the 404 was about the caller, not the object).
    if method in ("get", "head"):
        assert target["api"].request(method.upper(), url).status_code == 200


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize(
    "path, body",
    [
        ("/products/{product}/stock-adjustments", {"delta": 2, "reason": "restock"}),
        ("/orders/{order}/transitions", {"to": "accepted"}),
    ],
)
def test_another_vendors_replay_is_never_served_from_the_idempotency_store(
    shops, owner, intruder, path, body
):
    # The owner's answer is kept under its key; the same request with the same key from another
    # vendor is that vendor's own request: a 404, not the owner's object replayed.
    url = path.format(product=shops[owner]["product"].pk, order=shops[owner]["order"].pk)
    first = shops[owner]["api"].post(url, body, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert first.status_code in (200, 201), first.content
    before = snapshot()
    intruding = shops[intruder]["api"].post(url, body, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert (intruding.status_code, problem(intruding)["code"]) == (404, "not_found")
    assert "Idempotent-Replayed" not in intruding
    assert snapshot() == before
    replay = shops[owner]["api"].post(url, body, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert (replay.status_code, replay["Idempotent-Replayed"], replay.content) == (
        first.status_code,
        "true",
        first.content,
    )


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?q=riz",
        "?q=SAME-SKU",
        "?is_active=true",
        "?ordering=-price_xaf",
        "?ordering=name",
        "?updated_since=2000-01-01T00:00:00Z",
        "?vendor={owner_vendor}",
        "?limit=200",
    ],
)
def test_product_lists_filters_search_and_orderings_show_only_the_callers_products(
    shops, owner, intruder, query
):
    url = "/products" + query.format(owner_vendor=shops[owner]["vendor"].pk)
    response = shops[intruder]["api"].get(url)
    if "vendor=" in query:  # another vendor's list asked for: refused, naming the parameter
        assert response.status_code == 400 and list(response.json()["errors"]) == ["vendor"]
        assert str(shops[owner]["product"].pk) not in response.content.decode()
        return
    ids = {p["id"] for p in response.json()["results"]}
    assert ids == {str(shops[intruder]["product"].pk)}


ORDER_LIST_QUERIES = [
    "",
    "?status=pending",
    "?ordering=updated_at",
    "?limit=200",
    "?q=677000123",
    "?q=Awa",
    "?q=mbarga%20awa",
]


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("query", ORDER_LIST_QUERIES)
def test_order_lists_show_only_the_callers_orders(shops, owner, intruder, query):
    ids = {o["id"] for o in shops[intruder]["api"].get("/orders" + query).json()["results"]}
    assert ids == {str(shops[intruder]["order"].pk)}


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("query", ["?q=Awa", "?q=Awa%20Mbarga"])
def test_a_name_search_of_orders_placed_before_they_kept_a_name_shows_only_the_callers(
    shops, owner, intruder, query
):
    # Orders placed before orders migration 0029 hold '' and are found through their customer,
    # shared by both vendors here: still only the caller's order.
    Order.objects.filter(pk__in=[s["order"].pk for s in shops.values()]).update(customer_name="")
    ids = {o["id"] for o in shops[intruder]["api"].get("/orders" + query).json()["results"]}
    assert ids == {str(shops[intruder]["order"].pk)}


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("atomic", ["true", "false"])
def test_a_bulk_upsert_with_another_vendors_sku_touches_only_the_callers_product(
    shops, owner, intruder, atomic
):
    before = Product.objects.get(pk=shops[owner]["product"].pk)
    response = shops[intruder]["api"].post(
        f"/products/bulk?atomic={atomic}", {"items": [{"sku": "SAME-SKU", "price_xaf": 7}]}
    )
    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["id"] == str(shops[intruder]["product"].pk)
    after = Product.objects.get(pk=before.pk)
    assert (after.price_xaf, after.version) == (before.price_xaf, before.version)


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
def test_nested_ids_of_another_vendor_are_404s(shops, owner, intruder):
    zone = ZoneFactory()
    body = {
        "customer": {"phone": "+237677000999", "name": "X"},
        "items": [{"product": str(shops[owner]["product"].pk), "quantity": 1}],
        "payment_method": "cash",
        "address": "Akwa",
        "zone": str(zone.pk),
    }
    before = snapshot()
    api = shops[intruder]["api"]
    assert api.post("/orders", body).status_code == 404
    assert api.post("/orders", {**body, "vendor": str(shops[owner]["vendor"].pk)}).status_code == 404
    assert snapshot() == before


def test_the_storefront_reaches_storefront_orders_only(shops):
    phone_order = OrderFactory(
        vendor=shops["a"]["vendor"],
        channel="phone",
        actor=Actor(role="staff", label="ops"),
        customer=shops["a"]["order"].customer,  # its number and name would match the search
    )
    store = storefront_api()
    assert store.get(f"/orders/{phone_order.pk}").status_code == 404
    assert store.post(f"/orders/{phone_order.pk}/transitions", {"to": "cancelled"}).status_code == 404
    for query in ("", "?q=Awa%20Mbarga", "?q=677000123"):
        ids = {o["id"] for o in store.get("/orders" + query).json()["results"]}
        assert str(phone_order.pk) not in ids
        assert ids == {str(shops["a"]["order"].pk), str(shops["b"]["order"].pk)}, query
