"""OpenAPI: the schema validates, documents every error as problem+json, has examples; the docs
are served from local assets; and schemathesis fuzzes every operation (a bounded number of
examples each, with a vendor key and with a storefront key) without a server error or an answer
that breaks the schema.

A deeper run than CI's: `OKADA_FUZZ_EXAMPLES=500 OKADA_FUZZ_RANDOM=1 pytest tests/core/api/test_schema.py
-k fuzzing` (the number of generated examples per operation and credential; new examples each run
instead of the same ones)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from django.urls import resolve
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NOT_SET

from sync.pull import pull
from sync.services import device_register
from tests.catalog.factories import ProductFactory, VendorFactory, vendor_actor
from tests.credentials.factories import Api, storefront_key, vendor_key
from tests.orders.factories import ZoneFactory, mobile_money_order

# Bounded in CI (the whole fuzzing run stays within a minute or two); deeper runs set them.
EXAMPLES_PER_OPERATION = int(os.environ.get("OKADA_FUZZ_EXAMPLES", "25"))
RANDOM_EXAMPLES = os.environ.get("OKADA_FUZZ_RANDOM") == "1"


def _schema_json(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_is_valid_openapi_3(client):
    schema = _schema_json(client)
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


def test_every_operation_describes_its_errors_as_problem_json(client):
    schema = _schema_json(client)
    operations = [(p, m, op) for p, item in schema["paths"].items() for m, op in item.items()]
    assert len(operations) >= 12
    for path, method, operation in operations:
        for status in ("400", "401", "403", "429", "500"):
            content = operation["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (path, method, status)
            examples = _examples(content["application/problem+json"])
            assert examples and {e["status"] for e in examples} == {int(status)}, (path, method, status)
        if "{" in path:
            assert "404" in operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            if status < "400" and "content" in response:  # successes are JSON, never problems
                assert list(response["content"]) == ["application/json"], (path, method, status)


def _examples(media: dict) -> list[dict]:
    """A media type's example values: its one `example`, or each of its `examples`."""
    if "example" in media:
        return [media["example"]]
    return [example["value"] for example in media.get("examples", {}).values()]


def test_every_operation_documents_the_refusals_of_a_stalled_body_a_long_url_and_large_headers(client):
    # Answered to any request (a body that stops short, a URL over gunicorn's 4,094 bytes, headers
    # over its limits): a fuzzer saw 414 as a status no operation documents.
    for path, method, operation in _operations(_schema_json(client)):
        for status, code in (
            ("408", "request_timeout"),
            ("414", "uri_too_long"),
            ("431", "headers_too_large"),
        ):
            content = operation["responses"][status]["content"]["application/problem+json"]
            assert content["example"]["code"] == code, (path, method, status)


def test_catalog_and_stock_writes_document_the_suspended_vendor_refusal_and_the_generic_one(client):
    schema = _schema_json(client)
    codes = {
        operation["operationId"]: [
            e["code"] for e in _examples(operation["responses"]["403"]["content"]["application/problem+json"])
        ]
        for item in schema["paths"].values()
        for operation in item.values()
    }
    writes = ("products_create", "products_update", "products_destroy", "products_bulk_upsert")
    for operation_id in (*writes, "stock_adjust", "stock_count"):
        assert codes[operation_id] == ["not_allowed", "vendor_suspended"], operation_id
    assert codes["products_list"] == codes["orders_transition"] == ["not_allowed"]


def test_write_operations_have_request_examples(client):
    schema = _schema_json(client)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("post", "put", "patch"):
                content = operation["requestBody"]["content"]["application/json"]
                assert "examples" in content or "example" in content, (path, method)


def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]


def test_every_operation_has_a_summary_and_no_developer_docstring(client):
    # drf-spectacular describes an operation by its view's docstring unless told otherwise:
    # ApiView's ("Class attributes a view sets: required_scopes ...") was on two lists.
    for path, method, operation in _operations(_schema_json(client)):
        assert operation.get("summary"), (path, method)
        description = operation.get("description", "")
        assert "required_scopes" not in description and "okada." not in description, (path, method)


