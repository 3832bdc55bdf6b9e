"""Reads behind the health screens, the alerts and /metrics: PostgreSQL's view of itself (pg.py)
joined with the snapshots, scheduled jobs, partitions and the Celery queue."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _

from okada.core.models import JobRun
from okada.partitions import ddl as partition_ddl
from okada.partitions import registry as partition_registry
from okada.partitions import services as partition_services

from . import pg, queue
from .models import QueryStat, QueryText, Snapshot, TableStat

log = logging.getLogger(__name__)


@dataclass
class Section:
    """One block of a screen: its data, or why it could not be read (timeout, lock, privilege)."""

    data: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def unavailable_reason(exc: DatabaseError) -> str:
    """Why a section could not be read: its timeouts in the reader's language (PostgreSQL's text
    is English), anything else as PostgreSQL says it."""
    ms = settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS
    code = pg.sqlstate(exc)
    if code == pg.QUERY_CANCELED:
        return _("a query took longer than %(ms)s ms") % {"ms": ms}
    if code == pg.LOCK_NOT_AVAILABLE:
        return _("a table it needs is locked by another session for more than %(ms)s ms") % {"ms": ms}
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def section(read: Any, *args: Any, **kwargs: Any) -> Section:
    """Run `read(cur, ...)` under `pg.reads()`; a database error becomes the section's error."""
    try:
        with pg.reads() as cur:
            return Section(read(cur, *args, **kwargs))
    except DatabaseError as exc:
        log.warning("health section %s unavailable: %s", getattr(read, "__name__", read), exc)
        return Section(error=unavailable_reason(exc))


# --- Queries -----------------------------------------------------------------------------------


def previous_snapshot(*, before: dt.datetime | None = None, hours: float | None = None) -> Snapshot | None:
    """The newest snapshot (`hours`: the newest at least that many hours old)."""
    snapshots = Snapshot.objects.order_by("-taken_at")
    if hours is not None:
        snapshots = snapshots.filter(taken_at__lte=(before or timezone.now()) - dt.timedelta(hours=hours))
    return snapshots.first()


def statement_deltas(
    cur: Any, *, order: str = "total", limit: int = 50, since: Snapshot | None = None
) -> dict:
    """The top statements now, each with its change since the snapshot `since`: calls and time in
    between, the mean time of those calls, and how that mean compares with the mean before it
    ("what got slower since yesterday"). No delta for a statement the snapshot did not hold
    (`new`: it was not among the snapshot's top statements) or whose counters restarted since
    (fewer calls now than then). When every counter was reset after the snapshot, nothing is
    compared (`since` None, `reset_since` the snapshot) and no statement is called new."""
    status = pg.statements_status(cur)
    result: dict[str, Any] = {"status": status, "rows": [], "since": since, "reset_since": None}
    if not status["available"]:
        return result
    found = pg.statements(cur, order=order, limit=limit)
    if since is not None and status["reset_at"] and since.taken_at < status["reset_at"]:
        result["reset_since"], result["since"] = since, None
        since = None
    before = {}
    if since is not None:
        before = {
            q.queryid: q
            for q in QueryStat.objects.filter(snapshot=since, queryid__in=[r["queryid"] for r in found])
        }
    for row in found:
        # pg_stat_statements leaves a utility statement's values in its text (ALTER ROLE ...
        # PASSWORD '...'): the screen never shows them, as the snapshots never keep them.
        row["query"] = pg.without_literals(row["query"])
        then = before.get(row["queryid"])
        row["delta"] = None
        row["new"] = since is not None and then is None
        if then is not None and row["calls"] >= then.calls:
            calls = row["calls"] - then.calls
            total = row["total_ms"] - then.total_ms
            mean_before = then.total_ms / then.calls if then.calls else None
            mean_since = total / calls if calls else None
            change = (mean_since / mean_before - 1) * 100 if mean_since is not None and mean_before else None
            row["delta"] = {
                "calls": calls,
                "total_ms": total,
                "mean_ms": mean_since,
                "mean_before_ms": mean_before,
                "mean_change_percent": change,
            }
    result["rows"] = found
    return result


