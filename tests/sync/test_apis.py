"""sync.apis over HTTP: wiring, credentials and scopes, tenant isolation, gzip, problem+json.

Pulls only serve committed transactions below the snapshot horizon, so these tests commit
(transaction=True) like production does.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid

import pytest
from django.db import connections, transaction
from django.test import override_settings

from catalog.models import Product, Stock
from okada.core.actors import Actor
from sync.models import Device, Mutation, SyncConflict
from sync.services import device_revoke
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import Api, problem, storefront_api, vendor_api
from tests.orders.factories import OrderFactory
from tests.sync.factories import WAIT

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(role=Actor.STAFF, label="ops")


def register(api: Api, device_id: uuid.UUID | None = None, name: str = "Caisse 1") -> str:
    device_id = device_id or uuid.uuid4()
    response = api.post("/sync/devices", {"device_id": str(device_id), "name": name})
    assert response.status_code in (200, 201), response.content
    return str(device_id)


def pull_all(api: Api, device_id: str, limit: int = 500) -> tuple[dict[str, dict[str, dict]], list[dict]]:
    copy: dict[str, dict[str, dict]] = {}
    cursors: dict[str, str | None] = {"0": None, "1": None, "2": None}
    pages = []
    for _ in range(100):
        response = api.post("/sync/pull", {"device_id": device_id, "cursors": cursors, "limit": limit})
        assert response.status_code == 200, response.content
        page = response.json()
        pages.append(page)
        for table, change in page["changes"].items():
            rows = copy.setdefault(table, {})
            rows.update({r["id"]: r for r in change["upserted"]})
            for gone in change["deleted"]:
                rows.pop(gone, None)
        cursors = page["cursors"]
        if not any(page["has_more"].values()):
            return copy, pages
    raise AssertionError("pull never finished")


@pytest.fixture
def vendor():
    return VendorFactory()


@pytest.fixture
def api(vendor):
    return vendor_api(vendor)


def test_a_device_registers_once_and_again_idempotently(api, vendor):
    device_id = uuid.uuid4()
    first = api.post("/sync/devices", {"device_id": str(device_id), "name": "Caisse 1"})
    again = api.post("/sync/devices", {"device_id": str(device_id), "name": "Caisse 2"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {
        "device_id": str(device_id),
        "name": "Caisse 2",
        "last_mutation_id": 0,
        "created_at": first.json()["created_at"],
    }
    assert Device.objects.get().vendor == vendor


@pytest.mark.parametrize("device_id", [1, True, 0])
def test_a_device_id_that_is_not_a_uuid_text_is_a_400_and_registers_nothing(api, device_id):
    # DRF's UUIDField read an integer (and `true`) as UUID(int=...): `"device_id": 1` registered
    # the device 00000000-0000-0000-0000-000000000001, an id every careless app would share.
    response = api.post("/sync/devices", {"device_id": device_id, "name": "Caisse"})
    assert response.status_code == 400, response.content
    assert list(problem(response)["errors"]) == ["device_id"]
    assert not Device.objects.exists()
    pushed = api.post(
        "/sync/push", {"device_id": device_id, "mutations": [{"id": 1, "name": "x", "args": {}}]}
    )
    assert (pushed.status_code, list(problem(pushed)["errors"])) == (400, ["device_id"])


def test_the_nil_uuid_registers_no_new_device_and_one_registered_before_goes_on(api, vendor):
    # The value of an id a device app never set: every device with that bug would share one
    # record and its mutation ids, one's push taken for a replay of another's, its changes dropped.
    nil = str(uuid.UUID(int=0))
    response = api.post("/sync/devices", {"device_id": nil, "name": "Caisse"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400, response.content
    assert problem(response)["errors"] == {
        "device_id": ["device_id must be a UUID the device drew at random, not the nil UUID."]
    }
    assert not Device.objects.exists()
    # One registered before this rule: it keeps its record, registering again renames it.
    Device.objects.create(id=uuid.UUID(int=0), vendor=vendor, name="Ancienne caisse")
    again = api.post("/sync/devices", {"device_id": nil, "name": "Caisse 1"})
    assert again.status_code == 200, again.content
    assert Device.objects.get().name == "Caisse 1"


def test_another_vendors_device_id_is_refused_at_registration_and_not_found_elsewhere(api):
    device_id = register(api)
    intruder = vendor_api(VendorFactory())
    taken = intruder.post("/sync/devices", {"device_id": device_id, "name": "x"})
    pulled = intruder.post("/sync/pull", {"device_id": device_id})
    pushed = intruder.post(
        "/sync/push", {"device_id": device_id, "mutations": [{"id": 1, "name": "product.delete", "args": {}}]}
    )
    assert (taken.status_code, problem(taken)["code"]) == (409, "device_taken")
    assert (pulled.status_code, problem(pulled)["code"]) == (404, "not_found")
    assert (pushed.status_code, problem(pushed)["code"]) == (404, "not_found")
    assert Device.objects.get().last_mutation_id == 0


def test_another_vendors_device_id_is_taken_alike_live_or_revoked_naming_nothing_of_it(api, vendor):
    """Registering an id another vendor holds is a 409 `device_taken` (README "Devices": the id is
    the device's choice, registering claims it), and says nothing more of that device: the same
    answer, in the same words, whether it is live or revoked (a 403 `device_revoked` would tell
    its state) and whoever asks; pulls and pushes naming it are 404 like any other vendor's object."""
    live, revoked = register(api), register(api, name="Caisse 2")
    device_revoke(device=Device.objects.get(pk=revoked), actor=STAFF)
    intruder = vendor_api(VendorFactory())

    answers = [intruder.post("/sync/devices", {"device_id": d, "name": "x"}) for d in (live, revoked)]

    assert [(a.status_code, problem(a)["code"]) for a in answers] == [(409, "device_taken")] * 2
    assert problem(answers[0])["detail"] == problem(answers[1])["detail"]
    assert "Caisse" not in answers[0].content.decode() + answers[1].content.decode()
    for device_id in (live, revoked):
        pulled = intruder.post("/sync/pull", {"device_id": device_id})
        assert (pulled.status_code, problem(pulled)["code"]) == (404, "not_found")
    assert sorted(Device.objects.values_list("name", flat=True)) == ["Caisse 1", "Caisse 2"]
    assert set(Device.objects.values_list("vendor", flat=True)) == {vendor.pk}


def test_only_a_vendor_credential_with_the_sync_scope_syncs(vendor):
    no_scope = vendor_api(vendor, scopes=["products:read"])
    storefront = storefront_api()
    nobody = Api()
    for client, status in ((no_scope, 403), (storefront, 403), (nobody, 401)):
        response = client.post("/sync/devices", {"device_id": str(uuid.uuid4()), "name": "x"})
        assert response.status_code == status
        problem(response)
    assert not Device.objects.exists()


def test_the_initial_download_over_http_is_gzipped_and_complete(api, vendor):
    products = [ProductFactory(vendor=vendor, initial_stock=3) for _ in range(12)]
    device_id = register(api)

    plain = api.post("/sync/pull", {"device_id": device_id, "limit": 5})
    zipped = api.post("/sync/pull", {"device_id": device_id, "limit": 5}, HTTP_ACCEPT_ENCODING="gzip")

    assert plain["Content-Type"] == "application/json" and "Content-Encoding" not in plain
    assert zipped["Content-Encoding"] == "gzip"
    unzipped, body = json.loads(gzip.decompress(zipped.content)), plain.json()
    # The same page (the cursors differ: each first pull notes the horizon of its moment).
    assert {k: v for k, v in unzipped.items() if k != "cursors"} == {
        k: v for k, v in body.items() if k != "cursors"
    }
    assert set(body) == {"changes", "cursors", "has_more", "last_mutation_id", "reset"}
    copy, pages = pull_all(api, device_id, limit=5)
    assert set(copy["products"]) == {str(p.pk) for p in products}
    assert len(copy["stock"]) == 12 and len(pages) > 3


def test_pulled_times_are_written_as_the_rest_api_writes_them(api, vendor):
    # DESIGN: times are RFC 3339 UTC; a device parses the pull's and the REST API's with one
    # format (the pull wrote "2026-09-04T14:28:14.5+00:00" where REST writes "...14.500000Z").
    product = ProductFactory(vendor=vendor, initial_stock=3)
    order = OrderFactory(vendor=vendor, items=[(product, 1)])
    copy, _ = pull_all(api, register(api))
    rest_product = api.get(f"/products/{product.pk}").json()
    assert copy["products"][str(product.pk)]["updated_at"] == rest_product["updated_at"]
    assert copy["stock"][str(product.stock.pk)]["updated_at"].endswith("Z")
    rest_order = api.get(f"/orders/{order.pk}").json()
    pulled = copy["orders"][str(order.pk)]
    assert (pulled["placed_at"], pulled["updated_at"]) == (rest_order["placed_at"], rest_order["updated_at"])
    assert all(len(value) == len("2026-11-22T09:30:00.000000Z") for value in (pulled["placed_at"],))


def test_a_push_over_http_applies_once_and_a_retry_replays(api, vendor):
    product = ProductFactory(vendor=vendor, initial_stock=10)
    device_id = register(api)
    body = {
        "device_id": device_id,
        "mutations": [
            {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -3}}
        ],
    }

    first = api.post("/sync/push", body)
    retry = api.post("/sync/push", body)

    assert first.status_code == 200, first.content
    assert first.json() == {
        "last_mutation_id": 1,
        "results": [{"id": 1, "status": "applied", "code": None, "conflict_id": None}],
    }
    assert retry.json()["results"][0]["status"] == "duplicate"
    assert Stock.objects.get(product=product).on_hand == 7


