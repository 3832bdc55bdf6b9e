"""What the catalog adds to database health (okada.core.health_registry): stock-outs."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from okada.core import health_registry as registry

from . import selectors

CAP = 1000


def stock_outs_panel() -> dict[str, Any]:
    return {"count": selectors.stock_out_count(cap=CAP), "cap": CAP, "rows": selectors.stock_outs(limit=10)}


def stock_metrics() -> list[registry.Metric]:
    return [
        registry.Metric(
            "okada_stock_outs",
            f"Live, active products with no unit left to sell (counted up to {CAP + 1}).",
            samples=[({}, selectors.stock_out_count(cap=CAP))],
        )
    ]


registry.register_panel(
    registry.Panel(
        key="catalog.stock_outs",
        title=_("Stock-outs"),
        template="admin/health/panels/stock_outs.html",
        build=stock_outs_panel,
        order=30,
    )
)
registry.register_metrics("catalog", stock_metrics)
