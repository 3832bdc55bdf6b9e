"""How the admin shows values: money in FCFA, statuses as coloured badges, jobs by their
labels (no admin imports, so template tags may use it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.template.defaultfilters import yesno
from django.utils import formats
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_noop, pgettext_lazy

from .texts import Text, shown


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


def _is_job(name: str) -> bool:
    from .jobs import registered_task

    return registered_task(name) is not None


# Change reasons the services write with a parameter ("order -> accepted", "job
# backups.run_backup"): (prefix, msgid, parameter, whether a value is one, how it is shown).
PARAMETRISED_REASONS: tuple[tuple[str, str, str, Callable[[str], bool], Callable[[str], str]], ...] = (
    ("order -> ", gettext_noop("order -> %(status)s"), "status", bool, gettext),
    ("job ", gettext_noop("job %(name)s"), "name", _is_job, lambda name: job_label(name)),
)


def reason_label(reason: str | None) -> str | None:
    """A stored change reason in the active language: "product created [system:factory]" ->
    "produit créé [system:factory]". Reasons are stored in English (data, stable), the way
    okada.core.texts stores any text we write; those the services write are in the catalogue
    (each services module lists its own CHANGE_REASONS), free text stays as typed."""
    if not reason:
        return reason
    base, sep, suffix = reason.partition(" [")
    for prefix, msgid, parameter, is_one, show in PARAMETRISED_REASONS:
        value = base.removeprefix(prefix)
        if base.startswith(prefix) and is_one(value):
            return Text(msgid, **{parameter: show(value)}).render() + (sep + suffix if sep else "")
    return shown(base) + (sep + suffix if sep else "")


def job_label(name: str) -> str:
    """A job's label in the active language (okada.core.jobs.labelled on its task), or the task
    name for a job nobody labelled."""
    from .jobs import registered_task

    label = getattr(registered_task(name), "job_label", None)
    return str(label) if label else name


def job_shown(name: str) -> str:
    """A job's label, its task name (what logs and scripts use) in the tooltip."""
    return format_html('<span title="{}">{}</span>', name, job_label(name))


def job_summary(name: str, summary: Any) -> str:
    """A run's summary as a small table: each key by the label its job gave it (a key without
    one as it is, so nothing is hidden), each value readable in the active language."""
    from .jobs import SKIPPED_SUMMARY, registered_task

    labels = {**SKIPPED_SUMMARY, **getattr(registered_task(name), "summary_labels", {})}
    return _summary_value(summary, labels)


def _summary_value(value: Any, labels: dict[str, Any]) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return str(yesno(value))
    if isinstance(value, str):  # stored in English or as okada.core.texts: shown translated
        return shown(value)
    if isinstance(value, float):  # durations and the like: two decimals are plenty to read
        return formats.localize(round(value, 2))
    if isinstance(value, int):
        return formats.localize(value)
    if isinstance(value, dict):
        rows = ((key, labels.get(key, key), _summary_value(item, labels)) for key, item in value.items())
        return format_html(
            '<table class="okada-summary">{}</table>',
            format_html_join("", '<tr data-key="{}"><th>{}</th><td>{}</td></tr>', rows),
        )
    if isinstance(value, list) and not any(isinstance(item, (dict, list)) for item in value):
        return ", ".join(_summary_value(item, labels) for item in value)
    return json.dumps(value, ensure_ascii=False, default=str)  # rows sampled by an audit


# Who did something, as stored on events and ledger rows: "<role>[:<name>]".
ACTOR_ROLES = {
    "staff": pgettext_lazy("actor role", "staff"),
    "system": pgettext_lazy("actor role", "system"),
    "storefront": pgettext_lazy("actor role", "storefront"),
    "vendor": pgettext_lazy("actor role", "vendor"),
}


def actor_label(actor: str) -> str:
    """ "storefront:web" -> "boutique en ligne (web)"; the role translated, the name kept."""
    role, _sep, who = (actor or "").partition(":")
    label = str(ACTOR_ROLES[role]) if role in ACTOR_ROLES else role
    return f"{label} ({who})" if who else label
