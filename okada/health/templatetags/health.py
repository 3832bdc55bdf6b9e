"""Template helpers of the health screens: alert texts in the reader's language, sizes, ages."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import formats
from django.utils.translation import gettext

register = template.Library()


@register.filter
def alert_text(alert: Any) -> str:
    from ..admin import alert_text as text

    return text(alert)


@register.filter
def job_outcome(value: str | None) -> str:
    """A job run's outcome as stored ("success") in the reader's language."""
    from okada.core.models import JobRun

    return str(dict(JobRun.Outcome.choices).get(value, value)) if value else ""


@register.filter
def bytes_(value: Any) -> str:
    return "-" if value is None else str(filesizeformat(value))


@register.filter
def seconds(value: Any) -> str:
    """A duration in seconds, short: 850 ms, 42 s, 12 min, 3.5 h, 2.1 d."""
    if value is None:
        return "-"
    value = float(value)
    if value < 1:
        return gettext("%(n)d ms") % {"n": value * 1000}
    if value < 120:
        return gettext("%(n).0f s") % {"n": value}
    if value < 7200:
        return gettext("%(n).0f min") % {"n": value / 60}
    if value < 48 * 3600:
        return gettext("%(n).1f h") % {"n": value / 3600}
    return gettext("%(n).1f d") % {"n": value / 86400}


@register.filter
def ms(value: Any) -> str:
    return "-" if value is None else (f"{value:,.1f}" if value < 1000 else f"{value:,.0f}").replace(",", " ")


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """A ratio as a percentage in the reader's number format (98,74 % in French)."""
    return "-" if value is None else f"{formats.number_format(100 * float(value), int(digits))} %"


@register.filter
def number(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}".replace(",", " ")


@register.filter
def share(value: Any, total: Any) -> float:
    return 0.0 if not total or value is None else 100.0 * float(value) / float(total)
