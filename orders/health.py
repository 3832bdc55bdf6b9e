"""What orders add to database health (okada.core.health_registry): placements and refusals over the
last hours, the oldest open order per status, and their Prometheus metrics."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core import counters
from okada.core import health_registry as registry

from . import selectors
from .services import REFUSED_OUT_OF_STOCK

HOURS = 12


def placements_panel() -> dict[str, Any]:
    placed = selectors.placements_by_hour(hours=HOURS)
    refused = dict(counters.hourly(REFUSED_OUT_OF_STOCK, hours=HOURS))
    rows: list[dict[str, Any]] = [
        {"hour": hour, "placed": n, "refused": refused.get(hour, 0)} for hour, n in placed
    ]
    peak = max([max(r["placed"], r["refused"]) for r in rows] + [1])
    for r in rows:
        r["placed_percent"] = 100 * r["placed"] / peak
        r["refused_percent"] = 100 * r["refused"] / peak
    return {
        "rows": rows,
        "placed": sum(r["placed"] for r in rows),
        "refused": sum(r["refused"] for r in rows),
        "hours": HOURS,
    }


def open_orders_panel() -> dict[str, Any]:
    return {"statuses": selectors.open_orders_by_status()}


def order_metrics() -> list[registry.Metric]:
    now = timezone.now()
    return [
        registry.Metric(
            "okada_orders",
            "Orders by status (open statuses exact, the others estimated from the planner's statistics).",
            samples=[({"status": s}, n) for s, n in sorted(selectors.order_counts_by_status().items())],
        ),
        registry.Metric(
            "okada_order_placements_total",
            "Orders placed (order numbers issued).",
            kind="counter",
            samples=[({}, selectors.order_numbers_issued())],
        ),
        registry.Metric(
            "okada_order_refusals_total",
            "Placements refused, by reason (counted in Redis since it last restarted).",
            kind="counter",
            samples=[({"reason": "out_of_stock"}, counters.total(REFUSED_OUT_OF_STOCK))],
        ),
        registry.Metric(
            "okada_oldest_open_order_age_seconds",
            "Age of the oldest open order of each status.",
            samples=[
                ({"status": r.status}, (now - r.oldest).total_seconds())
                for r in selectors.open_orders_by_status(now=now)
                if r.oldest is not None
            ],
        ),
    ]


registry.register_panel(
    registry.Panel(
        key="orders.placements",
        title=_("Orders placed and refused (out of stock)"),
        template="admin/health/panels/placements.html",
        build=placements_panel,
        order=10,
    )
)
registry.register_panel(
    registry.Panel(
        key="orders.open",
        title=_("Oldest open order per status"),
        template="admin/health/panels/open_orders.html",
        build=open_orders_panel,
        order=20,
    )
)
registry.register_metrics("orders", order_metrics)