def test_no_component_is_described_by_a_base_class_docstring(client):
    schema = _schema_json(client)
    for name, component in schema["components"]["schemas"].items():
        description = component.get("description", "")
        assert "DRF drops" not in description and "read_only_names" not in description, name


# The resources of DESIGN.md section 4, as integrations call them: method and path under
# /api/v1/. A route renamed or a method dropped breaks every script written against the contract,
# even if its own tests were renamed along with it.
DESIGN_OPERATIONS = {
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/products"),
    ("post", "/api/v1/products"),
    ("get", "/api/v1/products/{id}"),
    ("patch", "/api/v1/products/{id}"),
    ("delete", "/api/v1/products/{id}"),
    ("post", "/api/v1/products/bulk"),
    ("post", "/api/v1/products/{id}/stock-adjustments"),
    ("put", "/api/v1/products/{id}/stock"),
    ("get", "/api/v1/orders"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders/{id}"),
    ("post", "/api/v1/orders/{id}/transitions"),
    ("post", "/api/v1/sync/devices"),
    ("post", "/api/v1/sync/pull"),
    ("post", "/api/v1/sync/push"),
    ("get", "/api/v1/categories"),
    ("get", "/api/v1/zones"),
    ("post", "/api/v1/payments/callbacks/{provider}"),
}


def test_the_api_serves_every_resource_of_the_contract_at_its_path_and_method(client):
    documented = {(method, path) for path, method, _ in _operations(_schema_json(client))}
    assert DESIGN_OPERATIONS - documented == set()
    # ... and the URLconf routes them (the schema is generated from it, but a path it lists could
    # still be shadowed by another route): each resolves to a view that serves the method.
    some_id = "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f"
    for method, path in DESIGN_OPERATIONS:
        for real in (
            path.replace("{id}", some_id).replace("{provider}", p) for p in ("mtn_momo", "orange_money")
        ):
            view: Any = resolve(real).func
            assert hasattr(view.view_class, method), (method, real)


def test_ids_in_paths_are_documented_as_uuids(client):
    ids = [
        parameter["schema"]
        for _, _, operation in _operations(_schema_json(client))
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"] == "id"
    ]
    assert ids and all(schema == {"type": "string", "format": "uuid"} for schema in ids)


def test_bulk_results_document_every_status_the_api_sends(client):
    statuses = _schema_json(client)["components"]["schemas"]["BulkResultOut"]["properties"]["status"]
    enum = (
        statuses.get("enum")
        or _schema_json(client)["components"]["schemas"][statuses["allOf"][0]["$ref"].rsplit("/", 1)[1]][
            "enum"
        ]
    )
    assert set(enum) == {"created", "updated", "unchanged", "failed", "rolled_back"}


def test_posts_that_keep_their_answer_declare_the_idempotency_key_and_its_replay_header(client):
    declared = {}
    for _path, method, operation in _operations(_schema_json(client)):
        if method == "post":
            names = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "header"}
            replayed = "Idempotent-Replayed" in operation["responses"][min(operation["responses"])]["headers"]
            declared[operation["operationId"]] = ("Idempotency-Key" in names, replayed)
    # Not stored: a token (a secret) and the sync exchanges (their own cursor and mutation ids).
    unkept = {"auth_token", "sync_pull", "sync_push"}
    assert unkept < set(declared)
    assert declared == {op: (op not in unkept, op not in unkept) for op in declared}


def _operation(schema: dict, operation_id: str) -> dict:
    [found] = [op for _path, _method, op in _operations(schema) if op["operationId"] == operation_id]
    return found


