"""okada.core.api.idempotency: replays, mismatches, in-flight requests, scoping, pruning, and 20
identical requests at once against a live server (real threads, separate connections).

A request "in flight" is a real one, run in a thread of its own (its own connection) and held
just before its handler's first statement on products: its key is locked, its work not done."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.urls import path
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.models import Product
from catalog.services import stock_adjust, vendor_activate, vendor_suspend
from okada.core.actors import Actor
from okada.core.api import idempotency
from okada.core.api.problems import UnsupportedMediaType
from okada.core.api.views import VENDOR_STANDING_CODES, ApiView, is_kept
from okada.core.errors import (
    Conflict,
    DomainError,
    IdempotencyMismatch,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    Throttled,
)
from okada.core.models import IdempotencyRecord, JobRun
from okada.core.tasks import prune_idempotency_keys
from orders.models import Customer, Order
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor
from tests.concurrency import WAIT, a_lock_is_awaited, in_thread, poll, post_together
from tests.credentials.factories import Api, problem, storefront_api, storefront_key, vendor_api, vendor_key
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
    other = api.post(
        "/products", {**NEW, "sku": "IDEM-2"}, HTTP_IDEMPOTENCY_KEY="k-3", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert other.status_code == 422
    assert problem(other)["code"] == "idempotency_mismatch"
    assert problem(other)["detail"] == (
        "This Idempotency-Key was already used with a different body: send a new key for a new request."
    )
    assert not Product.objects.filter(sku="IDEM-2").exists()
    elsewhere = api.post(
        "/products/bulk", {"items": []}, HTTP_IDEMPOTENCY_KEY="k-3", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert problem(elsewhere)["detail"] == (
        "This Idempotency-Key was already used for a different request (POST /api/v1/products)."
    )


def _quiet_client() -> Client:
    """A test client that answers a server error as the server would, without raising it."""
    return Client(HTTP_HOST="localhost", raise_request_exception=False)


class Paused:
    """A POST run in a thread with a connection of its own, held before its handler's first
    statement on products until `go` is set (its key taken, nothing of its work done)."""

    def __init__(self, secret: str, key: str, body: Any = NEW) -> None:
        self.holding, self.go = threading.Event(), threading.Event()
        self.backend_pid = 0
        self.response: Any = None
        self.thread, self.errors = in_thread(lambda: self._post(secret, key, body))
        assert self.holding.wait(WAIT)

    def _post(self, secret: str, key: str, body: Any) -> None:
        with connection.execute_wrapper(self._hold):
            api = Api(secret, client=_quiet_client())
            self.response = api.post("/products", body, HTTP_IDEMPOTENCY_KEY=key)

    def _hold(self, execute, sql, params, many, context):
        if not self.holding.is_set() and '"catalog_product"' in sql:
            self.backend_pid = connection.connection.info.backend_pid
            self.holding.set()
            self.go.wait(WAIT)
        return execute(sql, params, many, context)

    def finish(self) -> None:
        self.go.set()
        self.thread.join(WAIT)


@pytest.mark.django_db(transaction=True)
def test_a_request_while_another_connection_runs_the_same_key_is_a_409_then_replays_it():
    secret = vendor_key(VendorFactory())
    first = Paused(secret, "k-4")
    try:
        response = Api(secret).post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-4")
    finally:
        first.finish()
    assert response.status_code == 409
    assert problem(response)["code"] == "idempotency_in_flight"
    assert response["Retry-After"] == "1"
    assert first.errors == []
    assert first.response.status_code == 201
    again = Api(secret).post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-4")
    assert (again.status_code, again.content) == (201, first.response.content)
    assert again["Idempotent-Replayed"] == "true"
    assert Product.objects.filter(sku="IDEM-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_request_frees_its_key_at_once():
    # Its connection's transaction aborts and takes the key's lock with it: the retry runs now,
    # not after a timeout.
    secret = vendor_key(VendorFactory())
    killed = Paused(secret, "k-killed")
    try:
        assert Api(secret).post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-killed").status_code == 409
        with psycopg.connect(**connection.get_connection_params()) as other:
            ended = other.execute("SELECT pg_terminate_backend(%s, 10000)", [killed.backend_pid]).fetchone()
        assert ended == (True,)
        retry = Api(secret).post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-killed")
    finally:
        killed.finish()  # its next statement fails on the dead connection (not checked)
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    assert Product.objects.filter(sku="IDEM-1").count() == 1
    assert IdempotencyRecord.objects.get(key="k-killed").response_body == retry.content


@pytest.mark.django_db(transaction=True)
def test_the_lookup_reads_a_record_committed_while_its_caller_waited_for_the_lock():
    # The snapshot point. The previous holder commits its record, then its lock goes; the lookup
    # must read a snapshot taken after it holds the lock, never its caller's. Here the caller's
    # statement starts (and takes its snapshot) while the holder has not committed, waits on a
    # gate, and only then calls the lookup: the record must be there.
    scope, key, gate = "test:snapshot", "k-snap", 1_402_021
    expired_before = timezone.now() - timedelta(hours=1)
    params = connection.get_connection_params()
    with psycopg.connect(**params) as holder, psycopg.connect(**params, autocommit=True) as gatekeeper:
        assert holder.execute(idempotency._LOOKUP, [scope, key, expired_before]).fetchall() == []
        holder.execute(
            "INSERT INTO core_idempotencyrecord (id, scope, key, request_hash, method, path, state,"
            " locked_until, response_status, response_headers, response_body, created_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'h', 'POST', '/p', 'done', now(), 201, '{}', 'kept', now())",
            [scope, key],
        )
        gatekeeper.execute("SELECT pg_advisory_lock(%s)", [gate])
        found: list[Any] = []

        def look_up() -> None:
            with psycopg.connect(**params) as caller:
                found.extend(
                    caller.execute(
                        "SELECT l.acquired, l.response_body"
                        "  FROM (SELECT pg_advisory_lock(%s)::text AS gate OFFSET 0) g"
                        " CROSS JOIN LATERAL okada_idempotency_lookup(%s || g.gate, %s, %s) l",
                        [gate, scope, key, expired_before],
                    ).fetchall()
                )

        thread, errors = in_thread(look_up)
        poll(a_lock_is_awaited, "the caller's statement to wait at the gate")
        holder.commit()  # the record, then the key's lock released
        gatekeeper.execute("SELECT pg_advisory_unlock(%s)", [gate])
        thread.join(WAIT)
    assert errors == []
    assert found == [(True, b"kept")]


@pytest.mark.django_db
def test_an_answer_of_500_keeps_nothing_and_a_retry_runs_again():
    api = Api(vendor_key(VendorFactory()), client=_quiet_client())

    def break_after_the_product(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "catalog_stock"'):
            raise RuntimeError("the stock row could not be written")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(break_after_the_product):
        failed = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-500")
    assert failed.status_code == 500
    assert not IdempotencyRecord.objects.filter(key="k-500").exists()
    assert not Product.objects.exists()
    retry = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-500")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Product.objects.count() == 1


# --- Which answers are kept: those about the request, not refusals of the caller --------------

STAFF = Actor(role=Actor.STAFF, label="ops")


@pytest.mark.django_db
def test_a_suspended_vendors_403_is_not_kept_and_the_same_key_runs_again_once_reactivated():
    vendor = VendorFactory()
    api = vendor_api(vendor)
    vendor_suspend(vendor=vendor, actor=STAFF)
    refused = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-suspended")
    assert refused.status_code == 403
    assert problem(refused)["code"] == "vendor_suspended"
    assert not IdempotencyRecord.objects.filter(key="k-suspended").exists()

    vendor_activate(vendor=vendor, actor=STAFF)
    retry = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-suspended")
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    again = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-suspended")  # now kept: replayed
    assert (again.status_code, again.content, again["Idempotent-Replayed"]) == (201, retry.content, "true")
    assert Product.objects.filter(vendor=vendor).count() == 1


def _order(vendor, product, *, quantity: int = 1) -> dict[str, Any]:
    return {
        "vendor": str(vendor.pk),
        "customer": {"phone": "+237677555111", "name": "Ngo Bassa"},
        "items": [{"product": str(product.pk), "quantity": quantity}],
        "payment_method": "cash",
        "address": "Bonapriso",
        "zone": str(ZoneFactory().pk),
    }


@pytest.mark.django_db
def test_an_order_refused_for_an_inactive_vendor_is_not_kept_and_the_same_key_places_it_once_active():
    # The vendor's standing, not the request: the 409 `vendor_not_active` is not replayed for 24 h
    # after staff activate the vendor (views.VENDOR_STANDING_CODES).
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    vendor_suspend(vendor=vendor, actor=STAFF)
    store, body = storefront_api(), _order(vendor, product)
    refused = store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-inactive")
    assert (refused.status_code, problem(refused)["code"]) == (409, "vendor_not_active")
    assert not IdempotencyRecord.objects.filter(key="k-inactive").exists()
    assert not Customer.all_objects.exists()

    vendor_activate(vendor=vendor, actor=STAFF)
    retry = store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-inactive")
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    again = store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-inactive")  # now kept: replayed
    assert (again.status_code, again.content, again["Idempotent-Replayed"]) == (201, retry.content, "true")
    assert list(Order.objects.values_list("pk", flat=True)) == [uuid.UUID(retry.json()["id"])]


@pytest.mark.django_db
def test_an_order_refused_for_its_own_items_is_kept_and_replayed_after_the_stock_comes_back():
    # Out of stock is the state the request met: replayed under its key even once restocked (a
    # new attempt is a new key), unlike the vendor's standing above.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=1)
    store, body = storefront_api(), _order(vendor, product, quantity=2)
    refused = store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-short")
    assert (refused.status_code, problem(refused)["code"]) == (409, "out_of_stock")
    assert IdempotencyRecord.objects.get(key="k-short").response_status == 409

    stock_adjust(product=product, delta=5, reason="delivery", actor=staff_actor())
    retry = store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-short")
    assert (retry.status_code, retry.content, retry["Idempotent-Replayed"]) == (409, refused.content, "true")
    assert not Order.objects.exists()
    assert store.post("/orders", body, HTTP_IDEMPOTENCY_KEY="k-short-2").status_code == 201


def test_the_vendor_standing_codes_are_error_codes_not_kept_while_other_409s_are():
    assert {"vendor_not_active"} == VENDOR_STANDING_CODES
    assert set(DomainError.registry) >= VENDOR_STANDING_CODES
    assert not is_kept(409, "vendor_not_active")
    assert is_kept(409, "out_of_stock")
    assert is_kept(409, None)
    assert is_kept(201, None)
    assert not is_kept(403, "vendor_suspended")


_ran: list[int] = []  # the statuses the handler below answered, one per run
REFUSALS: dict[int, type[DomainError]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: NotAllowed,
    404: NotFound,
    409: Conflict,
    422: IdempotencyMismatch,
    415: UnsupportedMediaType,
    429: Throttled,
}


class _AnswersApi(ApiView):
    """POST answers the status in its URL, as its handler's refusal (or 201)."""

    permission_classes: list[Any] = []

    def post(self, request: Request, status: int) -> Response:
        _ran.append(status)
        if status in REFUSALS:
            raise REFUSALS[status]()
        return Response({"n": len(_ran)}, status=status)


