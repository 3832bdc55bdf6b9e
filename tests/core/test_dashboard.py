"""The operations dashboard: each figure right, linked to its list, shown by permission."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from okada.core import dashboard
from okada.core.models import JobRun
from okada.core.roles import OPERATIONS, STOCK
from orders.services import order_cancel
from tests.catalog.factories import ProductFactory, VendorFactory, role_user, staff_actor
from tests.orders.factories import OrderFactory, ZoneFactory

pytestmark = pytest.mark.django_db


def panels(client) -> dict:
    response = client.get("/admin/")
    assert response.status_code == 200
    return {p.key: p for p in response.context["okada_panels"]}


def test_open_orders_by_status_with_the_stuck_ones_counted_and_linked(client, settings):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 0, "accepted": 10_000}
    OrderFactory(), OrderFactory()
    order_cancel(order=OrderFactory(), actor=staff_actor())
    client.force_login(role_user(OPERATIONS))
    data = panels(client)["orders.open"].data
    rows = {item["row"].status: item for item in data["rows"]}
    assert (rows["pending"]["row"].count, rows["pending"]["row"].stuck) == (2, 2)
    assert rows["accepted"]["row"].count == 0
    assert (data["total"], data["stuck"]) == (2, 2)
    assert rows["pending"]["url"].endswith("?status__exact=pending")
    listed = client.get(rows["pending"]["stuck_url"]).context["cl"].result_list
    assert len(listed) == 2


def test_today_per_city_leaves_cancelled_orders_out_of_revenue(client):
    douala, yaounde = (
        ZoneFactory(city="douala", delivery_fee_xaf=500),
        ZoneFactory(city="yaounde", delivery_fee_xaf=0),
    )
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=2000, initial_stock=10)
    OrderFactory(vendor=vendor, zone=douala, items=[(product, 2)])
    order_cancel(order=OrderFactory(vendor=vendor, zone=douala, items=[(product, 1)]), actor=staff_actor())
    OrderFactory(vendor=vendor, zone=yaounde, items=[(product, 1)])
    client.force_login(role_user(OPERATIONS))
    data = panels(client)["orders.today"].data
    by_city = {r["city"]: r for r in data["rows"]}
    assert by_city["douala"]["orders"] == 2 and by_city["douala"]["revenue"] == "4\u00a0500\u00a0FCFA"
    assert by_city["yaounde"]["revenue"] == "2\u00a0000\u00a0FCFA"
    assert data["orders"] == 3 and data["revenue"] == "6\u00a0500\u00a0FCFA"
    listed = client.get(by_city["yaounde"]["url"]).context["cl"].result_list
    assert len(listed) == 1


def test_the_chart_has_fourteen_local_days_each_linked_to_its_orders(client):
    OrderFactory(), OrderFactory()
    client.force_login(role_user(OPERATIONS))
    bars = panels(client)["orders.chart"].data["bars"]
    assert len(bars) == 14
    assert bars[-1]["day"] == timezone.localdate()
    assert bars[-1]["count"] == 2 and sum(b["count"] for b in bars) == 2
    assert bars[0]["day"] == timezone.localdate() - dt.timedelta(days=13)
    assert len(client.get(bars[-1]["url"]).context["cl"].result_list) == 2


def test_low_stock_lists_live_active_products_at_or_under_the_threshold(client, settings):
    settings.OKADA_LOW_STOCK_THRESHOLD = 2
    low = ProductFactory(initial_stock=1)
    ProductFactory(initial_stock=50)
    empty = ProductFactory(initial_stock=0)
    client.force_login(role_user(STOCK))
    shown = panels(client)
    assert "orders.open" not in shown  # a Stock user does not see orders
    data = shown["catalog.low_stock"].data
    assert [s.product_id for s in data["rows"]] == [empty.pk, low.pk]
    assert data["count"] == 2
    listed = client.get(data["url"]).context["cl"].result_list
    assert {s.product_id for s in listed} == {empty.pk, low.pk}


def test_job_runs_show_the_last_run_of_each_job_failures_first(client):
    now = timezone.now()
    JobRun.objects.create(
        name="a.job", outcome="failed", started_at=now - dt.timedelta(hours=2), finished_at=now
    )
    JobRun.objects.create(
        name="a.job", outcome="success", started_at=now - dt.timedelta(hours=1), finished_at=now
    )
    JobRun.objects.create(name="z.job", outcome="failed", started_at=now, finished_at=now)
    client.force_login(role_user(OPERATIONS))
    runs = panels(client)["core.job_runs"].data["runs"]
    assert [(r["run"].name, r["run"].outcome) for r in runs] == [("z.job", "failed"), ("a.job", "success")]
    assert client.get(runs[0]["url"]).status_code == 200


def test_other_apps_add_panels_and_a_broken_one_does_not_take_the_page_down(client):
    def broken(request, obj=None):
        raise RuntimeError("boom")

    dashboard.register(
        dashboard.Panel(
            "test.backups", "Backups", "admin/core/panels/job_runs.html", lambda r, o: {"runs": []}
        )
    )
    dashboard.register(dashboard.Panel("test.broken", "Broken", "x.html", broken))
    try:
        client.force_login(role_user(OPERATIONS))
        shown = panels(client)
        assert not shown["test.backups"].failed
        assert shown["test.broken"].failed
        assert "indisponible" in client.get("/admin/").content.decode()
    finally:
        dashboard.unregister("test.backups")
        dashboard.unregister("test.broken")