@pytest.mark.django_db
def test_request_bodies_are_described_closed_as_the_api_refuses_unknown_members(client):
    # The API answers an unknown member with a 400 naming it; the schema allowed any (OpenAPI's
    # default), so a client reading it, or a fuzzer, took `{"on_hand": 3, "x": 1}` for valid.
    components = _schema_json(client)["components"]["schemas"]
    requests = {name: c for name, c in components.items() if name.endswith("Request") and "properties" in c}
    assert len(requests) >= 15
    closed = {name for name, c in requests.items() if c.get("additionalProperties") is False}
    # A sync mutation is recorded whatever it holds, and a bad one rejected inside the 200.
    assert set(requests) - closed == {"MutationInRequest"}
    product = ProductFactory(initial_stock=3)
    api = Api(vendor_key(product.vendor))
    response = api.put(f"/products/{product.pk}/stock", {"on_hand": 3, "expected_on_hand": 3, "x": 1})
    assert (response.status_code, response.json()["errors"]) == (400, {"x": ["Champ inconnu."]})


def test_a_mutation_is_described_as_the_push_reads_it_its_id_alone_required(client):
    # `name` and `args` were required, `name` an enum: a mutation without them, or with another
    # name, is a 200 that rejects it (`invalid`), never the 400 the schema described.
    mutation = _schema_json(client)["components"]["schemas"]["MutationInRequest"]
    assert mutation["required"] == ["id"]
    assert "enum" not in json.dumps(mutation) and "type" not in mutation["properties"]["name"]
    assert "stock.adjust" in mutation["properties"]["name"]["description"]


def test_list_limits_and_idempotency_keys_are_described_with_the_bounds_the_api_checks(client):
    from okada.core.api.idempotency import validate_key
    from okada.core.errors import InvalidInput

    schema = _schema_json(client)
    limits = [
        p["schema"]
        for _, _, op in _operations(schema)
        for p in op.get("parameters", ())
        if p["name"] == "limit"
    ]
    assert len(limits) == 4  # the four lists (a pull's limit is in its body, 1 to 1,000)
    assert all(s == {"type": "integer", "minimum": 1, "maximum": 200} for s in limits)
    keys = {
        json.dumps(p["schema"], sort_keys=True)
        for _, _, op in _operations(schema)
        for p in op.get("parameters", ())
        if p["name"] == "Idempotency-Key"
    }
    [key] = [json.loads(k) for k in keys]
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    pattern = re.compile(key["pattern"])
    for code in range(256):  # a header is read as Latin-1: the pattern says what validate_key takes
        text = f"k{chr(code)}"
        try:
            taken = validate_key(text) == text
        except InvalidInput:
            taken = False
        assert bool(pattern.fullmatch(text)) == taken, hex(code)


def test_the_payment_callback_requires_a_described_signature(client):
    operation = _operation(_schema_json(client), "payments_callback")
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert set(headers) == {"X-Signature", "Idempotency-Key"}
    assert headers["X-Signature"]["required"] is True
    assert "HMAC-SHA256" in headers["X-Signature"]["description"]
    assert "either case" in headers["X-Signature"]["description"]


def test_payments_show_what_arrived_and_the_refund_owed(client):
    schema = _schema_json(client)
    payment = schema["components"]["schemas"]["PaymentOut"]
    assert {"received_xaf", "needs_refund"} <= set(payment["required"])
    assert payment["properties"]["received_xaf"] == {
        "type": "integer",
        "nullable": True,
        "description": payment["properties"]["received_xaf"]["description"],
    }
    assert payment["properties"]["needs_refund"]["type"] == "boolean"
    order = _operation(schema, "orders_retrieve")["responses"]["200"]["content"]["application/json"]
    [example] = [e["value"] for e in order["examples"].values()]
    assert {"received_xaf", "needs_refund"} <= set(example["payments"][0])


def test_a_callback_answer_says_what_the_callback_did(client):
    schema = _schema_json(client)
    outcome = schema["components"]["schemas"]["CallbackOut"]["properties"]["outcome"]
    enum = schema["components"]["schemas"][outcome["allOf"][0]["$ref"].split("/")[-1]]["enum"]
    assert enum == ["applied", "repeat", "not_applied"]
    answer = _operation(schema, "payments_callback")["responses"]["200"]["content"]["application/json"]
    assert {e["value"]["outcome"] for e in answer["examples"].values()} == set(enum)