urlpatterns = [path("api/v1/answers/<int:status>", _AnswersApi.as_view())]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    "status, kept",
    [
        (201, True),
        (400, True),
        (404, True),
        (409, True),
        (422, True),
        (401, False),
        (403, False),
        (415, False),
        (429, False),
    ],
)
def test_an_answer_is_kept_when_it_is_about_the_request_not_when_it_refuses_the_caller(status, kept):
    _ran.clear()
    api = vendor_api(VendorFactory())
    first = api.post(f"/answers/{status}", {}, HTTP_IDEMPOTENCY_KEY=f"k-{status}")
    retry = api.post(f"/answers/{status}", {}, HTTP_IDEMPOTENCY_KEY=f"k-{status}")
    assert (first.status_code, retry.status_code) == (status, status)
    assert IdempotencyRecord.objects.filter(key=f"k-{status}").exists() is kept
    if kept:  # replayed: the handler ran once
        assert _ran == [status]
        assert (retry.content, retry["Idempotent-Replayed"]) == (first.content, "true")
    else:  # nothing kept: the retry ran the handler again
        assert _ran == [status, status]
        assert "Idempotent-Replayed" not in retry


@pytest.mark.django_db(transaction=True)
def test_identical_requests_at_once_refused_for_the_caller_then_allowed_make_one_product(live_server):
    # A refusal that is not kept releases the key with its transaction: requests at the same
    # moment still get one answer each (the refusal, or 409 in flight), none writes; once the
    # vendor is reactivated the same key creates one product and every answer is that one or 409.
    vendor = VendorFactory()
    secret = vendor_key(vendor)
    vendor_suspend(vendor=vendor, actor=STAFF)
    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/json",
        "Idempotency-Key": "k-race",
    }
    url, body = f"{live_server.url}/api/v1/products", json.dumps(NEW).encode()

    refused = post_together(url, body, [headers] * 10)
    codes = {json.loads(content)["code"] for _status, content in refused}
    assert {status for status, _ in refused} <= {403, 409}, refused
    assert codes <= {"vendor_suspended", "idempotency_in_flight"}, refused
    assert "vendor_suspended" in codes
    assert not IdempotencyRecord.objects.filter(key="k-race").exists()
    assert not Product.objects.exists()

    vendor_activate(vendor=vendor, actor=STAFF)
    answers = post_together(url, body, [headers] * 10)
    created = [content for status, content in answers if status == 201]
    assert created and all(content == created[0] for content in created), answers
    assert {status for status, _ in answers} <= {201, 409}, answers
    assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_identical_orders_at_once_for_an_inactive_vendor_then_active_place_one_order(live_server):
    # 409 `vendor_not_active` is not kept: requests at once each get it (or 409 in flight) and
    # nothing is written; once the vendor is active the same key places exactly one order.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=100)
    vendor_suspend(vendor=vendor, actor=STAFF)
    headers = {
        "Authorization": f"Bearer {storefront_key()}",
        "Content-Type": "application/json",
        "Idempotency-Key": "k-order-race",
    }
    url, body = f"{live_server.url}/api/v1/orders", json.dumps(_order(vendor, product)).encode()

    refused = post_together(url, body, [headers] * 10)
    codes = {json.loads(content)["code"] for _status, content in refused}
    assert {status for status, _ in refused} == {409}, refused
    assert codes <= {"vendor_not_active", "idempotency_in_flight"}, refused
    assert "vendor_not_active" in codes
    assert not IdempotencyRecord.objects.filter(key="k-order-race").exists()
    assert not Order.objects.exists()

    vendor_activate(vendor=vendor, actor=STAFF)
    answers = post_together(url, body, [headers] * 20)
    created = [content for status, content in answers if status == 201]
    assert created and all(content == created[0] for content in created), answers
    for status, content in answers:
        if status != 201:
            assert (status, json.loads(content)["code"]) == (409, "idempotency_in_flight"), answers
    assert Order.objects.count() == 1
    assert json.loads(created[0])["id"] == str(Order.objects.get().pk)


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
def test_a_body_sent_as_another_media_type_keeps_nothing_and_the_corrected_retry_runs():
    """A 415 says how the body was labelled, not what it asks (the fingerprint is the method,
    path and body, not the Content-Type): kept, it was replayed to the same request with the
    right label for 24 h, and the order or product it carried was never made."""
    api = vendor_api(VendorFactory())
    headers: dict[str, Any] = {**api.headers, "HTTP_IDEMPOTENCY_KEY": "k-415"}
    first = api.client.generic(
        "POST", "/api/v1/products", json.dumps(NEW), content_type="text/plain", **headers
    )
    assert (first.status_code, problem(first)["code"]) == (415, "unsupported_media_type")
    assert not IdempotencyRecord.objects.exists()
    retry = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-415")
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    assert Product.objects.filter(sku=NEW["sku"]).count() == 1
    again = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-415")
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")


