"""orders.apis: placing orders, reading them, transitions, zones and payment callbacks over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Stock
from catalog.selectors import stock_audit
from orders.models import Customer, Order, Payment
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import Api, problem, storefront_api, vendor_api
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor():
    return VendorFactory()


@pytest.fixture
def store():
    return storefront_api()


def order_body(vendor, zone, product, *, phone="+237677000111", quantity=2, method="mtn_momo"):
    return {
        "vendor": str(vendor.pk),
        "customer": {"phone": phone, "name": "Awa Mbarga"},
        "items": [{"product": str(product.pk), "quantity": quantity}],
        "payment_method": method,
        "address": "Carrefour Ndokoti",
        "zone": str(zone.pk),
    }


def test_the_storefront_places_an_order_with_items_totals_and_a_payment_request(store, vendor):
    zone = ZoneFactory(delivery_fee_xaf=500)
    product = ProductFactory(vendor=vendor, price_xaf=1500, initial_stock=5)
    response = store.post("/orders", order_body(vendor, zone, product, phone="677 00 01 11"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["channel"] == "storefront"
    assert (body["subtotal_xaf"], body["delivery_fee_xaf"], body["total_xaf"]) == (3000, 500, 3500)
    assert body["items"][0]["quantity"] == 2
    assert body["customer"]["phone"] == "+237677000111"
    [payment] = body["payments"]
    assert (payment["provider"], payment["amount_xaf"], payment["status"]) == ("mtn_momo", 3500, "pending")
    assert Payment.objects.get(pk=payment["id"]).provider_reference == payment["reference"]
    assert body["expires_at"] is not None
    assert Stock.objects.get(product=product).reserved == 2
    assert stock_audit() == []


def test_an_existing_customer_is_reused_never_created_twice(store, vendor):
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    existing = CustomerFactory(phone="+237677000111", name="Awa M.")
    for _ in range(2):
        assert store.post("/orders", order_body(vendor, zone, product, quantity=1)).status_code == 201
    assert Customer.objects.filter(phone="+237677000111").count() == 1
    assert Order.objects.filter(customer=existing).count() == 2
    assert Customer.objects.get(pk=existing.pk).name == "Awa M."


def test_out_of_stock_is_a_409_naming_the_items_and_nothing_is_placed(store, vendor):
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, sku="RARE", initial_stock=1)
    response = store.post("/orders", order_body(vendor, zone, product, quantity=3))
    assert response.status_code == 409
    body = problem(response)
    assert body["code"] == "out_of_stock"
    assert body["items"][0]["sku"] == "RARE"
    assert not Order.objects.exists()
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"customer": {"phone": "12", "name": "X"}}, "phone"),
        ({"items": []}, "items"),
        ({"items": [{"product": "x", "quantity": 1}]}, "items.0.product"),
        ({"items": [{"product": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f", "quantity": 0}]}, "items.0.quantity"),
        ({"payment_method": "bitcoin"}, "payment_method"),
        ({"zone": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f"}, "zone"),
        ({"vendor": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f"}, "vendor"),
        ({"total_xaf": 1}, "total_xaf"),
    ],
)
def test_bad_order_input_is_a_400_and_places_nothing(store, vendor, change, field):
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    response = store.post("/orders", {**order_body(vendor, zone, product), **change})
    assert response.status_code == 400, response.content
    assert field in problem(response)["errors"]
    assert not Order.objects.exists()
    assert not Customer.objects.exists()


def test_a_vendor_may_place_a_phone_order_for_its_own_shop_only(vendor):
    zone = ZoneFactory()
    own = ProductFactory(vendor=vendor, initial_stock=5)
    other_vendor = VendorFactory()
    other = ProductFactory(vendor=other_vendor, initial_stock=5)
    api = vendor_api(vendor)
    body = order_body(vendor, zone, own, method="cash")
    del body["vendor"]
    response = api.post("/orders", body)
    assert response.status_code == 201, response.content
    assert response.json()["channel"] == "phone"
    assert response.json()["payments"] == []
    assert api.post("/orders", order_body(other_vendor, zone, other)).status_code == 404
    assert (
        api.post("/orders", {**body, "items": [{"product": str(other.pk), "quantity": 1}]}).status_code == 404
    )
    assert Order.objects.count() == 1


def test_transitions_move_the_order_and_refusals_are_clear(vendor):
    order = OrderFactory(vendor=vendor)
    api = vendor_api(vendor)
    response = api.post(f"/orders/{order.pk}/transitions", {"to": "accepted", "note": "ok"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "accepted"
    refused = api.post(f"/orders/{order.pk}/transitions", {"to": "delivered"})
    assert refused.status_code == 409
    body = problem(refused)
    assert body["code"] == "invalid_transition"
    assert "preparing" in body["allowed"]
    assert api.post(f"/orders/{order.pk}/transitions", {"to": "teleported"}).status_code == 400


def test_the_storefront_may_cancel_its_pending_order_but_not_accept_it(store, vendor):
    order = OrderFactory(vendor=vendor)
    refused = store.post(f"/orders/{order.pk}/transitions", {"to": "accepted"})
    assert refused.status_code == 403
    assert problem(refused)["code"] == "transition_not_allowed"
    assert store.post(f"/orders/{order.pk}/transitions", {"to": "cancelled"}).json()["status"] == "cancelled"
    assert stock_audit() == []


def test_order_list_filters_by_status_and_reads_one_order(vendor):
    pending = OrderFactory(vendor=vendor)
    accepted = OrderFactory(vendor=vendor)
    api = vendor_api(vendor)
    api.post(f"/orders/{accepted.pk}/transitions", {"to": "accepted"})
    assert [o["id"] for o in api.get("/orders?status=pending").json()["results"]] == [str(pending.pk)]
    assert {o["id"] for o in api.get("/orders").json()["results"]} == {str(pending.pk), str(accepted.pk)}
    assert api.get(f"/orders/{pending.pk}").json()["number"] == pending.number
    assert api.get("/orders?status=lost").status_code == 400


def test_order_list_query_count_does_not_grow_with_the_page_size(vendor):
    for _ in range(12):
        OrderFactory(vendor=vendor, payment_method="mtn_momo")
    api = vendor_api(vendor)
    api.get("/orders")
    counts = []
    for limit in (1, 12):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"/orders?limit={limit}")
        assert len(response.json()["results"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 4


def test_zones_list_query_count_does_not_grow_with_the_page_size(vendor):
    for i in range(10):
        ZoneFactory(city="yaounde" if i % 2 else "douala")
    api = vendor_api(vendor)
    assert len(api.get("/zones?city=yaounde").json()["results"]) == 5
    counts = []
    for limit in (1, 10):
        with CaptureQueriesContext(connection) as queries:
            assert len(api.get(f"/zones?limit={limit}").json()["results"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 2


# --- Payment callbacks --------------------------------------------------------------------------------


MTN_SECRET = "test-mtn-secret"  # the test settings' secret


def signed(body: dict, secret: str = MTN_SECRET) -> tuple[str, dict]:
    raw = json.dumps(body)
    signature = "sha256=" + hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()
    return raw, {"HTTP_X_SIGNATURE": signature}


def placed_mobile_money_order(store, vendor):
    zone = ZoneFactory(delivery_fee_xaf=0)
    product = ProductFactory(vendor=vendor, price_xaf=1000, initial_stock=5)
    body = store.post("/orders", order_body(vendor, zone, product, quantity=1)).json()
    return body["id"], body["payments"][0]["reference"]


def test_a_signed_callback_marks_the_order_paid_and_a_replay_changes_nothing(store, vendor):
    order_id, reference = placed_mobile_money_order(store, vendor)
    raw, headers = signed({"reference": reference, "status": "succeeded", "amount_xaf": 1000})
    callbacks = Api()
    first = callbacks.post("/payments/callbacks/mtn_momo", raw, **headers)
    assert first.status_code == 200, first.content
    assert first.json() == {"reference": reference, "status": "succeeded"}
    assert Order.objects.get(pk=order_id).payment_status == "paid"
    events = Order.objects.get(pk=order_id).events.count()
    again = callbacks.post("/payments/callbacks/mtn_momo", raw, **headers)
    assert again.status_code == 200
    assert Order.objects.get(pk=order_id).events.count() == events
    assert len(Payment.objects.get(provider_reference=reference).callbacks) == 1


def test_a_bad_signature_is_a_401_and_changes_nothing(store, vendor):
    order_id, reference = placed_mobile_money_order(store, vendor)
    raw, _ = signed({"reference": reference, "status": "succeeded", "amount_xaf": 1000})
    _, forged = signed({"reference": reference, "status": "succeeded", "amount_xaf": 1000}, secret="guess")
    callbacks = Api()
    for headers in ({}, forged, {"HTTP_X_SIGNATURE": "sha256=00"}):
        response = callbacks.post("/payments/callbacks/mtn_momo", raw, **headers)
        assert response.status_code == 401
        assert problem(response)["code"] == "invalid_signature"
    # Signed with the other provider's secret: refused too.
    _, orange = signed(
        {"reference": reference, "status": "succeeded", "amount_xaf": 1000}, "test-orange-secret"
    )
    assert callbacks.post("/payments/callbacks/mtn_momo", raw, **orange).status_code == 401
    assert Payment.objects.get(provider_reference=reference).status == "pending"
    assert Order.objects.get(pk=order_id).payment_status == "unpaid"


def test_a_callback_for_an_unknown_reference_is_a_404_unknown_payment():
    raw, headers = signed({"reference": "nobody", "status": "failed"})
    response = Api().post("/payments/callbacks/mtn_momo", raw, **headers)
    assert response.status_code == 404
    assert problem(response)["code"] == "unknown_payment"
    assert Api().post("/payments/callbacks/paypal", raw, **headers).status_code == 404