def test_a_gap_is_a_409_problem_that_says_where_the_server_is(api, vendor):
    product = ProductFactory(vendor=vendor, initial_stock=10)
    device_id = register(api)
    response = api.post(
        "/sync/push",
        {
            "device_id": device_id,
            "mutations": [
                {"id": 2, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -1}}
            ],
        },
    )
    body = problem(response)
    assert (response.status_code, body["code"], body["last_mutation_id"]) == (409, "mutation_gap", 0)
    assert Stock.objects.get(product=product).on_hand == 10


def test_a_revoked_device_is_refused_with_403(api):
    device_id = register(api)
    device_revoke(device=Device.objects.get(pk=device_id), actor=STAFF, reason="volé")
    for path, body in (
        ("/sync/pull", {"device_id": device_id}),
        (
            "/sync/push",
            {"device_id": device_id, "mutations": [{"id": 1, "name": "product.delete", "args": {}}]},
        ),
        ("/sync/devices", {"device_id": device_id, "name": "encore"}),
    ):
        response = api.post(path, body)
        assert (response.status_code, problem(response)["code"]) == (403, "device_revoked"), path


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/sync/devices", {"device_id": "nope", "name": "x"}, "device_id"),
        ("/sync/devices", {"device_id": str(uuid.uuid4()), "name": "a\u0000b"}, "name"),
        ("/sync/devices", {"device_id": str(uuid.uuid4()), "name": "\u200b\ufeff"}, "name"),  # unseen
        ("/sync/pull", {"device_id": str(uuid.uuid4()), "cursors": {"3": None}}, "cursors.3"),
        ("/sync/pull", {"device_id": str(uuid.uuid4()), "limit": 0}, "limit"),
        ("/sync/pull", {"device_id": str(uuid.uuid4()), "since": 1}, "since"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": []}, "mutations"),
        # An envelope that cannot be recorded (no usable id): the whole push is a 400.
        ("/sync/push", {"device_id": "nope", "mutations": [{"id": 1}]}, "device_id"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": "x"}, "mutations"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [7]}, "mutations.0"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"name": "x"}]}, "mutations.0.id"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"id": "un"}]}, "mutations.0.id"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"id": 0}]}, "mutations.0.id"),
        # int() reads these as 1 and 1000; the device did not write a number (StrictSerializer's rule).
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"id": "\u0661"}]}, "mutations.0.id"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"id": "1_000"}]}, "mutations.0.id"),
        ("/sync/push", {"device_id": str(uuid.uuid4()), "mutations": [{"id": 2**60}]}, "mutations.0.id"),
        (
            "/sync/push",
            {"device_id": str(uuid.uuid4()), "mutations": [{"id": i} for i in range(1, 102)]},
            "mutations",
        ),
    ],
)
def test_bad_input_is_a_400_problem_naming_the_field(api, path, body, field):
    response = api.post(path, body)
    assert response.status_code == 400, response.content
    assert field in problem(response)["errors"]


