"""The operations dashboard: each figure right, linked to its list, shown by permission."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import cache
from django.utils import timezone

from okada.core import dashboard
from okada.core.models import JobRun
from okada.core.roles import OPERATIONS, STOCK
from orders import selectors
from orders.models import Order, OrderStatus
from orders.services import order_cancel
from tests.catalog.factories import ProductFactory, VendorFactory, role_user, staff_actor
from tests.languages import admin_page
from tests.orders.factories import OrderFactory, ZoneFactory, order_in_status

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


@pytest.fixture
def noon(monkeypatch) -> dt.datetime:
    """The order figures are read at noon (Douala) yesterday; `placed_before(noon)` moves the
    orders placed so far a minute before it. Orders placed at 23:59 and counted at 00:00 were
    yesterday's, not "today's"; the same instant, away from midnight, every time."""
    at = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    monkeypatch.setattr(selectors, "clock", lambda: at)
    return at


def placed_before(noon: dt.datetime) -> None:
    Order.objects.update(placed_at=noon - dt.timedelta(minutes=1))


def test_today_per_city_leaves_cancelled_orders_out_of_revenue(client, noon):
    douala, yaounde = (
        ZoneFactory(city="douala", delivery_fee_xaf=500),
        ZoneFactory(city="yaounde", delivery_fee_xaf=0),
    )
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=2000, initial_stock=10)
    OrderFactory(vendor=vendor, zone=douala, items=[(product, 2)])
    order_cancel(order=OrderFactory(vendor=vendor, zone=douala, items=[(product, 1)]), actor=staff_actor())
    elsewhere = ProductFactory(vendor=VendorFactory(city="yaounde"), price_xaf=2000, initial_stock=10)
    OrderFactory(vendor=elsewhere.vendor, zone=yaounde, items=[(elsewhere, 1)])
    placed_before(noon)
    client.force_login(role_user(OPERATIONS))
    data = panels(client)["orders.today"].data
    by_city = {r["city"]: r for r in data["rows"]}
    assert by_city["douala"]["orders"] == 2 and by_city["douala"]["revenue"] == "4\u00a0500\u00a0FCFA"
    assert by_city["yaounde"]["revenue"] == "2\u00a0000\u00a0FCFA"
    assert data["orders"] == 3 and data["revenue"] == "6\u00a0500\u00a0FCFA"
    listed = client.get(by_city["yaounde"]["url"]).context["cl"].result_list
    assert len(listed) == 1


def test_the_chart_has_fourteen_local_days_each_linked_to_its_orders(client, noon):
    OrderFactory(), OrderFactory()
    placed_before(noon)
    client.force_login(role_user(OPERATIONS))
    bars = panels(client)["orders.chart"].data["bars"]
    assert len(bars) == 14
    assert bars[-1]["day"] == noon.date()
    assert bars[-1]["count"] == 2 and sum(b["count"] for b in bars) == 2
    assert bars[0]["day"] == noon.date() - dt.timedelta(days=13)
    assert len(client.get(bars[-1]["url"]).context["cl"].result_list) == 2


def test_the_charts_day_tooltips_are_written_as_each_language_writes_them(client, noon):
    # The tooltip was "<day> : 2" in both languages, a plain space before the colon: French
    # typography in English, and a line break possible before the colon in French.
    OrderFactory(), OrderFactory()
    placed_before(noon)
    client.force_login(role_user(OPERATIONS))
    french = re.findall(r"<title>([^<]*)</title>", admin_page(client, "/admin/", "fr"))
    english = re.findall(r"<title>([^<]*)</title>", admin_page(client, "/admin/", "en"))
    assert re.fullmatch(r"\S+ \d\d/\d\d\u00a0: 2", french[-1]), french
    assert re.fullmatch(r"[A-Z][a-z]{2} \d\d/\d\d: 2", english[-1]), english


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


def listed(client, url: str) -> list:
    response = client.get(url)
    assert response.status_code == 200, url
    return list(response.context["cl"].result_list)


