"""Order panels: the home page's open orders, today's figures, the 14-day chart and the refunds
owed (Finance's follow-up); a vendor's open orders on its page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core import dashboard
from okada.core.admin import changelist_url
from okada.core.display import money

from . import selectors
from .models import OPEN_STATUSES, Order, Payment

CHART_DAYS = 14
REFUNDS_SHOWN, REFUNDS_CAP = 5, 1000


def _day(d: dt.date) -> str:
    return d.isoformat()


def open_orders(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    now = selectors.clock()
    rows = selectors.open_orders_by_status(now=now)
    return {
        "rows": [
            {
                "row": r,
                "url": changelist_url(Order, status__exact=r.status),
                "stuck_url": changelist_url(Order, status__exact=r.status, stuck="yes"),
                "oldest_minutes": int((now - r.oldest).total_seconds() // 60) if r.oldest else None,
            }
            for r in rows
        ],
        "total": sum(r.count for r in rows),
        "stuck": sum(r.stuck for r in rows),
        "stuck_url": changelist_url(Order, stuck="yes"),
        "queue_url": changelist_url(Order) + "queue/",
        "stuck_orders": selectors.stuck_orders(limit=10, now=now),
    }


def today(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    now = selectors.clock()
    day = timezone.localtime(now).date()
    figure = dashboard.cached_figure(f"orders.today:{day}", lambda: selectors.today_by_city(now=now))
    rows = figure.value
    placed = {"placed_from": _day(day), "placed_to": _day(day)}
    return {
        "rows": [
            {
                "city": r["zone__city"],
                "orders": r["orders"],
                "revenue": money(r["revenue"]),
                "url": changelist_url(Order, **placed, city=r["zone__city"]),
            }
            for r in rows
        ],
        "orders": sum(r["orders"] for r in rows),
        "revenue": money(sum(r["revenue"] for r in rows)),
        "url": changelist_url(Order, **placed),
        "figure": figure,
    }


def chart(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    now = selectors.clock()
    figure = dashboard.cached_figure(
        f"orders.chart:{timezone.localtime(now).date()}:{CHART_DAYS}",
        lambda: selectors.orders_per_day(days=CHART_DAYS, now=now),
    )
    days = figure.value
    top = max((n for _, n in days), default=0) or 1
    width = 100 / len(days)
    return {
        "bars": [
            {
                "day": d,
                "count": n,
                "x": i * width,
                "width": width * 0.8,
                "height": round(100 * n / top, 1),
                "y": round(100 - 100 * n / top, 1),
                "url": changelist_url(Order, placed_from=_day(d), placed_to=_day(d)),
            }
            for i, (d, n) in enumerate(days)
        ],
        "top": top,
        "total": sum(n for _, n in days),
        "figure": figure,
    }


def refunds_owed(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    """Payments whose money does not fit their order, oldest first, each linked to the payment
    list filtered to it (where Finance records the refund as settled)."""
    count, oldest = selectors.refunds_owed(limit=REFUNDS_SHOWN, cap=REFUNDS_CAP)
    now = selectors.clock()
    return {
        "count": count,
        "cap": REFUNDS_CAP,
        "url": changelist_url(Payment, needs_refund__exact=1),
        "rows": [
            {
                "payment": p,
                "received": money(p.received_xaf),
                # Since flagged, not since asked for (always set while owed: a CHECK says so).
                "days": (now - (p.refund_flagged_at or p.created_at)).days,
                "url": changelist_url(Payment, needs_refund__exact=1, order__id__exact=p.order_id),
            }
            for p in oldest
        ],
    }


def vendor_open_orders(request: HttpRequest, vendor: Any) -> dict[str, Any]:
    return {
        "orders": list(selectors.open_orders_for_vendor(vendor=vendor, limit=10)),
        "url": changelist_url(Order, vendor__id__exact=vendor.pk, status__in=",".join(OPEN_STATUSES)),
    }


def register() -> None:
    for panel in (
        dashboard.Panel(
            key="orders.open",
            title=_("Open orders"),
            template="admin/orders/panels/open_orders.html",
            build=open_orders,
            permission="orders.view_order",
            order=10,
            wide=True,
        ),
        dashboard.Panel(
            key="orders.today",
            title=_("Today"),
            template="admin/orders/panels/today.html",
            build=today,
            permission="orders.view_order",
            order=20,
        ),
        dashboard.Panel(
            key="orders.chart",
            title=_("Orders per day, last 14 days"),
            template="admin/orders/panels/chart.html",
            build=chart,
            permission="orders.view_order",
            order=30,
        ),
        dashboard.Panel(
            key="orders.refunds_owed",
            title=_("Refunds owed"),
            template="admin/orders/panels/refunds_owed.html",
            build=refunds_owed,
            permission="orders.view_payment",
            order=35,
        ),
        dashboard.Panel(
            key="orders.vendor_open",
            title=_("Open orders"),
            template="admin/orders/panels/vendor_open_orders.html",
            build=vendor_open_orders,
            permission="orders.view_order",
            page="catalog.vendor",
            order=20,
        ),
    ):
        dashboard.register(panel)
