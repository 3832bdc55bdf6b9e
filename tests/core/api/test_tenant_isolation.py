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
from tests.orders.factories import OrderFactory, ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shops():
    """Two vendors, each with a product named alike (search would match both) and an order."""
    shops = {}
    for name in ("a", "b"):
        vendor = VendorFactory(slug=f"shop-{name}")
        product = ProductFactory(vendor=vendor, sku="SAME-SKU", name="Riz parfumé", initial_stock=10)
        order = OrderFactory(vendor=vendor, items=[(product, 1)])
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


OBJECT_CALLS = [
    ("get", "/products/{product}", None),
    ("patch", "/products/{product}", {"price_xaf": 1}),
    ("delete", "/products/{product}", None),
    ("post", "/products/{product}/stock-adjustments", {"delta": -5, "reason": "theft"}),
    ("put", "/products/{product}/stock", {"on_hand": 0, "expected_on_hand": 10}),
    ("get", "/orders/{order}", None),
    ("post", "/orders/{order}/transitions", {"to": "cancelled"}),
]


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("method, path, body", OBJECT_CALLS)
def test_another_vendors_object_is_a_404_and_stays_unchanged(shops, owner, intruder, method, path, body):
    target = shops[owner]
    url = path.format(product=target["product"].pk, order=target["order"].pk)
    before = snapshot()
    api = shops[intruder]["api"]
    args = (url,) if body is None else (url, body)
    response = getattr(api, method)(*args)
    assert response.status_code == 404, (method, url, response.content)
    assert problem(response)["code"] == "not_found"
    # With an Idempotency-Key too (a POST's key store must not leak or apply anything).
    if method == "post":
        assert api.post(url, body, HTTP_IDEMPOTENCY_KEY="same").status_code == 404
    assert snapshot() == before
    # The owner still reaches it the same way (the 404 was about the caller, not the object).
    if method == "get":
        assert getattr(target["api"], method)(url).status_code == 200


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


@pytest.mark.parametrize("owner, intruder", [("a", "b"), ("b", "a")])
@pytest.mark.parametrize("query", ["", "?status=pending", "?ordering=updated_at", "?limit=200"])
def test_order_lists_show_only_the_callers_orders(shops, owner, intruder, query):
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
        vendor=shops["a"]["vendor"], channel="phone", actor=Actor(role="staff", label="ops")
    )
    store = storefront_api()
    assert store.get(f"/orders/{phone_order.pk}").status_code == 404
    assert store.post(f"/orders/{phone_order.pk}/transitions", {"to": "cancelled"}).status_code == 404
    ids = {o["id"] for o in store.get("/orders").json()["results"]}
    assert str(phone_order.pk) not in ids
    assert ids == {str(shops["a"]["order"].pk), str(shops["b"]["order"].pk)}
