"""Catalog panels: low stock on the home page; products and stock on a vendor's page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from okada.core import dashboard
from okada.core.admin import changelist_url

from . import selectors
from .models import Product, Stock, Vendor

LIST_LIMIT = 10
COUNT_CAP = 1000  # low stock is counted up to this; more shows as "1000+"


def low_stock(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    threshold = settings.OKADA_LOW_STOCK_THRESHOLD
    figure = dashboard.cached_figure(
        f"catalog.low_stock:{threshold}",
        lambda: (
            selectors.low_stock(threshold=threshold, limit=LIST_LIMIT),
            selectors.low_stock_count(threshold=threshold, cap=COUNT_CAP),
        ),
    )
    rows, count = figure.value
    return {
        "rows": rows,
        "count": count,
        "cap": COUNT_CAP,
        "figure": figure,
        "threshold": threshold,
        "url": changelist_url(Stock, low="yes"),
    }


def vendor_catalog(request: HttpRequest, vendor: Vendor) -> dict[str, Any]:
    threshold = settings.OKADA_LOW_STOCK_THRESHOLD
    return {
        "products": selectors.newest_products(vendor=vendor, limit=LIST_LIMIT),
        "products_url": changelist_url(Product, vendor__id__exact=vendor.pk),
        "low_stock": list(
            Stock.objects.filter(vendor=vendor, level__lte=threshold)
            .select_related("product")
            .order_by("level", "id")[:LIST_LIMIT]
        ),
        "stock_url": changelist_url(Stock, vendor__id__exact=vendor.pk, low="yes"),
        "threshold": threshold,
    }


def register() -> None:
    dashboard.register(
        dashboard.Panel(
            key="catalog.low_stock",
            title=_("Low stock"),
            template="admin/catalog/panels/low_stock.html",
            build=low_stock,
            permission="catalog.view_stock",
            order=40,
        )
    )
    dashboard.register(
        dashboard.Panel(
            key="catalog.vendor_catalog",
            title=_("Products and stock"),
            template="admin/catalog/panels/vendor_catalog.html",
            build=vendor_catalog,
            permission="catalog.view_product",
            page="catalog.vendor",
            order=10,
        )
    )
