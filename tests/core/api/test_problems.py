"""okada.core.api.problems and the HTTP edges: every error is problem+json in the caller's language."""

from __future__ import annotations

import gzip
import io
import json
import logging
import logging.config
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    SuspiciousFileOperation,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.test import Client, override_settings

from catalog.models import Product
from okada.core.api.problems import as_domain_error
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import Api, problem, vendor_api
from tests.sync.factories import register_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return vendor_api(VendorFactory())


def test_no_credential_is_a_401_problem_with_www_authenticate():
    response = Api().get("/products")
    assert response.status_code == 401
    assert problem(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    for header in ("Basic abc", "Bearer", "Bearer okk_000000000000_wrong", "Bearer é"):
        assert Api(HTTP_AUTHORIZATION=header).get("/products").status_code == 401


def test_malformed_json_is_a_400_malformed_and_changes_nothing(api):
    response = api.post("/products", '{"sku": "A", ')
    assert response.status_code == 400
    assert problem(response)["code"] == "malformed"
    assert not Product.objects.exists()


@pytest.mark.parametrize("key", [None, "deep-1"])
def test_json_nested_too_deep_for_the_decoder_is_a_400_malformed_not_a_500(api, key):
    # 100 KB of "[": far under the body cap, far over Python's recursion limit.
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = api.post("/products", b"[" * 100_000, **headers)
    assert response.status_code == 400
    assert problem(response)["code"] == "malformed"
    assert not Product.objects.exists()


@pytest.mark.parametrize("path", ["/products", "/orders", "/categories", "/zones"])
@pytest.mark.parametrize("limit", ["%C2%B2", "%C2%B9%C2%B2", "%EF%BC%95", "%D9%A5"])
def test_a_limit_of_digits_that_are_not_ascii_is_a_400_not_a_500(api, path, limit):
    # "²" passes str.isdigit() but not int(); fullwidth and Arabic-Indic digits pass both: only
    # 0-9 make a limit.
    response = api.get(f"{path}?limit={limit}")
    assert response.status_code == 400
    body = problem(response)
    assert (body["code"], list(body["errors"])) == ("invalid", ["limit"])


@pytest.mark.parametrize("path", ["/products", "/orders", "/categories", "/zones"])
def test_updated_since_with_any_offset_python_reads_is_answered_not_a_500(api, path):
    # Python reads offsets up to 23:59; PostgreSQL refuses more than 15:59 in a timestamptz's text
    # ("time zone displacement out of range"): the lists that filtered through the ORM were 500s.
    # The same instant in UTC is a filter like any other; instants Python cannot hold in UTC
    # (before year 1, after 9999) filter as the earliest and latest it can.
    assert api.get(f"{path}?updated_since=2026-01-01T00:00:00-23:59").status_code == 200
    assert api.get(f"{path}?updated_since=2026-01-01T00:00:00%2B23:59").status_code == 200
    assert api.get(f"{path}?updated_since=0001-01-01T00:00:00%2B14:00").status_code == 200
    future = api.get(f"{path}?updated_since=9999-12-31T23:59:59-10:00")
    assert future.status_code == 200
    assert future.json()["results"] == []


@pytest.mark.parametrize(
    "attributes",
    [
        '{"weight": 1e400}',  # read as infinity by Python; jsonb has none
        '{"weight": -1E999}',
        '{"origin": "\\udc00"}',  # an unpaired surrogate: no character, no UTF-8
        '{"origin": "Penja \\uD83D"}',
        '{"\\ud800": "key"}',
        '{"list": [["\\ude00"]]}',
    ],
)
@pytest.mark.parametrize("path", ["/products", "/products/bulk", "/sync/push"])
def test_json_that_postgresql_cannot_store_is_a_400_malformed_not_a_500(api, attributes, path):
    product = f'{{"sku": "A", "name": "n", "price_xaf": 5, "attributes": {attributes}}}'
    body = {
        "/products": product,
        "/products/bulk": f'{{"items": [{product}]}}',
        "/sync/push": f'{{"device_id": "{uuid.uuid4()}", "mutations": [{{"id": 1, "name": '
        f'"product.create", "args": {attributes}}}]}}',
    }[path]
    response = api.post(path, body, HTTP_IDEMPOTENCY_KEY="odd-json")
    assert response.status_code == 400, response.content
    assert problem(response)["code"] == "malformed"
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        '{"sku": "A", "name": "n", "price_xaf": 5, "price_xaf": 500000}',
        '{"sku": "A", "name": "n", "price_xaf": 5, "attributes": {"origin": "Penja", "origin": "Njombe"}}',
        '{"sku": "A", "name": "n", "price_xaf": 5, "\\u0073ku": "B"}',  # the same name, escaped
    ],
)
@pytest.mark.parametrize("path", ["/products", "/products/bulk"])
def test_a_json_object_naming_a_member_twice_is_a_400_malformed_and_changes_nothing(api, body, path):
    # RFC 8259 leaves it to each reader: Python kept the last, another reader (a proxy, a log
    # pipeline, the vendor's own tooling) may keep the first, so the API acted on a value other
    # than the one they saw. Which one the sender meant is not ours to guess.
    sent = body if path == "/products" else f'{{"items": [{body}]}}'
    response = api.post(path, sent, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400, response.content
    assert problem(response)["code"] == "malformed"
    assert problem(response)["detail"] == "The request body is not valid JSON."
    assert not Product.objects.exists()


def test_a_sync_push_naming_a_member_twice_is_a_400_malformed_and_applies_nothing():
    vendor = VendorFactory()
    device = register_device(vendor)
    body = (
        f'{{"device_id": "{device.pk}", "mutations": [{{"id": 1, "name": "product.create", '
        '"args": {"sku": "A", "name": "n", "price_xaf": 5, "price_xaf": 7}}]}'
    )
    response = vendor_api(vendor).post("/sync/push", body)
    assert response.status_code == 400, response.content
    assert problem(response)["code"] == "malformed"
    assert not Product.objects.exists()
    device.refresh_from_db()
    assert device.last_mutation_id == 0


# A charset that spells characters with escapes of its own puts an unpaired surrogate in the
# decoded text without any JSON `\\uD800` escape: the body was parsed, and the first jsonb or text
# column it reached was a 500 (a sync push then failed the same way on every retry).
UNPAIRED_BY_CHARSET = {"utf-7": b"+2AA-", "unicode_escape": b"\\ud800", "raw_unicode_escape": b"\\ud800"}


@pytest.mark.parametrize("charset", sorted(UNPAIRED_BY_CHARSET))
@pytest.mark.parametrize("path", ["/products", "/products/bulk", "/sync/push"])
def test_an_unpaired_surrogate_spelled_by_the_charset_is_a_400_malformed_not_a_500(charset, path):
    vendor = VendorFactory()
    api = vendor_api(vendor)
    device = register_device(vendor)
    lone = UNPAIRED_BY_CHARSET[charset]
    product = b'{"sku": "A", "name": "n", "price_xaf": 5, "attributes": {"origin": "' + lone + b'"}}'
    body = {
        "/products": product,
        "/products/bulk": b'{"items": [' + product + b"]}",
        "/sync/push": b'{"device_id": "%s", "mutations": [{"id": 1, "name": "stock.adjust", "args": '
        b'{"product_id": "%s", "delta": 1, "reason": "'
        % (str(device.pk).encode(), str(uuid.uuid4()).encode())
        + lone
        + b'"}}]}',
    }[path]
    response = api.post(
        path, body, CONTENT_TYPE=f"application/json; charset={charset}", HTTP_IDEMPOTENCY_KEY="odd-charset"
    )
    assert response.status_code == 400, response.content
    assert problem(response)["code"] == "malformed"
    assert not Product.objects.exists()
    device.refresh_from_db()
    assert device.last_mutation_id == 0


def test_surrogate_pairs_and_large_numbers_that_fit_are_stored(api):
    response = api.post(
        "/products",
        '{"sku": "\\ud83c\\udf4c", "name": "Banane \\ud83c\\udf4c", "price_xaf": 5, '
        '"attributes": {"emoji": "\\uD83C\\uDF4C", "grams": 2.5e2, "big": 100000000000000000000}}',
    )
    assert response.status_code == 201, response.content
    product = Product.objects.get()
    assert (product.sku, product.name) == ("\U0001f34c", "Banane \U0001f34c")
    assert product.attributes == {"emoji": "\U0001f34c", "grams": 2.5e2, "big": 10**20}


def chunked(body: bytes) -> dict:
    """What gunicorn hands a chunked request: no CONTENT_LENGTH, the body undone from its chunks."""
    return {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
    }


def test_a_chunked_body_is_read_like_one_with_a_content_length(api):
    # Django reads CONTENT_LENGTH bytes: without one the body was empty, a chunked POST was refused
    # ("sku is required") and a chunked PATCH answered 200 having changed nothing.
    body = b'{"sku": "CH-1", "name": "Chunked", "price_xaf": 5}'
    created = api.client.generic("POST", "/api/v1/products", **api.headers, **chunked(body))
    assert created.status_code == 201, created.content
    product = Product.objects.get(sku="CH-1")
    changed = api.client.generic(
        "PATCH",
        f"/api/v1/products/{product.pk}",
        **api.headers,
        **chunked(b'{"price_xaf": 7}'),
    )
    assert changed.status_code == 200, changed.content
    product.refresh_from_db()
    assert product.price_xaf == 7


class _CutMidUpload(io.BytesIO):
    """A request body whose connection is reset after its first bytes, as a mobile network does."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell():
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(min(size or 8, 8) if size and size > 0 else 8)


@pytest.mark.parametrize("sent", ["with a length", "chunked"])
def test_a_body_whose_connection_is_reset_mid_upload_is_a_400_that_changes_nothing(api, sent, caplog):
    # Was a 500, logged at ERROR with a traceback, for the client's network failing.
    body = b'{"sku": "RST-1", "name": "Cut", "price_xaf": 5}'
    environ = (
        chunked(body)
        if sent == "chunked"
        else {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json"}
    )
    environ["wsgi.input"] = _CutMidUpload(body)
    with caplog.at_level(logging.ERROR):
        response = api.client.generic("POST", "/api/v1/products", **api.headers, **environ)
    assert response.status_code == 400, response.content
    assert problem(response)["code"] == "unreadable_request"
    assert not Product.objects.exists()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@override_settings(OKADA_API_MAX_BODY_BYTES=1000)
def test_a_chunked_body_over_the_cap_is_a_413(api):
    body = b'{"sku": "CH-2", "name": "' + b"x" * 2000 + b'", "price_xaf": 5}'
    response = api.client.generic("POST", "/api/v1/products", **api.headers, **chunked(body))
    assert response.status_code == 413
    assert problem(response)["code"] == "payload_too_large"
    assert not Product.objects.exists()


def test_a_body_that_is_not_json_is_a_415(api):
    response = api.client.post("/api/v1/products", "sku=A", content_type="text/plain", **api.headers)
    assert response.status_code == 415
    assert problem(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("key", [None, "zipped-1"])
def test_a_compressed_request_body_is_a_415_and_changes_nothing(api, key):
    # The API reads no Content-Encoding: a gzipped body was answered "not valid JSON" (and kept
    # under its Idempotency-Key), and a plain body labelled `deflate` was applied as if plain.
    product = json.dumps({"sku": "GZ-1", "name": "n", "price_xaf": 5}).encode()
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    for encoding, body in (("gzip", gzip.compress(product)), ("deflate", product), ("br, gzip", product)):
        response = api.post(
            "/products", body, HTTP_CONTENT_ENCODING=encoding, HTTP_ACCEPT_LANGUAGE="fr", **headers
        )
        assert response.status_code == 415, response.content
        body_ = problem(response)
        assert body_["code"] == "unsupported_media_type"
        assert body_["detail"].startswith("Envoyez le corps de la requête sans le compresser")
        assert response["Accept-Encoding"] == "identity"  # RFC 7694
    assert not Product.objects.exists()
    plain = api.post("/products", product, HTTP_CONTENT_ENCODING="identity", **headers)
    assert plain.status_code == 201, plain.content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/products"),
        ("POST", "/sync/push"),
        ("POST", "/payments/callbacks/mtn_momo"),
        ("GET", "/nothing"),
    ],
)
def test_more_query_parameters_than_django_reads_is_a_400_not_a_500(api, method, path):
    # Django refuses to read more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) parameters with a
    # SuspiciousOperation: raised where DRF first read them (content negotiation), it was a 500.
    # `x&x&...` fits in a request line.
    query = "&".join(["x"] * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = api.request(method, f"{path}?{query}", "{}", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 400, response.content
    body = problem(response)
    assert body["code"] == "invalid"
    assert body["detail"] == "Trop de paramètres de requête (au plus 1000)."
    assert not Product.objects.exists()


def test_a_host_the_server_does_not_serve_is_a_400_problem_under_api():
    # Django answers a Host outside ALLOWED_HOSTS with its HTML 400 page, before any view.
    response = Api(client=Client(HTTP_HOST="evil.example")).get("/products", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 400
    body = problem(response)
    assert body["code"] == "invalid"
    assert body["detail"].startswith("Cette requête ne peut pas être lue")
    page = Client(HTTP_HOST="evil.example").get("/admin/")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")  # not the API's


@pytest.mark.parametrize(
    "exc, status",
    [
        (TooManyFieldsSent("x"), 400),
        (DisallowedHost("x"), 400),
        # Raised by storage on a bad path the server built (an export's file): the server's fault.
        (SuspiciousFileOperation("x"), 500),
        (SuspiciousOperation("x"), 500),
    ],
)
def test_only_what_django_refuses_to_read_in_a_request_is_a_400(exc, status):
    error, _ = as_domain_error(exc)
    assert error.status == status


def test_a_method_not_allowed_is_a_405_with_allow(api):
    response = api.delete("/products")
    assert response.status_code == 405
    assert problem(response)["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


@pytest.mark.parametrize(
    "accept",
    [
        "application/problem+json",  # a client that only reads errors
        "application/*",
        "application/problem+json, application/json",
        "application/json;q=0.9, application/problem+json",
        "*/*",
    ],
)
def test_clients_that_accept_problem_json_or_any_application_type_get_answers(accept):
    vendor = VendorFactory()
    api = vendor_api(vendor)
    ProductFactory(vendor=vendor)
    ok = api.get("/products", HTTP_ACCEPT=accept)
    assert ok.status_code == 200, ok.content
    assert ok["Content-Type"] == "application/json"  # a success is JSON, never labelled a problem
    assert len(ok.json()["results"]) == 1
    refused = api.get(f"/products/{uuid.uuid4()}", HTTP_ACCEPT=accept)
    assert refused.status_code == 404
    assert problem(refused)["code"] == "not_found"
    invalid = api.post("/products", {"sku": "A"}, HTTP_ACCEPT=accept)
    assert problem(invalid)["code"] == "invalid"


def test_a_client_that_accepts_no_json_is_a_406_problem(api):
    response = api.get("/products", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert problem(response)["code"] == "not_acceptable"


@pytest.mark.parametrize(
    "accept",
    ["application/json;q=0", "*/*;q=0", "application/json;q=0, application/problem+json;q=0, text/html"],
)
def test_a_client_that_refuses_json_with_q_0_is_a_406_problem(api, accept):
    response = api.get("/products", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert problem(response)["code"] == "not_acceptable"


@pytest.mark.parametrize(
    "accept",
    ["*/*;q=0, application/json", "application/*;q=0, application/json;q=0.2", "application/json;q=abc"],
)
def test_a_more_specific_range_overrides_a_refusal_and_a_bad_weight_counts_as_1(api, accept):
    response = api.get("/products", HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"


def test_unknown_paths_under_api_are_problem_404s(api):
    for path in ("/api/v1/nothing", "/api/v1/products/not-a-uuid", "/api/elsewhere"):
        response = api.get(path)
        assert response.status_code == 404
        assert problem(response)["code"] == "not_found"

    assert "Allow" not in response  # nothing is served there, by any method


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO", "DELETE"])
def test_an_unknown_url_is_a_404_whatever_the_method_even_one_nothing_serves(api, method):
    # README: "a 404 not_found for any method". A method no view names (PROPFIND, FOO) was a 405
    # there, although nothing is served at that URL by any method.
    response = api.request(method, "/api/v1/nothing", HTTP_ACCEPT_LANGUAGE="fr")
    assert (response.status_code, problem(response)["code"]) == (404, "not_found")
    assert problem(response)["detail"] == "Introuvable."
    assert "Allow" not in response
    assert "RateLimit-Remaining" in response  # counted, as every answer to a credential


@pytest.mark.parametrize(
    ("method", "path", "status"), [("get", "/api/schema/?format=xml", 404), ("post", "/api/schema/", 405)]
)
def test_the_schema_views_errors_are_problem_json_not_yaml(method, path, status):
    response = getattr(Client(), method)(path)
    assert response.status_code == status
    assert problem(response)["status"] == status  # parsed as JSON


def test_the_openapi_document_is_gzipped_for_clients_that_accept_it():
    response = Client().get("/api/schema/", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content).startswith(b"openapi: ")


@override_settings(OKADA_API_MAX_BODY_BYTES=1000)
def test_an_oversized_body_is_a_413_before_it_is_read(api):
    response = api.post("/products", {"sku": "A", "name": "x" * 2000, "price_xaf": 1})
    assert response.status_code == 413
    assert problem(response)["code"] == "payload_too_large"
    assert not Product.objects.exists()


def test_messages_follow_accept_language(api):
    # Our own strings get French once locale/fr has them; DRF's validation messages already do.
    french = problem(api.post("/products", {"sku": "A"}, HTTP_ACCEPT_LANGUAGE="fr"))
    english = problem(api.post("/products", {"sku": "A"}, HTTP_ACCEPT_LANGUAGE="en"))
    assert english["errors"]["name"] == ["This field is required."]
    assert french["errors"]["name"] == ["Ce champ est obligatoire."]
    assert english["detail"] == "name: This field is required."


FRENCH_LIMIT, ENGLISH_LIMIT = "limit est un entier de 1 à 200.", "limit is an integer from 1 to 200."


@pytest.mark.parametrize(
    "header, detail, language",
    [
        ("en;q=0", FRENCH_LIMIT, "fr"),  # "anything but English": the default, French
        ("en;q=0, fr;q=0", FRENCH_LIMIT, "fr"),  # refuses both: the default all the same
        ("EN;Q=0.000, *;q=0.5", FRENCH_LIMIT, "fr"),
        ("fr;q=0, en;q=0.1", ENGLISH_LIMIT, "en"),
        ("fr-CM, en;q=0.8", FRENCH_LIMIT, "fr"),
        ("en-GB,en;q=0.9,fr;q=0", ENGLISH_LIMIT, "en"),
        ("*", FRENCH_LIMIT, "fr"),
        ("de, en;q=0.5", ENGLISH_LIMIT, "en"),
        (";;garbage==", FRENCH_LIMIT, "fr"),
    ],
)
def test_messages_are_never_in_a_language_accept_language_refuses(api, header, detail, language):
    # q=0 means "not acceptable" (RFC 9110 12.4.2); Django's reading ranks it last but still
    # picks it when nothing else matches, so "en;q=0" was answered in English.
    response = api.get("/products?limit=0", HTTP_ACCEPT_LANGUAGE=header)
    assert problem(response)["detail"] == detail
    assert response["Content-Language"] == language


def test_json_answers_are_gzipped_for_clients_that_accept_it():
    vendor = VendorFactory()
    for _ in range(3):
        ProductFactory(vendor=vendor)
    api = vendor_api(vendor)
    plain = api.get("/products")
    zipped = api.get("/products", HTTP_ACCEPT_ENCODING="gzip")
    assert "Content-Encoding" not in plain
    assert zipped["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(zipped.content)) == plain.json()


def test_the_request_id_is_echoed_or_made(api):
    assert api.get("/products", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = api.get("/products")["X-Request-ID"]
    assert len(made) == 32
    assert Api().get("/products")["X-Request-ID"]  # errors carry it too


def test_the_access_log_is_one_structured_line_with_the_request_id(api, caplog):
    with caplog.at_level("INFO", logger="okada.access"):
        api.get("/products", HTTP_X_REQUEST_ID="req-77")
    [record] = [r for r in caplog.records if r.name == "okada.access"]
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/products", 200)
    assert record.credential.startswith("key:")
    assert record.duration_ms >= 0
    assert record.client_addr == record.remote_addr == "127.0.0.1"
    with caplog.at_level("INFO", logger="okada.access"):  # through the local proxy
        api.get("/products", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert (caplog.records[-1].remote_addr, caplog.records[-1].client_addr) == ("127.0.0.1", "203.0.113.9")


def test_the_json_log_lines_carry_the_request_id_and_the_credential(api, capsys):
    # The production format (okada.core.logs, structlog): one JSON object per line.
    from okada.core import logs

    logging.config.dictConfig(logs.logging_config("json"))
    try:
        api.get("/products", HTTP_X_REQUEST_ID="req-99")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [access] = [line for line in lines if line["logger"] == "okada.access"]
    assert access["request_id"] == "req-99"
    assert access["credential"].startswith("key:") and access["vendor"]
    assert (access["method"], access["status"], access["level"]) == ("GET", 200, "info")
    assert access["event"] == "GET /api/v1/products 200"


def test_a_request_postgresql_stops_for_a_deadlock_is_a_503_try_again_not_a_500():
    """Two sessions take two locks in opposite orders: PostgreSQL rolls one back (SQLSTATE 40P01).
    Nothing was applied and the same request again goes through: a 503 with Retry-After."""
    from django.db import OperationalError, connections
    from django.utils import translation

    from okada.core.api.problems import exception_handler
    from tests.concurrency import a_lock_is_awaited, in_thread, poll

    sessions = [connections.create_connection("default") for _ in range(2)]
    stopped: list[OperationalError] = []
    try:
        for conn, key in zip(sessions, (71001, 71002), strict=True):
            conn.inc_thread_sharing()  # used by a thread of its own below
            conn.set_autocommit(False)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [key])

        def take(conn: Any, key: int) -> None:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            except OperationalError as exc:  # the victim: its transaction is over, the other goes on
                stopped.append(exc)
                conn.rollback()

        first, first_errors = in_thread(lambda: take(sessions[0], 71002))
        poll(a_lock_is_awaited, "the first session to wait for the second lock")
        second, second_errors = in_thread(lambda: take(sessions[1], 71001))  # a cycle
        for thread in (first, second):
            thread.join(30)
        assert first_errors == second_errors == []
    finally:
        for conn in sessions:
            conn.rollback()
            conn.close()

    assert len(stopped) == 1 and getattr(stopped[0].__cause__, "sqlstate", None) == "40P01"
    with translation.override("fr"):
        response = exception_handler(stopped[0], {})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["code"] == "try_again"
    assert response.data["detail"].startswith("Une modification faite au même moment a arrêté celle-ci")