UNREADABLE = [
    pytest.param('"name": "stock.teleport", "args": {}', id="unknown-name"),  # e.g. a newer app
    pytest.param('"name": 42, "args": {}', id="name-not-a-text"),
    pytest.param('"args": {}', id="no-name"),
    pytest.param('"name": "stock.adjust\\u0000", "args": {}', id="nul-in-name"),
    pytest.param('"name": "stock.adjust", "args": ["PRODUCT", -1]', id="args-a-list"),
    pytest.param('"name": "stock.adjust", "args": null', id="args-null"),
    pytest.param('"name": "stock.adjust", "args": "PRODUCT"', id="args-a-text"),
    pytest.param(
        '"name": "stock.adjust", "args": {"product_id": "PRODUCT", "delta": "-1"}', id="args-wrong-type"
    ),
    pytest.param(
        '"name": "stock.adjust", "args": {"product_id": "PRODUCT", "delta": -1, "reason": "a\\u0000"}',
        id="nul-in-args",
    ),
    pytest.param(
        # Parses (Python's decoder goes deeper) but a recursive walk ran out of stack: a 500.
        '"name": "stock.adjust", "args": {"product_id": "PRODUCT", "delta": -1, "note": '
        + "[" * 400
        + "]" * 400
        + "}",
        id="args-nested-400-deep",
    ),
    pytest.param(
        '"name": "stock.adjust", "args": {"product_id": "PRODUCT", "delta": -1}, "at": 1', id="more-keys"
    ),
]


