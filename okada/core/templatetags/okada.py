"""Template helpers of the admin: money in FCFA, status badges, counts capped for badges."""

from __future__ import annotations

from typing import Any

from django import template

from okada.core.display import actor_label, badge, job_shown, money, reason_label
from okada.core.texts import shown

register = template.Library()


@register.filter
def fcfa(amount: int | None) -> str:
    """{{ order.total_xaf|fcfa }} -> "12 500 FCFA"."""
    return money(amount)


@register.simple_tag
def status_badge(value: str, label: Any) -> str:
    """{% status_badge order.status order.get_status_display %}"""
    return badge(value, label)


register.filter("actor", actor_label)  # "storefront:web" -> "boutique en ligne (web)"


@register.filter
def reason(text: str) -> str:
    """{{ movement.reason|reason }}: a reason the services wrote, in the active language."""
    return reason_label(text) or ""


@register.filter
def stored_text(text: str | None) -> str:
    """{{ action.detail|stored_text }}: an error or note written with okada.core.texts, in the
    active language."""
    return shown(text)


@register.filter
def job(name: str) -> str:
    """{{ run.name|job }}: a job's label in the active language, its task name in the tooltip."""
    return job_shown(name)


@register.filter
def capped(count: int, cap: int) -> str:
    """{{ data.count|capped:data.cap }}: a count made by `okada.core.querysets.count_up_to`,
    "1000+" once it went past its cap."""
    return f"{cap}+" if count > cap else str(count)
