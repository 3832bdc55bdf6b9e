"""Template helpers of the health screens: alert texts and PostgreSQL's words in the reader's
language, sizes, ages."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

register = template.Library()


@register.filter
def alert_text(alert: Any) -> str:
    from ..display import alert_text as text

    return text(alert)


# Words PostgreSQL reports in pg_stat_activity and pg_stat_replication (state, backend_type,
# wait_event_type, sync_state), as its manual names them; shown by `pg`. Values not listed
# (wait events, lock modes: identifiers an engineer looks up) are shown as they are.
PG_WORDS = {
    # sessions' state
    "active": _("running a query"),
    "idle": _("idle (connected)"),
    "idle in transaction": _("idle, transaction open"),
    "idle in transaction (aborted)": _("idle, failed transaction open"),
    "fastpath function call": _("calling a function (fast path)"),
    "disabled": _("not tracked (track_activities off)"),
    # backend_type
    "client backend": _("client connection"),
    "autovacuum launcher": _("autovacuum launcher"),
    "autovacuum worker": _("autovacuum worker"),
    "background writer": _("background writer"),
    "checkpointer": _("checkpointer"),
    "walwriter": _("WAL writer"),
    "walsender": _("WAL sender (replication)"),
    "walreceiver": _("WAL receiver (replication)"),
    "walsummarizer": _("WAL summarizer"),
    "archiver": _("WAL archiver"),
    "startup": _("startup"),
    "logical replication launcher": _("logical replication launcher"),
    "logical replication worker": _("logical replication worker"),
    "parallel worker": _("parallel query worker"),
    "background worker": _("background worker"),
    # wait_event_type
    "Activity": _("waiting for work (background process)"),
    "BufferPin": _("waiting for a buffer pin"),
    "Client": _("waiting for the client"),
    "Extension": _("waiting in an extension"),
    "IO": _("waiting for disk I/O"),
    "IPC": _("waiting for another process"),
    "Lock": _("waiting for a lock"),
    "LWLock": _("waiting for an internal lock"),
    "Timeout": _("waiting for a timeout"),
    # replication: state, sync_state
    "catchup": _("catching up"),
    "streaming": _("streaming"),
    "backup": _("taking a base backup"),
    "stopping": _("stopping"),
    "async": _("asynchronous"),
    "sync": _("synchronous"),
    "potential": _("synchronous if needed"),
    "quorum": _("synchronous (quorum)"),
}


@register.filter
def pg(value: str | None) -> str:
    """{{ s.state|pg }}: a word of PostgreSQL's in the reader's language, PostgreSQL's own word
    in the tooltip (what an engineer searches for or queries)."""
    if not value:
        return "-"
    label = PG_WORDS.get(value)
    if label is None:
        return value
    return format_html('<span title="PostgreSQL: {}">{}</span>', value, label)


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
        return gettext("%(n)s h") % {"n": formats.number_format(value / 3600, 1)}
    return gettext("%(n)s d") % {"n": formats.number_format(value / 86400, 1)}


@register.filter
def ms(value: Any) -> str:
    """Milliseconds: one decimal in the reader's number format below a second, then whole
    numbers grouped by thousands with a space (both languages)."""
    if value is None:
        return "-"
    return formats.number_format(value, 1) if value < 1000 else f"{value:,.0f}".replace(",", " ")


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
