"""okada.core.api.ratelimit: per-credential limits in the real Redis, headers, 429, fail-open."""

from __future__ import annotations

import logging
import socket

import pytest
from django.test import override_settings

from okada.core.api import ratelimit
from okada.core.api.ratelimit import Rate
from tests.catalog.factories import VendorFactory
from tests.credentials.factories import problem, vendor_api

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
