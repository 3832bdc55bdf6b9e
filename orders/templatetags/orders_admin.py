"""Labels for codes stored in order events (statuses, providers, actors), in the active language."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from okada.core.display import actor_label
from orders.models import OrderStatus, PaymentMethod, PaymentResult

register = template.Library()

# Notes the services write themselves (stored in English, shown translated).
SYSTEM_NOTES = (
    gettext_noop("cancelled in admin"),
    gettext_noop("unpaid past deadline"),
)
# Why money was flagged for a refund (orders.services._settle writes these codes).
REFUND_REASONS = {
    "order_cancelled": gettext_noop("the order was cancelled"),
    "order_expired": gettext_noop("the order had expired"),
    "order_refunded": gettext_noop("the order was refunded"),
    "overpaid": gettext_noop("more than the order's total"),
    "amount_differs": gettext_noop("not the amount asked for"),
}


@register.filter
def status_label(code: str) -> str:
    return str(dict(OrderStatus.choices).get(code, code))


@register.filter
def payment_label(code: str) -> str:
    return str(dict(PaymentMethod.choices).get(code, code))


@register.filter
def payment_status_label(code: str) -> str:
    return str(dict(PaymentResult.choices).get(code, code))


@register.filter
def note_label(note: str) -> str:
    return _(note) if note in SYSTEM_NOTES else note


register.filter("actor_label", actor_label)


@register.filter
def refund_reasons(codes: list[str] | None) -> str:
    """["overpaid", "amount_differs"] -> "more than the order's total, not the amount asked for"."""
    return ", ".join(_(REFUND_REASONS[c]) if c in REFUND_REASONS else c for c in codes or [])