# --- Storage -----------------------------------------------------------------------------------


def table_growth(*, days: int = 30, now: dt.datetime | None = None) -> dict[str, list[tuple[dt.date, int]]]:
    """Each table's total size at the last snapshot of each day over `days` (partitions are summed
    into their partitioned table's own row at snapshot time)."""
    since = (now or timezone.now()) - dt.timedelta(days=days)
    last_of_day = (
        Snapshot.objects.filter(taken_at__gte=since)
        .order_by("hour__date", "-taken_at")
        .distinct("hour__date")
        .values_list("id", "hour")
    )
    days_of = {sid: timezone.localtime(hour).date() for sid, hour in last_of_day}  # as hour__date
    series: dict[str, list[tuple[dt.date, int]]] = defaultdict(list)
    for name, sid, size in (
        TableStat.objects.filter(snapshot_id__in=list(days_of), parent="")
        .order_by("name", "snapshot__taken_at")
        .values_list("name", "snapshot_id", "total_bytes")
    ):
        series[name].append((days_of[sid], size))
    return dict(series)


def storage(cur: Any) -> dict[str, Any]:
    tables = pg.tables(cur)
    top = sorted((t for t in tables if not t["is_partition"]), key=lambda t: -t["total_bytes"])
    for t in top:
        if t.get("partitions"):
            t["partitions"].sort(key=lambda p: p["name"])
    return {"tables": top, "database": pg.database(cur), "xid_limit": pg.XID_LIMIT}


# --- Cache hits between snapshots -----------------------------------------------------------------


# A cache hit ratio means little over fewer block accesses than this (an idle hour): no judgement.
CACHE_HIT_MIN_BLOCKS = 10_000


def cache_reads_between_snapshots() -> dict[str, Any] | None:
    """Shared-buffer hits and reads of the tables and of their indexes between the two latest
    snapshots (an hour as a rule), summed over the tables both snapshots hold: what the cache did
    lately, not since the statistics' last reset months ago. None when there are not two snapshots
    with these figures, or the statistics were reset between them (the Queries screen compares
    nothing across a reset either). A table whose counters went down (its own statistics reset, a
    table made again under its name) is left out."""
    latest = list(Snapshot.objects.order_by("-taken_at")[:2])
    return _reads_between(*latest) if len(latest) == 2 else None


def _reads_between(until: Snapshot, since: Snapshot) -> dict[str, Any] | None:
    if until.stats_reset != since.stats_reset:
        return None
    columns = ("name", "heap_blks_hit", "heap_blks_read", "idx_blks_hit", "idx_blks_read")
    recorded = {"heap_blks_hit__isnull": False}
    before = {r[0]: r[1:] for r in TableStat.objects.filter(snapshot=since, **recorded).values_list(*columns)}
    totals = {"table_hit": 0, "table_read": 0, "index_hit": 0, "index_read": 0, "tables": 0}
    for name, *now in TableStat.objects.filter(snapshot=until, **recorded).values_list(*columns):
        then = before.get(name)
        if then is None:
            continue
        delta = [b - a for a, b in zip(then, now, strict=True)]
        if min(delta) < 0:
            continue
        for key, value in zip(("table_hit", "table_read", "index_hit", "index_read"), delta, strict=True):
            totals[key] += value
        totals["tables"] += 1
    if not totals["tables"]:
        return None
    return {"since": since, "until": until, **totals}


