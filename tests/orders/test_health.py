"""Orders on the health page: placements per hour, refusals counted where they happen, the oldest
open order per status, and order metrics."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from okada.core import counters
from orders import health, selectors
from orders.models import Order
from orders.services import REFUSED_OUT_OF_STOCK, OutOfStock
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_a_refused_placement_is_counted_in_its_hour_and_a_placed_one_is_not():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=1)
    OrderFactory(vendor=vendor, items=[(product, 1)])
    before = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with pytest.raises(OutOfStock):
        OrderFactory(vendor=vendor, items=[(product, 1)])
    after = dt.datetime.now(dt.UTC)
    assert counters.total(REFUSED_OUT_OF_STOCK) == 1
    # Counted in the hour it happened, between `before` and `after` (one hour, or two when an
    # hour began meanwhile: the current one would then be empty).
    hours = counters.hourly(REFUSED_OUT_OF_STOCK, hours=2, now=after)
    assert sum(n for hour, n in hours if hour >= before) == sum(n for _, n in hours) == 1


def test_placements_are_counted_per_hour_from_the_orders():
    # Placed at half past an hour and counted five minutes later: the test's orders and the
    # selector's "now" are never on either side of an hour (placed_at is the transaction's start).
    placed = timezone.now().astimezone(dt.UTC).replace(minute=30, second=0, microsecond=0) - dt.timedelta(
        hours=1
    )
    OrderFactory()
    OrderFactory()
    Order.objects.update(placed_at=placed)
    hours = selectors.placements_by_hour(hours=3, now=placed + dt.timedelta(minutes=5))
    assert len(hours) == 3
    assert hours[-1][0] == placed.replace(minute=0)
    assert [n for _, n in hours] == [0, 0, 2]


def test_the_placements_panel_sets_refusals_beside_placements():
    counters.count(REFUSED_OUT_OF_STOCK)
    order = OrderFactory()
    panel = health.placements_panel()
    assert (panel["placed"], panel["refused"]) == (1, 1)
    # The order's hour, not the last one: an hour may begin between the placing and the panel.
    placed_hour = order.placed_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    assert next(r for r in panel["rows"] if r["hour"] == placed_hour)["placed_percent"] == 100


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
