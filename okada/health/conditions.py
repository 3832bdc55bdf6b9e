"""The alert conditions of okada.health itself: the database, scheduled jobs, partitions and the
Celery queue. Backups register theirs from backups/health.py. Thresholds come from the settings
(OKADA_HEALTH_*); each condition returns a Finding per subject that is wrong now."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext_lazy

from okada.core.health_registry import CRITICAL, WARNING, Condition, Finding, register_condition

from . import pg, queue, selectors


def sequences_near_max() -> list[Finding]:
    limit = settings.OKADA_HEALTH_SEQUENCE_ALERT_PERCENT
    with pg.reads() as cur:
        found = pg.sequences(cur)
    return [
        Finding(
            subject=s["name"],
            message=gettext_noop(
                "Sequence %(name)s has used %(percent).1f%% of its range (values left: %(remaining)s)."
            ),
            params={"name": s["name"], "percent": s["used_percent"], "remaining": s["remaining"]},
            severity=CRITICAL if s["used_percent"] >= 95 else WARNING,
        )
        for s in found
        if s["used_percent"] >= limit
    ]


def cache_hit_ratio_low() -> list[Finding]:
    """The table and index cache hit ratios between the two latest snapshots (an hour): the
    ratios since the statistics' reset hid a bad hour behind months of good ones, and were noisy
    for a while after a reset."""
    limit = settings.OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT / 100
    reads = selectors.cache_hit_interval()["reads"]
    if reads is None:
        return []
    found = []
    for what in ("table", "index"):
        ratio = reads[f"{what}_ratio"]  # None under the minimum of blocks: no judgement
        if ratio is not None and ratio < limit:
            found.append(
                Finding(
                    subject=what,
                    message=gettext_noop(
                        "The %(what)s cache hit ratio was %(percent).2f%% from %(since)s to %(until)s "
                        "(%(blocks)s blocks accessed; alert under %(limit)s%%)."
                    ),
                    params={
                        "what": what,
                        "percent": ratio * 100,
                        # The marketplace's time, as the alert emails give it (snapshot hours are UTC).
                        "since": f"{timezone.localtime(reads['since'].hour):%H:%M}",
                        "until": f"{timezone.localtime(reads['until'].hour):%H:%M}",
                        "blocks": reads[f"{what}_blocks"],
                        "limit": limit * 100,
                    },
                )
            )
    return found


def long_queries() -> list[Finding]:
    minutes = settings.OKADA_HEALTH_LONG_QUERY_MINUTES
    with pg.reads() as cur:
        sessions = pg.activity(cur)
    return [
        Finding(
            # A new query of the same backend is a new alert: the start time is part of the subject.
            subject=f"{s['pid']}@{s['query_start']:%Y%m%d%H%M%S%f}",
            message=gettext_noop("Backend %(pid)s has run one query for %(minutes).0f minutes: %(query)s"),
            params={
                "pid": s["pid"],
                "minutes": s["query_seconds"] / 60,
                "query": pg.without_literals(s["query"])[:300],
            },
        )
        for s in sessions
        if s["state"] == "active"
        and s["backend_type"] == "client backend"
        and s["query_seconds"] is not None
        and s["query_seconds"] >= minutes * 60
    ]


def idle_transactions() -> list[Finding]:
    """Sessions idle inside an open transaction: they keep their locks and hold back VACUUM's
    horizon until the application commits, rolls back or disconnects."""
    minutes = settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES
    critical = settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES
    with pg.reads() as cur:
        sessions = pg.activity(cur)
    return [
        Finding(
            # The same transaction stays the same alert (a warning that turns critical); the
            # backend's next transaction is a new one. A failed transaction shows no start: the
            # moment it went idle (until its rollback) stands for it.
            subject=f"{s['pid']}@{s['xact_start'] or s['state_change']:%Y%m%d%H%M%S%f}",
            message=ngettext_lazy(
                "Backend %(pid)s has been idle in an open transaction for %(minutes)s minute "
                "(its locks are held, VACUUM cannot clean up after it); last query: %(query)s",
                "Backend %(pid)s has been idle in an open transaction for %(minutes)s minutes "
                "(its locks are held, VACUUM cannot clean up after it); last query: %(query)s",
                "minutes",
            ),
            params={
                "pid": s["pid"],
                "minutes": int(s["state_seconds"] // 60),
                "query": pg.without_literals(s["query"])[:300],
            },
            severity=CRITICAL if s["state_seconds"] >= critical * 60 else WARNING,
        )
        for s in sessions
        # "(aborted)": a statement failed and the application has not rolled back; its locks are
        # held all the same.
        if s["state"] in ("idle in transaction", "idle in transaction (aborted)")
        and s["backend_type"] == "client backend"
        and s["state_seconds"] is not None
        and (s["xact_start"] or s["state_change"]) is not None
        and s["state_seconds"] >= minutes * 60
    ]


def lock_waits() -> list[Finding]:
    seconds = settings.OKADA_HEALTH_LOCK_WAIT_SECONDS
    with pg.reads() as cur:
        sessions = pg.activity(cur)
    return [
        Finding(
            subject=f"{s['pid']}@{s['query_start']:%Y%m%d%H%M%S%f}",
            message=gettext_noop(
                "Backend %(pid)s has waited %(seconds).0f s for a %(mode)s lock on %(relation)s, "
                "blocked by %(blockers)s."
            ),
            params={
                "pid": s["pid"],
                "seconds": s["wait_seconds"],
                "mode": s["mode"] or "?",
                "relation": s["relation"] or s["locktype"] or "?",
                "blockers": ", ".join(str(p) for p in s["blocked_by"] or []),
            },
        )
        for s in sessions
        if s["wait_seconds"] is not None and s["wait_seconds"] >= seconds
    ]


def _id_age_past(figure: str, percent: float, message: str) -> list[Finding]:
    """An alert when the database's oldest transaction or multixact id (`figure` of pg.database)
    is past `percent` of the 2^31 ids PostgreSQL can tell apart; critical from 75 %."""
    with pg.reads() as cur:
        age = pg.database(cur)[figure]
    if age < percent / 100 * pg.XID_LIMIT:
        return []
    return [
        Finding(
            subject="database",
            message=message,
            params={"age": age, "percent": 100 * age / pg.XID_LIMIT},
            severity=CRITICAL if age >= 0.75 * pg.XID_LIMIT else WARNING,
        )
    ]


def wraparound() -> list[Finding]:
    return _id_age_past(
        "xid_age",
        settings.OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT,
        gettext_noop(
            "Transaction id age is %(age)s, %(percent).1f%% of the wraparound limit: "
            "vacuum (freeze) the oldest tables."
        ),
    )


def multixact_wraparound() -> list[Finding]:
    return _id_age_past(
        "mxid_age",
        settings.OKADA_HEALTH_MULTIXACT_ALERT_PERCENT,
        gettext_noop(
            "Multixact id age is %(age)s, %(percent).1f%% of the wraparound limit: "
            "vacuum (freeze) the oldest tables."
        ),
    )


def jobs_failing() -> list[Finding]:
    with pg.reads() as cur:
        jobs = selectors.job_summary(cur)
    return [
        Finding(
            subject=j["name"],
            message=gettext_noop("Job %(job)s failed twice in a row (last run %(when)s)."),
            params={"job": j["name"], "when": j["started"].isoformat(timespec="minutes")},
        )
        for j in jobs
        if j["failing_twice"]
    ]


def jobs_overdue() -> list[Finding]:
    with pg.reads() as cur:
        jobs = selectors.job_summary(cur)
    return [
        Finding(
            subject=o["job"],
            message=gettext_noop(
                "Job %(job)s has not succeeded since a run was due at %(due)s (last success: %(last)s)."
            ),
            params={
                "job": o["job"],
                "due": o["due"].isoformat(timespec="minutes"),
                "last": o["last_success"].isoformat(timespec="minutes") if o["last_success"] else "-",
            },
        )
        for o in selectors.overdue_jobs(jobs)
    ]


def queue_growing() -> list[Finding]:
    minutes = settings.OKADA_HEALTH_QUEUE_GROWTH_MINUTES
    length = queue.queue_length()
    samples = queue.record_sample(length)
    if not queue.growing_for(samples, minutes):
        return []
    return [
        Finding(
            subject=queue.queue_names()[0],
            message=gettext_noop(
                "The Celery queue has grown for %(minutes)s minutes: %(length)s tasks waiting."
            ),
            params={"minutes": minutes, "length": length},
        )
    ]


def partitions_missing() -> list[Finding]:
    with pg.reads() as cur:
        tables = selectors.partition_status(cur)
    found = []
    for t in tables:
        # The month that just entered the horizon is made by the next hourly run: not yet missing.
        late = [m for m in t["missing"] if m != t["horizon_edge"] or not t["premake_months"]]
        if late:
            found.append(
                Finding(
                    subject=t["table"],
                    message=gettext_noop(
                        "%(table)s has no partition for %(months)s (within the premake horizon)."
                    ),
                    params={"table": t["table"], "months": ", ".join(f"{m:%Y-%m}" for m in late)},
                    severity=CRITICAL,
                )
            )
    return found


def rows_in_default() -> list[Finding]:
    with pg.reads() as cur:
        tables = selectors.partition_status(cur)
    return [
        Finding(
            subject=t["table"],
            message=ngettext_lazy(
                "%(rows)s row of %(table)s landed in its DEFAULT partition.",
                "%(rows)s rows of %(table)s landed in its DEFAULT partition.",
                "rows",
            ),
            params={"table": t["table"], "rows": t["default_rows"]},
        )
        for t in tables
        if t["default_rows"]
    ]


def register() -> None:
    for kind, title, evaluate in (
        ("sequence_near_max", _("Sequence near its maximum"), sequences_near_max),
        ("cache_hit_ratio_low", _("Cache hit ratio low"), cache_hit_ratio_low),
        ("long_query", _("Long-running query"), long_queries),
        ("idle_in_transaction", _("Idle in transaction"), idle_transactions),
        ("lock_wait", _("Long lock wait"), lock_waits),
        ("wraparound", _("Transaction id wraparound"), wraparound),
        ("multixact_wraparound", _("Multixact id wraparound"), multixact_wraparound),
        ("job_failing", _("Job failing"), jobs_failing),
        ("job_overdue", _("Job overdue"), jobs_overdue),
        ("queue_growing", _("Celery queue growing"), queue_growing),
        ("partition_missing", _("Partition missing"), partitions_missing),
        ("rows_in_default", _("Rows in a DEFAULT partition"), rows_in_default),
    ):
        register_condition(Condition(kind=kind, title=title, evaluate=evaluate))
