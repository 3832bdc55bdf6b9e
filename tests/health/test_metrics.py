"""/metrics: Prometheus text with django-prometheus' and Okada's metrics, behind a token or an
address allowlist."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from okada.core import counters
from orders.services import REFUSED_OUT_OF_STOCK
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import storefront_api, vendor_api
from tests.orders.factories import OrderFactory, ZoneFactory
from tests.orders.test_apis import order_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.OKADA_METRICS_TOKEN = "s3cret-metrics-token"
    settings.OKADA_METRICS_ALLOWED_IPS = []
    return settings.OKADA_METRICS_TOKEN


def test_metrics_refuse_a_request_without_the_token(client, token):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"okada_" not in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_are_refused_to_everybody_when_neither_token_nor_allowlist_is_set(client, settings):
    settings.OKADA_METRICS_TOKEN = ""
    settings.OKADA_METRICS_ALLOWED_IPS = []
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_metrics_answer_an_allowed_address_without_a_token(client, settings):
    settings.OKADA_METRICS_TOKEN = ""
    settings.OKADA_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    settings.OKADA_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9;proto=https"},
        {"X-Real-IP": "203.0.113.9"},
        {"X-Forwarded-Proto": "https"},  # a proxy that names no client still says it is one
    ],
)
def test_a_forwarded_request_from_an_allowed_address_that_is_no_trusted_proxy_is_refused(
    client, settings, header
):
    # Behind a local reverse proxy every request comes from 127.0.0.1: an allowlist of 127.0.0.1
    # let the whole internet read /metrics through the proxy.
    settings.OKADA_METRICS_TOKEN = "s3cret-metrics-token"
    settings.OKADA_METRICS_ALLOWED_IPS = ["127.0.0.1"]
    settings.OKADA_TRUSTED_PROXIES = []
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers=header).status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200  # a scraper on this host
    with_token = {**header, "Authorization": "Bearer s3cret-metrics-token"}
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers=with_token).status_code == 200


def test_behind_a_trusted_proxy_the_client_it_names_is_judged(client, settings):
    settings.OKADA_METRICS_TOKEN = ""
    settings.OKADA_METRICS_ALLOWED_IPS = ["127.0.0.1", "10.0.0.0/8"]
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1", "192.168.0.0/24"]

    def status(remote_addr: str, forwarded_for: str | None = None) -> int:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
        return client.get("/metrics", REMOTE_ADDR=remote_addr, headers=headers).status_code

    assert status("127.0.0.1", "10.1.2.3") == 200
    assert status("127.0.0.1", "203.0.113.9") == 401
    # The proxy appends its peer: what comes before is the client's to write.
    assert status("127.0.0.1", "10.1.2.3, 203.0.113.9") == 401
    # Through two trusted proxies: the address the first one saw.
    assert status("127.0.0.1", "10.1.2.3, 192.168.0.5") == 200
    assert status("127.0.0.1", "203.0.113.9, 192.168.0.5") == 401
    # A forwarded request whose chain names no client, or cannot be read, is refused.
    assert status("127.0.0.1", "") == 401
    assert status("127.0.0.1", "unknown") == 401
    assert status("127.0.0.1", "10.1.2.3:5123") == 200  # with its port (Azure writes it)
    # Without forwarding headers the request comes straight from the proxy's host: a scraper
    # there that bypasses the proxy is judged by that address.
    assert status("127.0.0.1") == 200
    # A peer that is not a trusted proxy is judged as before, unless it forwards.
    assert status("10.9.9.9") == 200
    assert status("10.9.9.9", "10.1.2.3") == 401


def test_metrics_expose_okadas_gauges_and_counters(client, token):
    OrderFactory()
    counters.count(REFUSED_OUT_OF_STOCK)
    counters.count(REFUSED_OUT_OF_STOCK)
    with connection.cursor() as cur:
        cur.execute("SELECT nextval('orders_order_number_seq')")  # an order number issued
    # The scheme is case-insensitive, as scrapers may send it.
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {token}").status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'okada_orders{status="pending"} 1.0' in text
    assert 'okada_order_refusals_total{reason="out_of_stock"} 2.0' in text
    assert "okada_order_placements_total " in text
    assert 'okada_oldest_open_order_age_seconds{status="pending"}' in text
    assert "okada_stock_outs " in text
    assert 'okada_celery_queue_length{queue="celery"}' in text
    assert "okada_db_max_connections " in text
    assert 'okada_metrics_provider_up{provider="orders"} 1.0' in text
    assert "okada_backup_max_age_seconds " in text
    # django-prometheus: requests, database and cache
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text
    assert "django_cache_get_total" in text


def test_okadas_figures_are_cached_between_scrapes(client, token):
    OrderFactory()
    first = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    OrderFactory()
    second = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    assert 'okada_orders{status="pending"} 1.0' in first
    assert 'okada_orders{status="pending"} 1.0' in second  # within OKADA_METRICS_CACHE_SECONDS


def test_the_figures_cached_for_one_database_are_not_served_for_another(client, token, monkeypatch):
    OrderFactory()
    client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    OrderFactory()
    # Another database behind the same Redis (the bench's next to the dev server's).
    monkeypatch.setitem(connection.settings_dict, "NAME", f"{connection.settings_dict['NAME']}_other")
    other = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    assert 'okada_orders{status="pending"} 2.0' in other


def test_metrics_still_answer_when_redis_is_down(client, token, settings):
    # The figures' cache is in Redis: with Redis down every scrape was a 500, so Prometheus lost
    # the database's figures just when something was wrong. They are computed each scrape then,
    # and the providers that need Redis say they could not be read.
    from tests.core.test_health import unreachable_redis

    unreachable_redis(settings)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "okada_db_size_bytes " in body
    assert 'okada_metrics_provider_up{provider="database"} 1.0' in body
    assert 'okada_metrics_provider_up{provider="orders"} 0.0' in body  # its refusal counters


def test_the_multixact_id_age_is_a_gauge_beside_the_transaction_id_age(client, token):
    # The multixact wraparound alert had no figure for Prometheus to graph or alert on.
    from okada.health import pg

    def ages() -> dict[str, Any]:
        with pg.reads() as cur:
            return pg.database(cur)

    # Every transaction of the server ages its oldest id: the scraped figure lies between a
    # reading before and one after.
    before = ages()
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    after = ages()
    for name in ("mxid_age", "xid_age"):
        [scraped] = re.findall(rf"^okada_db_{name} ([0-9.e+]+)$", text, re.M)
        assert before[name] <= float(scraped) <= after[name], name
    assert "# TYPE okada_db_mxid_age gauge" in text


def db_metric(name: str, **labels: str) -> float:
    """django-prometheus's figure `name` of the default database (and `labels`), read from its
    metric alone: a read through the registry would run Okada's collectors, whose queries count."""
    from django_prometheus.db import metrics

    wanted = {"alias": connection.alias, "vendor": connection.vendor, **labels}
    for metric in (metrics.execute_total, metrics.errors_total, metrics.query_duration_seconds):
        for sample in metric.collect()[0].samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0


def test_a_request_counts_its_prepared_statements_in_the_database_metrics():
    # The hot statements (the product list, the placement, the Idempotency-Key lookup) run through
    # a prepared cursor of their own: /metrics left them out of the query rate.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    api = vendor_api(vendor)
    assert api.get("/products").status_code == 200  # the connection is checked and warm
    for send in (
        lambda: api.get("/products"),  # the product list: one prepared statement
        lambda: storefront_api().post(  # the Idempotency-Key lookup and the placement among others
            "/orders", order_body(vendor, ZoneFactory(), product), HTTP_IDEMPOTENCY_KEY="metrics-1"
        ),
    ):
        before = db_metric("django_db_execute_total")
        with CaptureQueriesContext(connection) as queries:
            response = send()
        assert response.status_code in (200, 201), response.content
        ran = [q["sql"] for q in queries.captured_queries]
        assert None in ran  # a prepared execution is in Django's query log without its text
        assert db_metric("django_db_execute_total") - before == len(ran), ran
