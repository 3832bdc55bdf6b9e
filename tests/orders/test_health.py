"""Orders on the health page: placements per hour, refusals counted where they happen, the oldest
open order per status, and order metrics."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from okada.core import counters
from orders import health, selectors
from orders.services import REFUSED_OUT_OF_STOCK, OutOfStock
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_a_refused_placement_is_counted_in_its_hour_and_a_placed_one_is_not():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=1)
    OrderFactory(vendor=vendor, items=[(product, 1)])
    with pytest.raises(OutOfStock):
        OrderFactory(vendor=vendor, items=[(product, 1)])
    assert counters.total(REFUSED_OUT_OF_STOCK) == 1
    assert counters.hourly(REFUSED_OUT_OF_STOCK, hours=2)[-1][1] == 1


def test_placements_are_counted_per_hour_from_the_orders():
    OrderFactory()
    OrderFactory()
    hours = selectors.placements_by_hour(hours=3)
    assert len(hours) == 3
    assert hours[-1][0] == timezone.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    assert [n for _, n in hours] == [0, 0, 2]


def test_the_placements_panel_sets_refusals_beside_placements():
    counters.count(REFUSED_OUT_OF_STOCK)
    OrderFactory()
    panel = health.placements_panel()
    assert (panel["placed"], panel["refused"]) == (1, 1)
    assert panel["rows"][-1]["placed_percent"] == 100


def test_the_open_orders_panel_and_metric_give_the_oldest_open_order_of_each_status():
    first = OrderFactory()
    OrderFactory()
    rows = {r.status: r for r in health.open_orders_panel()["statuses"]}
    assert rows["pending"].count == 2 and rows["pending"].oldest == first.placed_at
    assert rows["ready"].count == 0 and rows["ready"].oldest is None
    [age] = next(m for m in health.order_metrics() if m.name == "okada_oldest_open_order_age_seconds").samples
    assert age[0] == {"status": "pending"}
    assert 0 <= age[1] < 60


def test_order_counts_estimate_closed_statuses_from_the_statistics():
    OrderFactory()
    counts = selectors.order_counts_by_status()
    assert counts["pending"] == 1
    assert set(counts) >= {"delivered", "cancelled", "expired", "refunded"}