def test_every_answer_documents_the_request_id_and_a_product_its_etag(client):
    for path, method, operation in _operations(_schema_json(client)):
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], (path, method, status)
        etag = "ETag" in operation["responses"][min(operation["responses"])]["headers"]
        products = {"products_create", "products_retrieve", "products_update"}
        assert etag == (operation["operationId"] in products), (path, method)
        created = operation["responses"].get("201", {}).get("headers", {})
        assert ("Location" in created) == (operation["operationId"] in {"products_create", "orders_place"}), (
            path,
            method,
        )


def test_each_view_takes_exactly_the_query_parameters_its_operation_documents(client):
    # ApiView refuses any query parameter a view does not declare: the declaration and the
    # schema must say the same, or a documented filter would be refused (or a refused one shown).
    for path, method, operation in _operations(_schema_json(client)):
        url = path.replace("{id}", "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e60").replace("{provider}", "mtn_momo")
        view = resolve(url).func.cls  # type: ignore[attr-defined]  # as_view()'s function
        documented = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
        if view.query_params is None:  # not checked (payment callbacks)
            assert not documented, (path, method)
            continue
        assert set(view.query_params.get(method.upper(), ())) == documented, (path, method)


def test_the_docs_page_loads_its_assets_locally(client):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert (
        client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    )


# --- Fuzzing ------------------------------------------------------------------------------------------

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "errors"}
# Words of English an error message in French never holds (quoted input taken out first).
ENGLISH = re.compile(
    r"\b(the|this|that|is|are|must|should|not|field|value|valid|invalid|required|ensure|may|"
    r"cannot|please|more than|at least|expected|got)\b",
    re.IGNORECASE,
)
QUOTED = re.compile(r"«[^»]*»|“[^”]*”|\"[^\"]*\"|'[^']*'|`[^`]*`")


def problem_json_is_complete_and_in_french(ctx, response, case):
    """An error is a whole RFC 9457 problem (DESIGN.md 4), in French when the client asks for it."""
    if response.headers.get("content-type", [""])[0].split(";")[0] != "application/problem+json":
        return None
    body = json.loads(response.content)
    assert set(body) >= PROBLEM_FIELDS, f"problem+json without {PROBLEM_FIELDS - set(body)}: {body}"
    assert body["status"] == response.status_code, body
    assert body["type"] == f"urn:okada:problem:{body['code']}", body
    texts = [body["title"], body["detail"]]
    texts += [m for messages in (body["errors"] or {}).values() for m in _flat(messages)]
    for text in texts:
        for name in body["errors"] or {}:  # a field's name, as sent, may head the detail
            text = str(text).replace(f"{name}: ", "")
        english = ENGLISH.search(QUOTED.sub("", str(text)))
        assert not english, f"English ({english.group()!r}) in a French answer: {text!r} in {body}"
    return None


def _flat(messages) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, list):
        return [m for value in messages for m in _flat(value)]
    return [str(messages)]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    problem_json_is_complete_and_in_french,
]

# The marketplace's data: a refused request (4xx) changes none of it (DESIGN.md 4). Not listed:
# what a request may write whatever its answer (a key's last use, idempotency records).
DATA_TABLES = [
    "catalog_vendor",
    "catalog_category",
    "catalog_product",
    "catalog_historicalproduct",
    "catalog_stock",
    "catalog_stockmovement",
    "orders_zone",
    "orders_customer",
    "orders_historicalcustomer",
    "orders_order",
    "orders_historicalorder",
    "orders_orderitem",
    "orders_orderevent",
    "orders_payment",
    "sync_device",
    "sync_conflict",
    "sync_mutation",
    "sync_change",
    "credentials_personaltoken",
]