def cache_hit_interval() -> dict[str, Any]:
    """The cache hit ratios between the two latest snapshots, as the cache-hit alert judges them
    and the Overview and Indexes screens show them, or why there are none.
    `table_ratio`/`index_ratio` are None under CACHE_HIT_MIN_BLOCKS (no judgement); `reset` is
    when the statistics were reset between the two snapshots, if that is why nothing is given."""
    latest = list(Snapshot.objects.order_by("-taken_at")[:2])
    reads = _reads_between(*latest) if len(latest) == 2 else None
    if reads is None:
        reset = None
        if len(latest) == 2 and latest[0].stats_reset != latest[1].stats_reset:
            reset = latest[0].stats_reset
        return {"reads": None, "reset": reset, "min_blocks": CACHE_HIT_MIN_BLOCKS}
    for what in ("table", "index"):
        hit, blocks = reads[f"{what}_hit"], reads[f"{what}_hit"] + reads[f"{what}_read"]
        reads[f"{what}_blocks"] = blocks
        reads[f"{what}_ratio"] = hit / blocks if blocks >= CACHE_HIT_MIN_BLOCKS else None
    return {"reads": reads, "reset": None, "min_blocks": CACHE_HIT_MIN_BLOCKS}


# --- Indexes -----------------------------------------------------------------------------------


def index_report(cur: Any) -> dict[str, Any]:
    found = pg.indexes(cur)
    return {
        "unused": pg.unused_indexes(found),
        "duplicates": pg.duplicate_indexes(cur),
        "missing": pg.missing_index_hints(cur),
        "hit_ratios": pg.cache_hit_ratios(cur),
        "stats_reset": pg.database(cur).get("stats_reset"),
        "all": found,
    }


# --- Sessions ----------------------------------------------------------------------------------


@dataclass
class BlockingNode:
    session: dict[str, Any]
    waiting: list[BlockingNode] = field(default_factory=list)


def blocking_tree(sessions: list[dict[str, Any]]) -> list[BlockingNode]:
    """Lock waits as trees: each root blocks others and waits for nobody; under it, the sessions
    waiting for it (a session waiting for several is shown under each)."""
    by_pid = {s["pid"]: s for s in sessions}
    waiters: dict[int, list[int]] = defaultdict(list)
    for s in sessions:
        for blocker in s["blocked_by"] or []:
            waiters[blocker].append(s["pid"])

    def node(pid: int, seen: frozenset[int]) -> BlockingNode:
        session = by_pid.get(pid) or {"pid": pid, "state": "?", "query": "", "blocked_by": []}
        children = [node(w, seen | {pid}) for w in sorted(waiters.get(pid, [])) if w not in seen]
        return BlockingNode(session, children)

    roots = [pid for pid in waiters if not (by_pid.get(pid, {}).get("blocked_by") or [])]
    if not roots and waiters:  # a cycle (a deadlock PostgreSQL has not broken yet): start anywhere
        roots = [min(waiters)]
    return [node(pid, frozenset()) for pid in sorted(roots)]


# --- Scheduled jobs ----------------------------------------------------------------------------

_JOBS_SQL = f"""
WITH RECURSIVE names AS (  -- the distinct job names, one index probe each
    (SELECT name FROM {JobRun._meta.db_table} ORDER BY name LIMIT 1)
    UNION ALL
    SELECT (SELECT r.name FROM {JobRun._meta.db_table} r WHERE r.name > n.name ORDER BY r.name LIMIT 1)
      FROM names n WHERE n.name IS NOT NULL
)
SELECT n.name, last.outcomes, last.started, last.seconds, ok.finished_at AS last_success,
       (SELECT count(*) FROM {JobRun._meta.db_table} f
         WHERE f.name = n.name AND f.started_at >= %(day)s AND f.outcome IN ('failed', 'abandoned'))
       AS failures_24h
  FROM names n
  CROSS JOIN LATERAL (
      SELECT array_agg(outcome ORDER BY started_at DESC) AS outcomes, max(started_at) AS started,
             array_agg(extract(epoch FROM finished_at - started_at)::float ORDER BY started_at DESC)
             AS seconds
        FROM (SELECT outcome, started_at, finished_at FROM {JobRun._meta.db_table}
               WHERE name = n.name AND outcome NOT IN ('skipped', 'running')
               ORDER BY started_at DESC LIMIT 20) recent
  ) last
  LEFT JOIN LATERAL (
      SELECT finished_at FROM {JobRun._meta.db_table}
       WHERE name = n.name AND outcome = 'success' ORDER BY started_at DESC LIMIT 1
  ) ok ON true
 WHERE n.name IS NOT NULL
 ORDER BY n.name
"""


