"""okada.core.api.ratelimit: per-credential limits in the real Redis, headers, 429, fail-open."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest
from django.test import override_settings

from okada.core.api import ratelimit
from okada.core.api.ratelimit import Rate
from tests.catalog.factories import VendorFactory
from tests.credentials.factories import Api, problem, vendor_api

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _closed_breaker():
    ratelimit._breaker.until = 0.0
    yield
    ratelimit._breaker.until = 0.0


@pytest.mark.parametrize(
    "text, rate",
    [
        ("600/minute", Rate(600, 60)),
        ("10/15minutes", Rate(10, 900)),
        ("5/s", Rate(5, 1)),
        ("2/hour", Rate(2, 3600)),
    ],
)
def test_rates_parse(text, rate):
    assert Rate.parse(text) == rate


def test_a_bad_rate_is_refused():
    with pytest.raises(ValueError):
        Rate.parse("often")


@override_settings(OKADA_API_RATE_LIMIT="3/minute")
def test_each_credential_has_its_own_limit_then_429_with_retry_after():
    one, two = vendor_api(VendorFactory()), vendor_api(VendorFactory())
    answers = [one.get("/products") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0]["RateLimit-Limit"] == "3"
    assert 0 < int(answers[0]["RateLimit-Reset"]) <= 61
    refused = one.get("/products")
    assert refused.status_code == 429
    assert problem(refused)["code"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 61
    assert two.get("/products").status_code == 200  # another credential is not affected


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


def test_when_redis_is_unreachable_the_api_answers_and_logs_it(caplog):
    api = vendor_api(VendorFactory())
    with (
        override_settings(
            OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0",
            OKADA_API_RATE_LIMIT="1/minute",
        ),
        caplog.at_level(logging.WARNING, logger="okada.core.api.ratelimit"),
    ):
        answers = [api.get("/products") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]  # limits fail open
    assert "RateLimit-Limit" not in answers[0]
    assert "Redis unavailable" in caplog.text


# --- Which answers count and carry the headers ----------------------------------------------


def _refusals(api):
    """An authenticated credential's refused requests: each must count against its limit."""
    return {
        403: lambda: api.post("/orders", {}),  # the vendor key lacks orders:place
        404: lambda: api.get(f"/products/{uuid.uuid4()}"),
        405: lambda: api.delete("/products"),
        406: lambda: api.get("/products", HTTP_ACCEPT="text/html"),
        413: lambda: api.post("/products", {"sku": "A", "name": "x" * 2000, "price_xaf": 1}),
        415: lambda: api.client.post("/api/v1/products", "sku=A", content_type="text/plain", **api.headers),
    }


@override_settings(OKADA_API_RATE_LIMIT="3/minute", OKADA_API_MAX_BODY_BYTES=1000)
@pytest.mark.parametrize("status", [403, 404, 405, 406, 413, 415])
def test_a_credentials_refused_requests_count_and_carry_its_headers(status):
    # Throttled before the permission check: a credential cannot probe past its limit with
    # requests it is refused (403) or any other refusal.
    api = vendor_api(VendorFactory(), scopes=["products:read", "products:write"])
    send = _refusals(api)[status]
    answers = [send() for _ in range(3)]
    assert [a.status_code for a in answers] == [status] * 3
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0]["RateLimit-Limit"] == "3"
    refused = send()
    assert refused.status_code == 429
    assert problem(refused)["code"] == "throttled"
    assert api.get("/products").status_code == 429  # the same limit as its other requests


@override_settings(OKADA_API_ANON_RATE_LIMIT="2/minute")
def test_requests_without_a_valid_credential_count_against_the_address():
    # No per-credential limit without a credential: 401s count against the caller's address
    # (OKADA_API_ANON_RATE_LIMIT), and carry that limit's headers.
    answers = [
        Api().get("/products"),
        Api(HTTP_AUTHORIZATION="Bearer okk_000000000000_wrong").get("/products"),
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert [a["RateLimit-Remaining"] for a in answers] == ["1", "0"]
    assert answers[0]["RateLimit-Limit"] == "2"
    refused = Api(HTTP_AUTHORIZATION="Bearer okk_000000000000_wrong").get("/products")
    assert refused.status_code == 429
    assert problem(refused)["code"] == "throttled"
    # A valid credential from the same address has its own limit.
    assert vendor_api(VendorFactory()).get("/products").status_code == 200


@override_settings(OKADA_API_RATE_LIMIT="3/minute", OKADA_API_CREDENTIAL_CACHE_SECONDS=60)
def test_a_credentials_requests_to_unknown_urls_count_and_carry_its_headers(django_assert_num_queries):
    # Else a client probes URLs without limit. No database query beyond authentication's: none
    # once this process keeps the key.
    api = vendor_api(VendorFactory())
    first = api.get("/api/v1/nope")  # reads the key from the database, then keeps it
    with django_assert_num_queries(0):
        answers = [first, api.post("/api/v1/products/nope/deeper", {}), api.delete("/api/v2/products")]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert {problem(a)["code"] for a in answers} == {"not_found"}
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0]["RateLimit-Limit"] == "3"
    refused = api.get("/api/v1/nope")
    assert refused.status_code == 429
    assert problem(refused)["code"] == "throttled"
    assert api.get("/products").status_code == 429  # the same limit as its other requests


@override_settings(OKADA_API_ANON_RATE_LIMIT="2/minute")
def test_unknown_urls_without_a_credential_count_against_the_address():
    answers = [Api().get("/api/v1/nope"), Api().post("/api/nope", {})]
    assert [a.status_code for a in answers] == [404, 404]
    assert [a["RateLimit-Remaining"] for a in answers] == ["1", "0"]
    assert Api().get("/api/v1/nope").status_code == 429
    assert Api().get("/products").status_code == 429  # the address's one limit


def test_when_redis_is_unreachable_refusals_are_answered_as_usual():
    api = vendor_api(VendorFactory(), scopes=["products:read"])
    with override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"):
        forbidden = api.post("/products", {"sku": "A", "name": "n", "price_xaf": 1})
        unauthenticated = Api().get("/products")
    assert (forbidden.status_code, unauthenticated.status_code) == (403, 401)
    assert "RateLimit-Limit" not in forbidden


@override_settings(OKADA_API_ANON_RATE_LIMIT="2/minute")
def test_an_ipv6_client_counts_per_64_as_its_failed_logins_do():
    # One subscriber gets a /64 (2^64 addresses): counted per address, it escaped the limit by
    # changing the last bits of its own on each request.
    def from_address(address: str):
        return Api(REMOTE_ADDR=address).get("/products")

    assert [from_address(f"2001:db8:1:2::{n}").status_code for n in (1, 2)] == [401, 401]
    assert from_address("2001:db8:1:2:ffff::3").status_code == 429  # the same /64
    assert from_address("2001:db8:1:3::1").status_code == 401  # another subscriber's
    assert from_address("192.0.2.1").status_code == 401  # IPv4: one address each