def _data_fingerprint() -> list[tuple[str, int, str]]:
    rows = "md5(coalesce(string_agg(t::text, '' ORDER BY t::text), ''))"
    query = " UNION ALL ".join(
        f"SELECT '{table}', count(*), {rows} FROM {table} t"  # noqa: S608  # our constant names
        for table in DATA_TABLES
    )
    with connection.cursor() as cursor:
        # In the tables' order: a UNION ALL has none of its own (a parallel plan, which the
        # statistics may call for, returns its branches in any order).
        cursor.execute(f"SELECT * FROM ({query}) tables ORDER BY 1")  # noqa: S608  # our constant names
        return cursor.fetchall()


@pytest.fixture
def _keep_the_test_connection():
    """The real WSGI handler closes the database connection after each request (Django's test
    client turns that off): keep it, it holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@dataclass
class Target:
    """A credential and the real rows fuzzed requests are aimed at (`_aim_at_real_rows`)."""

    key: str
    ids: dict[str, str]  # a field or path parameter's name -> a real row's id
    cursors: list[str]  # sync cursors the server gave the device (of each priority, mid-download)


@pytest.fixture(params=["vendor", "storefront"])
def target(request, db, _keep_the_test_connection) -> Target:
    """A vendor key or a storefront key, and a vendor with a product, a zone, an order paid by
    mobile money and a registered sync device with the cursors of its first two pulls. The
    vendor, its product, the zone, the device and the payment have the ids of the schema's
    examples, so the examples (an order to place, a pull, a callback) reach real rows;
    `_aim_at_real_rows` aims fuzzed ids (and cursors) at them too."""
    vendor = VendorFactory(id=uuid.UUID(EXAMPLE_IDS["vendor"]))
    zone = ZoneFactory(id=uuid.UUID(EXAMPLE_IDS["zone"]), city=vendor.city)
    product = ProductFactory(vendor=vendor, initial_stock=10, id=uuid.UUID(EXAMPLE_IDS["product"]))
    order = mobile_money_order(EXAMPLE_IDS["reference"], vendor=vendor, zone=zone, items=[(product, 1)])
    device_register(actor=vendor_actor(vendor), device_id=EXAMPLE_IDS["device"], name="Caisse 1")
    first = pull(actor=vendor_actor(vendor), device_id=EXAMPLE_IDS["device"], cursors={}, limit=1)
    second = pull(actor=vendor_actor(vendor), device_id=EXAMPLE_IDS["device"], cursors=first.cursors)
    cursors = sorted({c for page in (first, second) for c in page.cursors.values() if c})
    ids = {
        "vendor": str(vendor.pk),
        "zone": str(zone.pk),
        "product": str(product.pk),
        "product_id": str(product.pk),
        "order_id": str(order.pk),
        "device_id": EXAMPLE_IDS["device"],
        "reference": EXAMPLE_IDS["reference"],
    }
    return Target(vendor_key(vendor) if request.param == "vendor" else storefront_key(), ids, cursors)


# The ids the schema's examples use (catalog/apis.py, orders/apis.py, sync/apis.py).
EXAMPLE_IDS = {
    "vendor": "0192f6d2-8b1c-7aaa-8b51-3f2b9c1d4e50",
    "product": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
    "zone": "0192f6d2-8b1c-7bbb-8b51-3f2b9c1d4e51",
    "device": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
    "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
}


def _aim_at_real_rows(case, target: Target) -> None:
    """Make half the generated UUIDs (chosen by the generated value itself, so that a derandomized
    run stays the same) those of real rows: random UUIDs are otherwise always 404s, and the code
    behind them is never fuzzed."""
    if _is_aimed(case.path_parameters.get("id")):
        row = "order_id" if case.path.startswith("/api/v1/orders") else "product"
        case.path_parameters["id"] = target.ids[row]
    if isinstance(case.body, (dict, list)):
        _aim_body(case.body, target.ids)
    cursors = case.body.get("cursors") if isinstance(case.body, dict) else None
    if isinstance(cursors, dict):  # a real cursor, of any priority (a forged one only resets)
        for priority, cursor in cursors.items():
            if isinstance(cursor, str) and _coin(cursor):
                digest = hashlib.sha256(cursor.encode()).digest()
                cursors[priority] = target.cursors[digest[1] % len(target.cursors)]


def _aim_body(value, ids: dict[str, str]) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for name, item in list(items):
        if isinstance(item, (dict, list)):
            _aim_body(item, ids)
        elif name in ids and (
            _is_aimed(item) or (name == "reference" and isinstance(item, str) and _coin(item))
        ):
            value[name] = ids[name]


def _is_aimed(value) -> bool:
    """Whether to replace this generated id: a UUID (an id that is no UUID stays: a negative case
    stays one), half the time."""
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return _coin(value)


def _coin(value) -> bool:
    return hashlib.sha256(str(value).encode()).digest()[0] % 2 == 0


def _signed_callback(case) -> dict:
    """For half the payment callbacks, the body as sent and its good signature: otherwise every
    fuzzed callback is a 401 and the code behind the signature is never fuzzed."""
    if not case.path.startswith("/api/v1/payments/callbacks/") or not _coin(repr(case.body)):
        return {}
    secret = django_settings.OKADA_PAYMENT_CALLBACK_SECRETS.get(case.path_parameters.get("provider"), "")
    if not secret or case.media_type != "application/json" or isinstance(case.body, (bytes, type(NOT_SET))):
        return {}
    raw = json.dumps(case.body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"data": raw, "headers": {"X-Signature": signature}}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not RANDOM_EXAMPLES,
)
def test_fuzzing_finds_no_server_error_and_no_answer_outside_the_schema(case, target):
    _aim_at_real_rows(case, target)
    signed = _signed_callback(case)
    # identity: the in-process WSGI client does not undo gzip (tested on its own elsewhere)
    headers = {
        "Authorization": f"Bearer {target.key}",
        "Accept-Encoding": "identity",
        "Accept-Language": "fr",
        **signed.pop("headers", {}),
    }
    before = _data_fingerprint()
    response = case.call(headers=headers, **signed)
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        changed = [b[0] for b, a in zip(before, _data_fingerprint(), strict=True) if b != a]
        assert not changed, f"{response.status_code} {response.text[:300]} but {changed} changed"


def test_the_api_client_helper_hits_the_same_app():
    assert Api().get("/nothing").status_code == 404


def test_the_schema_is_generated_once_per_language_and_format(client, monkeypatch, settings):
    """Anyone may ask for it, and it cost about 200 ms of CPU each time: each document (language,
    format) is made once, then sent as it was, headers included."""
    from drf_spectacular.generators import SchemaGenerator

    # A setting changed (to the same value): the documents other tests had made are forgotten.
    settings.SPECTACULAR_SETTINGS = {**settings.SPECTACULAR_SETTINGS}
    made = []
    get_schema = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        made.append(1)
        return get_schema(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    answers = {}
    for path in ("/api/schema/?lang=fr", "/api/schema/?lang=fr&format=json", "/api/schema/?lang=en"):
        first, again = client.get(path), client.get(path)
        assert first.status_code == again.status_code == 200
        assert again.content == first.content
        assert again["Content-Type"] == first["Content-Type"]
        assert again["Content-Disposition"] == first["Content-Disposition"]
        answers[path] = first
    assert len(made) == 3  # once each: the second request of each was served from the first
    assert answers["/api/schema/?lang=fr&format=json"]["Content-Type"].startswith(
        "application/vnd.oai.openapi+json"
    )
    assert answers["/api/schema/?lang=en"].content != answers["/api/schema/?lang=fr"].content
    # The language the request asks for in its header is the same document as with ?lang=.
    assert (
        client.get("/api/schema/", HTTP_ACCEPT_LANGUAGE="en").content
        == answers["/api/schema/?lang=en"].content
    )
    assert len(made) == 3
    # A language we do not have is made each time, never kept (`lang` takes any text).
    for _ in range(2):
        assert client.get("/api/schema/?lang=xx").status_code == 200
    assert len(made) == 5