def test_every_figure_is_the_number_of_rows_of_the_list_it_links_to(client, settings, noon):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 0, "ready": 0}
    settings.OKADA_LOW_STOCK_THRESHOLD = 2
    douala, yaounde = ZoneFactory(city="douala"), ZoneFactory(city="yaounde")
    OrderFactory(zone=douala), OrderFactory(zone=yaounde), OrderFactory(zone=yaounde)  # stuck
    order_in_status(OrderStatus.READY, zone=douala)  # stuck
    order_in_status(OrderStatus.ACCEPTED, zone=douala)  # within its 20 minutes
    order_in_status(OrderStatus.CANCELLED, zone=yaounde)  # today's, not open
    ProductFactory(initial_stock=1), ProductFactory(initial_stock=0)
    placed_before(noon)
    client.force_login(role_user(OPERATIONS))
    shown = panels(client)

    open_orders = shown["orders.open"].data
    assert (open_orders["total"], open_orders["stuck"]) == (5, 4)
    for item in open_orders["rows"]:
        assert len(listed(client, item["url"])) == item["row"].count, item["row"].status
        assert len(listed(client, item["stuck_url"])) == item["row"].stuck, item["row"].status
    stuck = {o.pk for o in listed(client, open_orders["stuck_url"])}
    assert len(stuck) == open_orders["stuck"]
    assert {o.pk for o in open_orders["stuck_orders"]} == stuck
    assert len(client.get(open_orders["queue_url"]).context["orders"]) == open_orders["total"]

    today = shown["orders.today"].data
    assert today["orders"] == 6 and len(listed(client, today["url"])) == 6
    assert {r["city"]: r["orders"] for r in today["rows"]} == {"douala": 3, "yaounde": 3}
    for row in today["rows"]:
        assert len(listed(client, row["url"])) == row["orders"], row["city"]

    bars = shown["orders.chart"].data["bars"]
    assert [b["count"] for b in bars] == [0] * 13 + [6]
    for bar in bars:  # each day's link lists that local day's orders, and only them
        assert len(listed(client, bar["url"])) == bar["count"], bar["day"]

    low = shown["catalog.low_stock"].data
    assert low["count"] == 2 and len(listed(client, low["url"])) == 2


def test_the_heavy_figures_are_kept_for_the_cache_time_and_say_when_they_were_computed(
    client, settings, noon
):
    settings.OKADA_DASHBOARD_CACHE_SECONDS = 60
    OrderFactory()
    placed_before(noon)
    client.force_login(role_user(OPERATIONS))
    first = panels(client)
    OrderFactory()
    placed_before(noon)

    again = panels(client)
    assert again["orders.today"].data["orders"] == first["orders.today"].data["orders"] == 1
    assert again["orders.chart"].data["total"] == 1
    assert again["orders.open"].data["total"] == 2  # open orders and stuck ones are always live
    as_of = first["orders.today"].data["figure"].as_of
    assert again["orders.today"].data["figure"].as_of == as_of
    page = client.get("/admin/").content.decode()
    assert f"Chiffres de {timezone.localtime(as_of):%H:%M:%S}, recalculés au plus toutes les 60 s" in page

    cache.clear()  # as when the 60 seconds are over
    assert panels(client)["orders.today"].data["orders"] == 2


def test_with_no_cache_time_every_figure_is_computed_on_each_view(client, settings):
    settings.OKADA_DASHBOARD_CACHE_SECONDS = 0
    OrderFactory()
    client.force_login(role_user(OPERATIONS))
    assert panels(client)["orders.chart"].data["total"] == 1
    OrderFactory()
    assert panels(client)["orders.chart"].data["total"] == 2
    assert "Chiffres de" not in client.get("/admin/").content.decode()


def test_a_cached_figure_is_computed_once_per_key_until_it_expires(settings):
    settings.OKADA_DASHBOARD_CACHE_SECONDS = 60
    computed = []

    def compute(value):
        computed.append(value)
        return value

    first = dashboard.cached_figure("test.figure:a", lambda: compute("a"))
    again = dashboard.cached_figure("test.figure:a", lambda: compute("other"))
    other_key = dashboard.cached_figure("test.figure:b", lambda: compute("b"))

    assert (first.value, again.value, other_key.value) == ("a", "a", "b")
    assert again.as_of == first.as_of and again.seconds == 60
    assert computed == ["a", "b"]