@pytest.mark.parametrize("unreadable", UNREADABLE)
def test_a_mutation_the_server_cannot_read_is_rejected_alone_recorded_and_advances(api, vendor, unreadable):
    """DESIGN.md 5: a permanently failing mutation is recorded as rejected and still advances.
    Such a mutation was a 400 for the whole push, sent again and again: the device was stuck."""
    product = ProductFactory(vendor=vendor, initial_stock=5)
    device_id = register(api)
    bad = "{" + f'"id": 1, {unreadable.replace("PRODUCT", str(product.pk))}' + "}"
    good = json.dumps({"id": 2, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -2}})
    body = f'{{"device_id": "{device_id}", "mutations": [{bad}, {good}]}}'

    answer = api.post("/sync/push", body)
    retry = api.post("/sync/push", body)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "last_mutation_id": 2,
        "results": [
            {"id": 1, "status": "rejected", "code": "invalid", "conflict_id": None},
            {"id": 2, "status": "applied", "code": None, "conflict_id": None},
        ],
    }
    assert retry.status_code == 200, retry.content
    assert [(r["status"], r["code"]) for r in retry.json()["results"]] == [
        ("duplicate", "invalid"),
        ("duplicate", None),
    ]
    assert Stock.objects.get(product=product).on_hand == 3
    assert Device.objects.get(pk=device_id).last_mutation_id == 2
    stored = Mutation.objects.get(device_id=device_id, mutation_id=1)
    assert (stored.status, stored.code) == ("rejected", "invalid")
    assert stored.message
    assert "\x00" not in stored.name + json.dumps(stored.args)


