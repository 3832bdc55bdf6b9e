"""okada.core.api.idempotency: replays, mismatches, in-flight requests, scoping, pruning, and 20
identical requests at once against a live server (real threads, separate connections)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Product
from okada.core.api import idempotency
from okada.core.models import IdempotencyRecord, JobRun
from okada.core.tasks import prune_idempotency_keys
from orders.models import Customer, Order
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.concurrency import post_together
from tests.credentials.factories import Api, problem, storefront_key, vendor_api
from tests.orders.factories import ZoneFactory

NEW = {"sku": "IDEM-1", "name": "Idem", "price_xaf": 100}


@pytest.mark.django_db
def test_a_retry_replays_the_first_status_and_body_without_a_second_write():
    api = vendor_api(VendorFactory())
    first = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == "application/json"
    assert Product.objects.count() == 1


@pytest.mark.django_db
def test_a_refusal_is_replayed_too_and_a_json_body_is_compared_by_value():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor, sku="IDEM-1")
    api = vendor_api(vendor)
    first = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-2")
    assert first.status_code == 409
    reordered = json.dumps(dict(reversed(list(NEW.items()))), indent=2)
    again = api.post("/products", reordered, HTTP_IDEMPOTENCY_KEY="k-2")
    assert again.status_code == 409
    assert again.content == first.content


@pytest.mark.django_db
def test_the_same_key_for_another_request_is_a_422_and_changes_nothing():
    api = vendor_api(VendorFactory())
    api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-3")
    other = api.post("/products", {**NEW, "sku": "IDEM-2"}, HTTP_IDEMPOTENCY_KEY="k-3")
    assert other.status_code == 422
    assert problem(other)["code"] == "idempotency_mismatch"
    assert not Product.objects.filter(sku="IDEM-2").exists()


@pytest.mark.django_db
def test_a_request_while_the_first_is_in_flight_is_a_409():
    api = vendor_api(VendorFactory())
    body = json.dumps(NEW).encode()
    api.post("/products", {"sku": "warm", "name": "w", "price_xaf": 1})
    # The first request is running: its claim is taken and not done.
    credential_scope = f"key:{_only_key_id()}"
    claim = idempotency.claim(
        scope=credential_scope, key="k-4", method="POST", path="/api/v1/products", body=body
    )
    assert isinstance(claim, idempotency.Claim)
    response = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-4")
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_in_flight"
    assert not Product.objects.filter(sku="IDEM-1").exists()


def _only_key_id():
    from okada.credentials.models import ApiKey

    return ApiKey.objects.get().pk


@pytest.mark.django_db
def test_keys_are_scoped_per_credential():
    one, two = vendor_api(VendorFactory()), vendor_api(VendorFactory())
    assert one.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    second = two.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="shared")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert second.json()["id"] != one.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="shared").json()["id"]
    assert Product.objects.count() == 2


@pytest.mark.django_db
def test_a_key_over_255_characters_is_a_400():
    api = vendor_api(VendorFactory())
    response = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in problem(response)["errors"]
    assert not Product.objects.exists()
    assert api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k" * 255).status_code == 201


@pytest.mark.django_db
def test_an_abandoned_claim_is_taken_over_after_its_lock_and_an_expired_key_is_a_new_request():
    api = vendor_api(VendorFactory())
    api.post("/products", {"sku": "warm", "name": "w", "price_xaf": 1})
    scope = f"key:{_only_key_id()}"
    body = json.dumps(NEW).encode()
    claim = idempotency.claim(scope=scope, key="k-5", method="POST", path="/api/v1/products", body=body)
    assert isinstance(claim, idempotency.Claim)
    IdempotencyRecord.objects.filter(pk=claim.record_id).update(
        locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-5").status_code == 201
    IdempotencyRecord.objects.filter(key="k-5").update(created_at=timezone.now() - timedelta(hours=25))
    reused = api.post("/products", {**NEW, "sku": "IDEM-9"}, HTTP_IDEMPOTENCY_KEY="k-5")
    assert reused.status_code == 201
    assert Product.objects.filter(sku="IDEM-9").exists()


@pytest.mark.django_db
def test_the_prune_job_deletes_records_older_than_24_hours():
    api = vendor_api(VendorFactory())
    api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="old")
    api.post("/products", {**NEW, "sku": "N2"}, HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    prune_idempotency_keys()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    run = JobRun.objects.get(name="core.prune_idempotency_keys")
    assert (run.outcome, run.summary) == ("success", {"deleted": 1})


@pytest.mark.django_db
def test_the_prune_job_is_installed_in_beat_hourly():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="core.prune_idempotency_keys")
    assert (task.crontab.minute, task.crontab.hour) == ("20", "*")


@pytest.mark.django_db(transaction=True)
def test_twenty_identical_order_requests_at_once_place_one_order(live_server):
    vendor = VendorFactory()
    zone = ZoneFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    secret = storefront_key()
    body = json.dumps(
        {
            "vendor": str(vendor.pk),
            "customer": {"phone": "+237677555000", "name": "Ngo Bassa"},
            "items": [{"product": str(product.pk), "quantity": 1}],
            "payment_method": "cash",
            "address": "Bonapriso",
            "zone": str(zone.pk),
        }
    ).encode()
    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/json",
        "Idempotency-Key": "checkout-42",
    }
    answers = post_together(f"{live_server.url}/api/v1/orders", body, [headers] * 20)
    assert Order.objects.count() == 1
    assert Customer.objects.count() == 1
    created = [content for status, content in answers if status == 201]
    assert created, answers
    assert all(content == created[0] for content in created)
    assert {status for status, _ in answers} <= {201, 409}
    for status, content in answers:
        if status == 409:
            assert json.loads(content)["code"] == "idempotency_in_flight"
    assert json.loads(created[0])["id"] == str(Order.objects.get().pk)
    # Afterwards every retry gets the same answer.
    retry = Api(secret).post("/orders", body.decode(), HTTP_IDEMPOTENCY_KEY="checkout-42")
    assert retry.status_code == 201
    assert retry.content == created[0]
