"""How the admin shows values: money in FCFA, statuses as coloured badges (no admin imports,
so template tags may use it)."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html
from django.utils.translation import gettext


def money(amount: int | None) -> str:
    """12500 -> "12 500 FCFA" (no-break spaces: the figure never wraps)."""
    if amount is None:
        return "-"
    return f"{amount:,}".replace(",", "\u00a0") + "\u00a0FCFA"


BADGE_COLOURS = {
    # orders
    "pending": "warning",
    "accepted": "info",
    "preparing": "info",
    "ready": "primary",
    "out_for_delivery": "primary",
    "delivered": "success",
    "cancelled": "",
    "expired": "",
    "refunded": "danger",
    # payments and vendors
    "unpaid": "warning",
    "paid": "success",
    "succeeded": "success",
    "failed": "danger",
    "active": "success",
    "suspended": "danger",
    "refund_owed": "danger",
    "refund_settled": "success",
    # API keys and tokens
    "revoked": "danger",
    # job runs
    "running": "info",
    "success": "success",
    "skipped": "",
    "abandoned": "warning",
}


def badge(value: str, label: Any) -> str:
    """A coloured status badge (unfold's label), the colour chosen by the raw value."""
    return format_html(
        '<span class="okada-badge okada-badge-{}" data-status="{}">{}</span>',
        BADGE_COLOURS.get(value) or "neutral",
        value,
        label,
    )


def reason_label(reason: str | None) -> str | None:
    """A stored change reason in the active language: "product created [system:factory]" ->
    "produit créé [system:factory]". Reasons are stored in English (data, stable); those the
    services write are in the catalogue (each services module lists its own CHANGE_REASONS),
    free text stays as typed."""
    if not reason:
        return reason
    base, sep, suffix = reason.partition(" [")
    if base.startswith("order -> "):
        status = base.removeprefix("order -> ")
        return gettext("order -> %(status)s") % {"status": gettext(status)} + (sep + suffix if sep else "")
    return gettext(base) + (sep + suffix if sep else "")