@pytest.mark.parametrize("delta", [10_000_001, -10_000_001, 99_000_000])
def test_a_stock_adjust_past_the_rest_cap_is_rejected(api, vendor, delta):
    """REST caps one adjustment at 10,000,000 units; a device's stock.adjust took 100,000,000."""
    product = ProductFactory(vendor=vendor, initial_stock=20_000_000)
    device_id = register(api)
    mutations = [
        {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": delta}},
        {"id": 2, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": 10_000_000}},
        {"id": 3, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -10_000_000}},
    ]

    answer = api.post("/sync/push", {"device_id": device_id, "mutations": mutations})

    assert answer.status_code == 200, answer.content
    assert [(r["status"], r["code"]) for r in answer.json()["results"]] == [
        ("rejected", "invalid"),
        ("applied", None),
        ("applied", None),
    ]
    assert Stock.objects.get(product=product).on_hand == 20_000_000


@override_settings(OKADA_SYNC_LOCK_TIMEOUT_MS=200)
def test_a_busy_database_is_a_503_with_retry_after_and_nothing_kept(api, vendor):
    product = ProductFactory(vendor=vendor)
    device_id = register(api)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Product.objects.select_for_update().get(pk=product.pk)
                locked.set()
                assert release.wait(WAIT)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    body = {
        "device_id": device_id,
        "mutations": [
            {
                "id": 1,
                "name": "product.update",
                "args": {"product_id": str(product.pk), "base_version": 1, "fields": {"name": "Neuf"}},
            }
        ],
    }
    try:
        assert locked.wait(WAIT)
        busy = api.post("/sync/push", body)
    finally:
        release.set()
        holder.join(WAIT)

    assert (busy.status_code, problem(busy)["code"]) == (503, "try_again")
    assert int(busy["Retry-After"]) > 0
    assert Device.objects.get(pk=device_id).last_mutation_id == 0
    assert api.post("/sync/push", body).json()["results"][0]["status"] == "applied"


def test_a_pull_makes_as_many_queries_for_30_rows_as_for_3():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.services import product_update

    def queries(products: int) -> tuple[int, int]:
        vendor = VendorFactory()
        made = [ProductFactory(vendor=vendor, initial_stock=1) for _ in range(products)]
        api = vendor_api(vendor)
        device_id = register(api)
        with CaptureQueriesContext(connection) as download:
            first = api.post("/sync/pull", {"device_id": device_id, "limit": 200})
        for product in made:
            product_update(product=product, data={"name": "Nouveau"}, actor=STAFF)
        with CaptureQueriesContext(connection) as changes:
            api.post("/sync/pull", {"device_id": device_id, "cursors": first.json()["cursors"], "limit": 200})
        return len(download), len(changes)

    from sync.services import generation_current

    generation_current()  # makes the feed state row the test database's flush removed
    assert queries(3) == queries(30)


def test_a_push_needs_the_scope_each_mutation_needs_through_rest(vendor):
    """`sync` lets a device sync; creating a product, moving stock or an order still needs
    products:write, stock:write or orders:write, as the REST endpoints do."""
    product = ProductFactory(vendor=vendor, initial_stock=10)
    api = vendor_api(vendor, scopes=["sync", "products:read"])
    assert api.post("/products", {"sku": "A-1", "name": "A", "price_xaf": 100}).status_code == 403
    device_id = register(api)
    new_id = str(uuid.uuid4())
    mutations = [
        {
            "id": 1,
            "name": "product.create",
            "args": {"id": new_id, "sku": "A-1", "name": "A", "price_xaf": 100},
        },
        {"id": 2, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -2}},
    ]

    answer = api.post("/sync/push", {"device_id": device_id, "mutations": mutations}).json()

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "not_allowed")] * 2
    assert answer["last_mutation_id"] == 2  # refused for good: the device moves on
    assert not Product.all_objects.filter(pk=new_id).exists()
    assert Stock.objects.get(product=product).on_hand == 10

    full = vendor_api(vendor)  # every scope of a vendor key
    device_id = register(full)
    answer = full.post("/sync/push", {"device_id": device_id, "mutations": mutations}).json()
    assert [r["status"] for r in answer["results"]] == ["applied", "applied"]