def job_summary(cur: Any, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per job: its last 20 finished runs (outcomes, durations), last success and failures in the
    last 24 hours. Reads the JobRun index (name, started_at) only."""
    now = now or timezone.now()
    found = pg.rows(cur, _JOBS_SQL, {"day": now - dt.timedelta(days=1)})
    for job in found:
        outcomes = job["outcomes"] or []
        durations = [s for s in (job["seconds"] or []) if s is not None]
        job["last_outcome"] = outcomes[0] if outcomes else None
        job["last_seconds"] = durations[0] if durations else None
        job["mean_seconds"] = sum(durations) / len(durations) if durations else None
        job["failing_twice"] = len(outcomes) >= 2 and all(o in ("failed", "abandoned") for o in outcomes[:2])
    return found


def overdue_jobs(jobs: list[dict[str, Any]], *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Enabled beat entries whose job has not succeeded since a run was due (plus the grace
    OKADA_HEALTH_JOB_GRACE_MINUTES): due = the schedule's next time after the last success (or
    after the entry was last changed, for a job that never succeeded)."""
    from django_celery_beat.models import PeriodicTask

    now = now or timezone.now()
    grace = dt.timedelta(minutes=settings.OKADA_HEALTH_JOB_GRACE_MINUTES)
    last_success = {j["name"]: j["last_success"] for j in jobs}
    found = []
    for task in PeriodicTask.objects.filter(enabled=True, one_off=False).select_related(
        "crontab", "interval", "solar", "clocked"
    ):
        since = last_success.get(task.task) or task.date_changed
        try:
            schedule = task.schedule
            due = now + schedule.remaining_estimate(since)
        except Exception:  # a schedule kind without an estimate (clocked, solar): not judged
            log.debug("no due time for %s", task.name, exc_info=True)
            continue
        if due + grace < now:
            found.append(
                {
                    "job": task.task,
                    "entry": task.name,
                    "due": due,
                    "last_success": last_success.get(task.task),
                }
            )
    return found


# --- Partitions --------------------------------------------------------------------------------


def partition_status(cur: Any, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per partitioned table with a policy: months made ahead of the current one, missing months
    within the premake horizon, and rows that landed in DEFAULT (okada.partitions' plan)."""
    plan = partition_services.maintenance_plan(now=now)
    this_month = partition_ddl.utc_month_of(plan.now)
    found = []
    for policy in partition_registry.policies():
        parts = (
            partition_ddl.partitions(cur, policy.table)
            if partition_ddl.table_exists(cur, policy.table)
            else []
        )
        ahead = sorted(p.month for p in parts if p.month is not None and p.month > this_month)
        steps = [s for s in plan.steps if s.table == policy.table]
        found.append(
            {
                "table": policy.table,
                "premake_months": policy.premake_months,
                "made_ahead": len(ahead),
                "furthest": ahead[-1] if ahead else None,
                "horizon_edge": partition_ddl.add_months(this_month, int(policy.premake_months or 0)),
                "missing": [
                    s.starts_at.date() for s in steps if s.action == s.CREATE and s.starts_at is not None
                ],
                "default_rows": sum(s.rows or 0 for s in steps if s.action == s.RESCUE),
                "warnings": [str(w) for w in plan.warnings if policy.table in str(w)],
            }
        )
    return found


# --- Snapshots ---------------------------------------------------------------------------------


def query_texts(queryids: list[int]) -> dict[int, str]:
    return dict(QueryText.objects.filter(queryid__in=queryids).values_list("queryid", "text"))


def queue_status() -> dict[str, Any]:
    try:
        return {"length": queue.queue_length(), "name": queue.queue_names()[0], "error": ""}
    except Exception as exc:  # the broker is down: say so on the page
        return {"length": None, "name": queue.queue_names()[0], "error": str(exc)}
