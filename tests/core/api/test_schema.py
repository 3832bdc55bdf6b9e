"""OpenAPI: the schema validates, documents every error as problem+json, has examples; the docs
are served from local assets; and schemathesis fuzzes every operation (a bounded number of
examples each) without a server error or an answer that breaks the schema."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
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

from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import Api, vendor_key
from tests.orders.factories import OrderFactory

EXAMPLES_PER_OPERATION = 25  # bounded: the whole fuzzing run stays within a minute or two


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
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def _keep_the_test_connection():
    """The real WSGI handler closes the database connection after each request (Django's test
    client turns that off): keep it, it holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def credential(db, _keep_the_test_connection):
    """A vendor with a product and an order, so that fuzzed ids sometimes hit real rows."""
    vendor = VendorFactory()
    ProductFactory(vendor=vendor, initial_stock=10)
    OrderFactory(vendor=vendor)
    return vendor_key(vendor)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzzing_finds_no_server_error_and_no_answer_outside_the_schema(case, credential):
    # identity: the in-process WSGI client does not undo gzip (tested on its own elsewhere)
    headers = {"Authorization": f"Bearer {credential}", "Accept-Encoding": "identity"}
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_api_client_helper_hits_the_same_app():
    assert Api().get("/nothing").status_code == 404