def test_a_pull_needs_the_read_scopes_of_what_it_sends(vendor):
    """A pull sends products, stock and orders: a key that may not read orders over REST does not
    get them through /sync/pull either."""
    OrderFactory(vendor=vendor)
    api = vendor_api(vendor, scopes=["sync", "products:read"])
    assert api.get("/orders").status_code == 403
    device_id = register(api)

    refused = api.post("/sync/pull", {"device_id": device_id})

    assert refused.status_code == 403
    assert problem(refused)["scope"] == "orders:read"
    assert vendor_api(vendor).post("/sync/pull", {"device_id": device_id}).status_code == 200


# --- Product fields: the REST API's rules, and a refusal is per mutation, never a 500 -----------

BAD_FIELDS = [
    {"description": None},  # NOT NULL column: was an IntegrityError (500) on every retry
    {"attributes": None},
    {"attributes": ["rouge"]},  # REST takes an object only
    {"price_xaf": True},
    {"price_xaf": 600.0},  # another JSON type than the field's, as the REST API refuses
    {"is_active": 0},
    {"price_xaf": 5_000_000_000},  # above the REST cap
    {"name": "   "},
    {"name": "\u200b\u200e"},  # invisible only: blank as REST reads it
    {"unit": "parsec"},
]


@pytest.mark.parametrize("fields", BAD_FIELDS)
def test_a_product_update_with_bad_fields_is_rejected_alone_and_changes_nothing(api, vendor, fields):
    product = ProductFactory(vendor=vendor, price_xaf=500)
    device_id = register(api)
    before = Product.objects.values(
        "sku",
        "description",
        "category_id",
        "price_xaf",
        "compare_at_price_xaf",
        "unit",
        "is_active",
        "attributes",
        "name",
    ).get(pk=product.pk)
    mutations = [
        {
            "id": 1,
            "name": "product.update",
            "args": {"product_id": str(product.pk), "base_version": product.version, "fields": fields},
        },
        {
            "id": 2,
            "name": "product.update",
            "args": {
                "product_id": str(product.pk),
                "base_version": product.version,
                "fields": {"name": "Bon"},
            },
        },
    ]

    answer = api.post("/sync/push", {"device_id": device_id, "mutations": mutations})

    assert answer.status_code == 200, answer.content
    assert [(r["status"], r["code"]) for r in answer.json()["results"]] == [
        ("rejected", "invalid"),
        ("applied", None),
    ]
    kept = ("sku", "description", "category_id", "price_xaf", "compare_at_price_xaf", "unit", "is_active")
    after = Product.objects.values(*kept, "attributes", "name").get(pk=product.pk)
    assert after == {**before, "name": "Bon"}


@pytest.mark.parametrize("fields", BAD_FIELDS)
def test_a_product_create_with_bad_fields_is_rejected_and_creates_nothing(api, fields):
    device_id = register(api)
    new_id = str(uuid.uuid4())
    args = {"id": new_id, "sku": "N-1", "name": "Neuf", "price_xaf": 100, **fields}

    answer = api.post(
        "/sync/push",
        {"device_id": device_id, "mutations": [{"id": 1, "name": "product.create", "args": args}]},
    )

    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "last_mutation_id": 1,
        "results": [{"id": 1, "status": "rejected", "code": "invalid", "conflict_id": None}],
    }
    assert not Product.all_objects.filter(pk=new_id).exists()