@pytest.mark.django_db
def test_a_key_over_255_characters_is_a_400():
    api = vendor_api(VendorFactory())
    response = api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in problem(response)["errors"]
    assert not Product.objects.exists()
    assert api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k" * 255).status_code == 201


@pytest.mark.django_db
def test_a_post_that_keeps_no_answer_ignores_the_header_even_malformed():
    api = vendor_api(VendorFactory())
    assert api.post("/no-such-thing", {}, HTTP_IDEMPOTENCY_KEY="k" * 256).status_code == 404
    assert not IdempotencyRecord.objects.exists()


def _previous_version_claim(key: str) -> IdempotencyRecord:
    """What the previous version's claim of NEW under `key` looks like, committed, lock time ahead."""
    return IdempotencyRecord.objects.create(
        scope=f"key:{_only_key_id()}",
        key=key,
        request_hash=idempotency.fingerprint("POST", "/api/v1/products", json.dumps(NEW).encode()),
        method="POST",
        path="/api/v1/products",
        state=IdempotencyRecord.State.IN_FLIGHT,
        locked_until=timezone.now() + timedelta(seconds=60),
    )


@pytest.mark.django_db(transaction=True)
def test_a_claim_of_the_previous_version_committed_mid_request_wins_and_nothing_is_written_twice():
    # Rolling deploy: a previous-version worker (which takes no lock) commits its `in_flight`
    # claim while this version runs the same request. Only one of the two may write: this one
    # answers 409 and rolls its work back, the claim stays the other's.
    secret = vendor_key(VendorFactory())
    paused = Paused(secret, "k-6")
    try:
        claim = _previous_version_claim("k-6")
    finally:
        paused.finish()
    assert paused.errors == []
    assert paused.response.status_code == 409
    assert problem(paused.response)["code"] == "idempotency_in_flight"
    assert paused.response["Retry-After"] == "1"
    assert not Product.objects.filter(sku="IDEM-1").exists()
    claim.refresh_from_db()
    assert claim.state == IdempotencyRecord.State.IN_FLIGHT


@pytest.mark.django_db
def test_a_claim_of_the_previous_version_is_honoured_and_an_expired_key_is_a_new_request():
    # During a rolling deploy the previous version's workers commit an `in_flight` claim first:
    # a 409 until its lock time, then taken over by the same request.
    api = vendor_api(VendorFactory())
    api.post("/products", {"sku": "warm", "name": "w", "price_xaf": 1})
    claim = _previous_version_claim("k-5")
    assert api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-5").status_code == 409
    IdempotencyRecord.objects.filter(pk=claim.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert api.post("/products", NEW, HTTP_IDEMPOTENCY_KEY="k-5").status_code == 201
    assert IdempotencyRecord.objects.get(key="k-5").state == IdempotencyRecord.State.DONE
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