def test_a_null_price_from_a_device_is_rejected_not_stored_as_a_conflict(api, vendor):
    product = ProductFactory(vendor=vendor, price_xaf=500)
    device_id = register(api)
    args = {"product_id": str(product.pk), "base_version": 999, "fields": {"price_xaf": None}}

    answer = api.post(
        "/sync/push",
        {"device_id": device_id, "mutations": [{"id": 1, "name": "product.update", "args": args}]},
    )

    assert [(r["status"], r["code"]) for r in answer.json()["results"]] == [("rejected", "invalid")]
    assert not SyncConflict.objects.exists()


def test_an_adjustment_past_the_stock_columns_range_is_rejected_not_a_500(api, vendor):
    """on_hand is an integer column: an adjustment taking it past 2**31 - 1 was a DataError (a 500
    on every retry of the push); it is refused like any bad input and changes nothing."""
    from django.db.models import Sum

    from catalog.models import StockMovement
    from catalog.services import stock_adjust

    product = ProductFactory(vendor=vendor, initial_stock=5)
    stock_adjust(product=product, delta=2_140_000_000, reason="inventaire", actor=STAFF)
    device_id = register(api)
    mutations = [  # within the 10,000,000 cap of one adjustment, past the column's range
        {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": 9_000_000}}
    ]

    answer = api.post("/sync/push", {"device_id": device_id, "mutations": mutations})

    assert answer.status_code == 200, answer.content
    assert [(r["status"], r["code"]) for r in answer.json()["results"]] == [("rejected", "invalid")]
    on_hand = Stock.objects.get(product=product).on_hand
    assert on_hand == 2_140_000_005
    assert StockMovement.objects.filter(product_id=product.pk).aggregate(s=Sum("delta"))["s"] == on_hand


# --- Real concurrent connections against a live server -------------------------------------------


def _push_together(url: str, secret: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """POST each body to the live server's /sync/push at the same moment, one connection each."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    barrier = threading.Barrier(len(bodies), timeout=WAIT)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def send(body: dict) -> tuple[int, dict]:
        request = Request(f"{url}/api/v1/sync/push", data=json.dumps(body).encode(), headers=headers)  # noqa: S310 (our live server)
        barrier.wait()
        try:
            with urlopen(request, timeout=WAIT) as response:  # noqa: S310 (our live server)
                return response.status, json.loads(response.read())
        except HTTPError as exc:
            return exc.code, json.loads(exc.read())

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_four_devices_selling_at_once_never_oversell_and_record_each_refusal(live_server, vendor):
    from django.db.models import Sum

    from catalog.models import StockMovement
    from tests.credentials.factories import vendor_key

    product = ProductFactory(vendor=vendor, initial_stock=10)
    secret = vendor_key(vendor)
    devices = [register(Api(secret), name=f"Caisse {i}") for i in range(4)]
    sale = {"name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -1}}

    answers = _push_together(
        live_server.url,
        secret,
        [{"device_id": d, "mutations": [{"id": i, **sale} for i in range(1, 6)]} for d in devices],
    )

    assert [status for status, _ in answers] == [200] * 4, answers
    results = [r for _, body in answers for r in body["results"]]
    assert sorted(r["status"] for r in results) == ["applied"] * 10 + ["conflict"] * 10
    assert {r["code"] for r in results if r["status"] == "conflict"} == {"impossible_stock"}
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (0, 0)
    assert StockMovement.objects.filter(product_id=product.pk).aggregate(s=Sum("delta"))["s"] == 0
    conflicts = SyncConflict.objects.filter(vendor=vendor, row_id=stock.pk, kind="impossible_stock")
    assert {str(c.pk) for c in conflicts} == {r["conflict_id"] for r in results if r["conflict_id"]}
    assert all(d.last_mutation_id == 5 for d in Device.objects.filter(pk__in=devices))


def test_a_push_sent_six_times_at_once_applies_once(live_server, vendor):
    from tests.credentials.factories import vendor_key

    product = ProductFactory(vendor=vendor, initial_stock=10)
    secret = vendor_key(vendor)
    device_id = register(Api(secret))
    body = {
        "device_id": device_id,
        "mutations": [
            {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -3}}
        ],
    }

    answers = _push_together(live_server.url, secret, [body] * 6)

    statuses = sorted(
        body["results"][0]["status"] if status == 200 else body["code"] for status, body in answers
    )
    assert statuses.count("applied") == 1, answers
    assert set(statuses) <= {"applied", "duplicate", "try_again"}, answers
    assert Stock.objects.get(product=product).on_hand == 7
    assert Device.objects.get(pk=device_id).last_mutation_id == 1


@pytest.mark.parametrize("credential", ["api_key", "personal_token"])
def test_a_suspended_vendor_registers_no_new_device_and_renames_none(vendor, credential):
    from catalog.services import vendor_activate, vendor_suspend
    from tests.catalog.test_apis import member_token

    api = vendor_api(vendor) if credential == "api_key" else Api(member_token(vendor))
    known = register(api, name="Caisse 1")
    vendor_suspend(vendor=vendor, actor=STAFF)
    new_id = str(uuid.uuid4())

    new = api.post("/sync/devices", {"device_id": new_id, "name": "Caisse 2"}, HTTP_IDEMPOTENCY_KEY="dev-2")
    renamed = api.post("/sync/devices", {"device_id": known, "name": "Autre"})
    again = api.post("/sync/devices", {"device_id": known, "name": "Caisse 1"})

    for refused in (new, renamed):
        assert refused.status_code == 403, refused.content
        assert problem(refused)["code"] == "vendor_suspended"
    # Its device already registered, sent again unchanged, writes nothing and still answers.
    assert again.status_code == 200, again.content
    assert sorted(Device.objects.values_list("pk", "name")) == [(uuid.UUID(known), "Caisse 1")]
    # Not kept under its Idempotency-Key: once reactivated, the same request registers it.
    vendor_activate(vendor=vendor, actor=STAFF)
    retry = api.post("/sync/devices", {"device_id": new_id, "name": "Caisse 2"}, HTTP_IDEMPOTENCY_KEY="dev-2")
    assert retry.status_code == 201, retry.content
    assert "Idempotent-Replayed" not in retry
    assert Device.objects.get(pk=new_id).vendor == vendor


@pytest.mark.parametrize("credential", ["api_key", "personal_token"])
def test_a_suspended_vendors_credentials_still_pull_but_push_no_stock_or_product_change(vendor, credential):
    """A sale made at the counter is kept for staff (a conflict), a catalog change refused."""
    from catalog.services import vendor_suspend
    from tests.catalog.test_apis import member_token

    product = ProductFactory(vendor=vendor, initial_stock=10)
    order = OrderFactory(vendor=vendor)
    api = vendor_api(vendor) if credential == "api_key" else Api(member_token(vendor))
    device_id = register(api)
    vendor_suspend(vendor=vendor, actor=STAFF)

    copy, _pages = pull_all(api, device_id)
    pushed = api.post(
        "/sync/push",
        {
            "device_id": device_id,
            "mutations": [
                {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -3}},
                {
                    "id": 2,
                    "name": "product.update",
                    "args": {
                        "product_id": str(product.pk),
                        "base_version": product.version,
                        "fields": {"name": "Autre"},
                    },
                },
                {
                    "id": 3,
                    "name": "order.transition",
                    "args": {"order_id": str(order.pk), "to": "accepted", "base_status": "pending"},
                },
            ],
        },
    )

    assert str(product.pk) in copy["products"] and str(order.pk) in copy["orders"]
    assert pushed.status_code == 200, pushed.content
    assert [(r["status"], r["code"]) for r in pushed.json()["results"]] == [
        ("conflict", "vendor_suspended"),
        ("rejected", "vendor_suspended"),
        ("applied", None),
    ]
    assert Stock.objects.get(product=product).on_hand == 10
    assert SyncConflict.objects.get().device_value["delta"] == -3
    assert Product.objects.get(pk=product.pk).name == product.name
