"""Partition maintenance: plan what each registered table needs, then do it one step at a time.

`maintenance_plan()` reads the catalog and returns the steps (the dry run prints them);
`maintenance_run()` carries them out and logs every action as a `PartitionAction`. Per table:

1. finalise a DETACH ... CONCURRENTLY left pending by an interrupted run;
2. finish retirements an interrupted run left half done (a detached table marked as retiring),
   or, when the retention (lengthened since) now keeps that month, attach the table back: detached,
   its rows were out of every read of the parent;
3. rescue rows the DEFAULT partition caught: the partition of each month they belong to is
   created and they move into it (whatever the month: past, or beyond the premake horizon);
4. premake: create every missing month from the current one to `premake_months` ahead;
5. retention: retire every partition that ends before the oldest month kept: detach it (marked
   as retiring), archive it with pg_dump into OKADA_BACKUP_DIR/partitions/<table>/, read the
   archive back and compare its rows with the table's, then drop it. Detaching first means no
   row can arrive between the archive and the drop; if the archive fails, the detached table
   stays and the next run tries again. Nothing is dropped without a verified archive (unless the
   policy says archive=False). A verified archive of the same table that an earlier run wrote
   (its drop failed) is reused, not dumped again; `.partial` files of the month that a killed
   run left are deleted (never one a live run is writing: it holds a lock on it).

Each step commits on its own, under `lock_timeout` (OKADA_PARTITION_LOCK_TIMEOUT_MS) with a few
retries: a step that cannot get its lock is logged as deferred and the next run tries again, so
writers never queue behind maintenance for longer than the timeout. Our tables keep a DEFAULT
partition (inserts never fail), and PostgreSQL refuses DETACH ... CONCURRENTLY on such tables: the
detach is the plain one, an ACCESS EXCLUSIVE lock on the parent for a catalog change only, once
granted. A table without DEFAULT is detached CONCURRENTLY (outside any transaction).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext, ngettext_lazy

from okada.core.actors import Actor
from okada.core.db import LOCK_NOT_AVAILABLE, session_lock_timeout
from okada.core.jobs import JobFailed
from okada.core.texts import Text, joined, text_of

from . import archive, ddl
from .models import PartitionAction
from .registry import PartitionPolicy, policies, policy_for

log = logging.getLogger(__name__)

Kind = PartitionAction.Kind
Outcome = PartitionAction.Outcome

# The instant a plan is made for when none is given: its UTC month is "the current month" (a
# name of its own so that tests can keep the month the test database's partitions were made in).
clock = timezone.now

# How far this process's clock may be ahead of the database server's before retention stops.
CLOCK_SKEW = dt.timedelta(hours=1)

LOCK_TIMEOUT = LOCK_NOT_AVAILABLE  # lock_timeout expired
DEADLOCK = "40P01"


class MaintenanceFailed(JobFailed):
    """Raised by the task after a run in which some step failed (each failure is in the log)."""


class LockBusy(Exception):
    """The step cannot be done now (its lock was not granted within lock_timeout on every try,
    or the table is busy with another detach): the next run tries again."""

    def __init__(self, attempts: int, reason: Text | None = None) -> None:
        super().__init__(
            reason or Text(gettext_noop("lock not granted within lock_timeout after %(n)s tries"), n=attempts)
        )
        self.attempts = attempts


@dataclass(frozen=True)
class Step:
    """One thing a run will do to one partition."""

    FINALIZE = "finalize"
    RESCUE = "rescue"
    CREATE = "create"
    RETIRE = "retire"
    REATTACH = "reattach"

    table: str
    action: str
    partition: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    rows: int | None = None  # rows to move out of DEFAULT; estimated rows of a partition to retire
    detached: bool = False  # retire: already detached (an interrupted retirement)

    def describe(self) -> str:  # read at once (admin, command), never stored
        if self.action == self.FINALIZE:
            return _("finalise the interrupted detach of %(p)s") % {"p": self.partition}
        if self.action == self.RESCUE:
            rows = self.rows or 0
            return ngettext(
                "create %(p)s and move %(n)d row out of DEFAULT into it",
                "create %(p)s and move %(n)d rows out of DEFAULT into it",
                rows,
            ) % {"p": self.partition, "n": rows}
        if self.action == self.CREATE:
            return _("create %(p)s ahead") % {"p": self.partition}
        if self.action == self.REATTACH:
            return _("attach %(p)s back (detached to be retired, but the retention now keeps its month)") % {
                "p": self.partition
            }
        if self.detached:
            return _("finish retiring %(p)s (already detached): archive, verify, drop") % {
                "p": self.partition
            }
        return _("retire %(p)s (past retention): detach, archive, verify, drop") % {"p": self.partition}


@dataclass
class Plan:
    now: dt.datetime
    steps: list[Step] = field(default_factory=list)
    warnings: list[Text] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.steps


# --- Planning ----------------------------------------------------------------------------------


def maintenance_plan(*, now: dt.datetime | None = None) -> Plan:
    """What a run would do now, table by table (reads the catalog and the DEFAULT partitions only).

    Without `now`, the time is this process's clock; if that is ahead of the database server's by
    more than CLOCK_SKEW (a worker whose clock jumped), nothing is retired, with a warning: months
    still in use would otherwise look past retention and be detached, archived and dropped."""
    plan = Plan(now=now or clock())
    with connection.cursor() as cursor:
        retire = True
        if now is None:
            cursor.execute("SELECT now()")
            database_now = cursor.fetchone()[0]
            if plan.now - database_now > CLOCK_SKEW:
                retire = False
                plan.warnings.append(
                    Text(
                        gettext_noop(
                            "This process's clock (%(ours)s UTC) is ahead of the database server's "
                            "(%(theirs)s UTC) by more than an hour: no partition is retired until they agree."
                        ),
                        ours=f"{plan.now.astimezone(dt.UTC):%Y-%m-%d %H:%M}",
                        theirs=f"{database_now.astimezone(dt.UTC):%Y-%m-%d %H:%M}",
                    )
                )
        for policy in policies():
            _plan_table(cursor, policy, plan, retire=retire)
    return plan


def _plan_table(cursor: Any, policy: PartitionPolicy, plan: Plan, *, retire: bool = True) -> None:
    table = policy.table
    if not ddl.table_exists(cursor, table) or not ddl.is_partitioned(cursor, table):
        plan.warnings.append(
            Text(gettext_noop("%(t)s: the table does not exist or is not partitioned."), t=table)
        )
        return
    parts = ddl.partitions(cursor, table)
    if not any(p.is_default for p in parts):
        plan.warnings.append(
            Text(
                gettext_noop(
                    "%(t)s has no DEFAULT partition: an insert for a month without partition would fail."
                ),
                t=table,
            )
        )
    steps = plan.steps
    this_month = ddl.utc_month_of(plan.now)
    cutoff = None
    if policy.retention_months is not None:
        cutoff = ddl.month_bounds(ddl.add_months(this_month, -policy.retention_months))[0]

    reattaching: set[dt.date] = set()  # months whose name a detached table holds: no create

    def finish_retiring(name: str, starts_at: dt.datetime, ends_at: dt.datetime) -> None:
        # Detached to be retired by an earlier run; the retention may have been lengthened since.
        if not retire:  # the clock is not to be trusted: neither retired nor attached back now
            reattaching.add(ddl.utc_month_of(starts_at))
            return
        if cutoff is not None and ends_at <= cutoff:
            steps.append(Step(table, Step.RETIRE, name, starts_at, ends_at, detached=True))
            return
        reattaching.add(ddl.utc_month_of(starts_at))
        if ddl.fits_parent(cursor, table, name):
            # Kept after all: attach it back. Detached, its rows are in no read of the parent (an
            # order's timeline would miss that month's events), and a row of that month landing
            # in DEFAULT could not be rescued (the month's name is taken).
            steps.append(Step(table, Step.REATTACH, name, starts_at, ends_at, detached=True))
            return
        # The parent's schema changed while it was detached (a column, a CHECK added): ATTACH
        # would refuse it on every run. Left as it is, never dropped, for a person to bring up to
        # date and attach; creating its month is no use either (the name is taken).
        plan.warnings.append(
            Text(
                gettext_noop(
                    "%(p)s was detached to be retired, but the retention now keeps its month: it is left "
                    "as it is, not dropped. To put it back: ALTER TABLE %(t)s ATTACH PARTITION %(p)s "
                    "FOR VALUES FROM ('%(a)s') TO ('%(b)s'); COMMENT ON TABLE %(p)s IS NULL;"
                ),
                p=name,
                t=table,
                a=starts_at.isoformat(),
                b=ends_at.isoformat(),
            )
        )

    for p in parts:
        if p.detach_pending:
            steps.append(Step(table, Step.FINALIZE, p.name, p.starts_at, p.ends_at))
            if ddl.is_marked_retiring(cursor, p.name) and p.starts_at and p.ends_at:
                finish_retiring(p.name, p.starts_at, p.ends_at)
            else:
                plan.warnings.append(
                    Text(
                        gettext_noop(
                            "%(p)s was being detached by someone else: it will be finalised and left "
                            "in place."
                        ),
                        p=p.name,
                    )
                )
    for name in ddl.retiring_tables(cursor, table):
        finish_retiring(name, *ddl.month_bounds(_month_of_name(name)))

    attached = [p for p in parts if not p.detach_pending]
    months = {p.month for p in attached if p.month is not None}
    for p in attached:
        if not p.is_default and p.month is None:
            plan.warnings.append(
                Text(
                    gettext_noop("%(p)s has bounds that are not one UTC month (%(a)s to %(b)s): left alone."),
                    p=p.name,
                    a=str(p.starts_at),
                    b=str(p.ends_at),
                )
            )
    in_default, unplaceable = ddl.default_rows_by_month(cursor, table, key=policy.key)
    if unplaceable:
        plan.warnings.append(
            Text.of(
                ngettext_lazy(
                    "%(t)s: %(n)d row in DEFAULT has an infinite or out-of-range date and stays there.",
                    "%(t)s: %(n)d rows in DEFAULT have an infinite or out-of-range date and stay there.",
                    "n",
                )
            ).with_params(t=table, n=unplaceable)
        )
    ahead = {ddl.add_months(this_month, i) for i in range(int(policy.premake_months or 0) + 1)}
    # A month being attached back takes its DEFAULT rows with it (REATTACH moves them); one left
    # detached keeps them in DEFAULT, where they are still read.
    new_months = sorted(((ahead - months) | set(in_default)) - reattaching)
    for month in new_months:
        starts_at, ends_at = ddl.month_bounds(month)
        name = ddl.partition_name(table, month)
        if month in in_default:
            steps.append(Step(table, Step.RESCUE, name, starts_at, ends_at, rows=in_default[month]))
        else:
            steps.append(Step(table, Step.CREATE, name, starts_at, ends_at))

    if cutoff is None or not retire:
        return
    expired = [
        Step(table, Step.RETIRE, p.name, p.starts_at, p.ends_at, rows=p.estimated_rows)
        for p in attached
        if not p.is_default and p.ends_at is not None and p.ends_at <= cutoff
    ]
    # A month rescued now but already past retention is created, then retired like the others.
    for month in new_months:
        starts_at, ends_at = ddl.month_bounds(month)
        if ends_at <= cutoff:
            name = ddl.partition_name(table, month)
            expired.append(Step(table, Step.RETIRE, name, starts_at, ends_at, rows=in_default.get(month)))
    steps.extend(sorted(expired, key=lambda step: step.starts_at or cutoff))


def _month_of_name(name: str) -> dt.date:
    suffix = name.rsplit("_p", 1)[1]
    return dt.date(int(suffix[:4]), int(suffix[4:]), 1)


# --- Running -----------------------------------------------------------------------------------


def maintenance_run(
    *, now: dt.datetime | None = None, between_steps: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Carry out the plan, logging every action; return a summary for the JobRun.

    Must run outside any transaction (each step commits on its own, so locks are held for one
    step only, and DETACH ... CONCURRENTLY cannot run in one). `between_steps` is called before
    each step (a long job checks there that it still holds its lock). A step that fails is
    logged and the run goes on with the next one; `summary["failed"]` lists them.
    """
    if connection.in_atomic_block:
        raise RuntimeError("maintenance_run() must run outside a transaction (each step commits)")
    plan = maintenance_plan(now=now)
    summary: dict[str, Any] = {
        "steps": len(plan.steps),
        "done": [],
        "deferred": [],
        "failed": [],
        "warnings": [w.stored for w in plan.warnings],  # shown translated (okada.core.texts)
    }
    run_at = plan.now
    for step in plan.steps:
        if between_steps is not None:
            between_steps()
        policy = policy_for(step.table)
        if policy is None:  # unregistered since the plan was made (tests do that)
            continue
        handler = {
            Step.FINALIZE: _finalize,
            Step.RESCUE: _create,
            Step.CREATE: _create,
            Step.RETIRE: _retire,
            Step.REATTACH: _create,
        }[step.action]
        handler(step, policy, run_at, summary)
    for warning in plan.warnings:
        log.warning("partition maintenance: %s", warning.english())
    return summary


def _lock_timeout_ms() -> int:
    return int(settings.OKADA_PARTITION_LOCK_TIMEOUT_MS)


def _is_lock_conflict(exc: BaseException) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in (LOCK_TIMEOUT, DEADLOCK)


def _with_lock_retries(work: Callable[[], Any]) -> tuple[Any, int]:
    """Run `work` in a transaction of its own; when its lock is not granted in time, wait a
    little and try again, up to OKADA_PARTITION_LOCK_RETRIES tries. Returns (result, tries)."""
    tries = max(1, int(settings.OKADA_PARTITION_LOCK_RETRIES))
    for attempt in range(1, tries + 1):
        try:
            with transaction.atomic():
                return work(), attempt
        except OperationalError as exc:
            if not _is_lock_conflict(exc):
                raise
            if attempt == tries:
                raise LockBusy(attempt) from exc
            time.sleep(min(0.25 * 2**attempt, 5.0))  # back off: let the lock holder finish
    raise AssertionError("unreachable")


@contextmanager
def _action(step: Step, kind: str, summary: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Time one action and log it as a PartitionAction, whatever its outcome.

    The block fills the dict it is given (rows, archive_*, attempts, detail); `logged=True`
    means the block already wrote the success row itself (in the same transaction as its DDL),
    `nothing_done=True` that it found nothing to do after all.
    LockBusy becomes a deferred action, a database or archive error a failed one; both are
    swallowed so the run goes on with the next step. `ok` says whether the action succeeded.
    """
    started = timezone.now()
    fields: dict[str, Any] = {"ok": False}
    outcome, detail = Outcome.SUCCESS, None
    try:
        yield fields
        fields["ok"] = True
    except LockBusy as exc:
        outcome, detail, fields["attempts"] = Outcome.DEFERRED, text_of(exc), exc.attempts
    except (ddl.PartitionError, archive.ArchiveError) as exc:
        outcome, detail = (
            Outcome.FAILED,
            Text("%(kind)s: %(error)s", kind=type(exc).__name__, error=text_of(exc)),
        )
    except (DatabaseError, OSError) as exc:  # PostgreSQL's or the system's words: verbatim
        outcome, detail = Outcome.FAILED, Text(f"{type(exc).__name__}: {exc}")
    if outcome == Outcome.FAILED and detail is not None:
        log.error("partition maintenance: %s %s failed: %s", kind, step.partition, detail.english())
    label = f"{kind} {step.partition}"
    if outcome == Outcome.SUCCESS and fields.get("nothing_done"):
        return
    if outcome == Outcome.SUCCESS:
        summary["done"].append(label)
    else:
        entry = Text("%(action)s: %(detail)s", action=label, detail=detail)  # a layout: no words
        summary["deferred" if outcome == Outcome.DEFERRED else "failed"].append(entry.stored)
    if fields.get("logged") and outcome == Outcome.SUCCESS:
        return
    note = detail or fields.get("detail")
    _record(step, kind, outcome, started, detail=note.stored if note else "", **_action_fields(fields))


def _action_fields(fields: dict[str, Any]) -> dict[str, Any]:
    names = ("rows", "archive_path", "archive_sha256", "archive_bytes", "attempts")
    return {k: v for k, v in fields.items() if k in names}


def _record(step: Step, kind: str, outcome: str, started: dt.datetime, **fields: Any) -> PartitionAction:
    return PartitionAction.objects.create(
        table=step.table,
        partition=step.partition,
        kind=kind,
        outcome=outcome,
        starts_at=step.starts_at,
        ends_at=step.ends_at,
        started_at=started,
        finished_at=max(timezone.now(), started),
        **fields,
    )


def _create(step: Step, policy: PartitionPolicy, run_at: dt.datetime, summary: dict[str, Any]) -> None:
    reattach = step.action == Step.REATTACH
    kind = Kind.REATTACHED if reattach else Kind.RESCUED if step.action == Step.RESCUE else Kind.CREATED
    started = timezone.now()
    month = ddl.utc_month_of(step.starts_at or run_at)  # a create step always has its bounds

    def work() -> int | None:
        with connection.cursor() as cursor:
            moved = ddl.create_month_partition(
                cursor,
                step.table,
                month,
                key=policy.key,
                lock_timeout_ms=_lock_timeout_ms(),
                reattach=reattach,
            )
        if moved is not None:  # logged in the partition's own transaction
            done = kind if reattach else Kind.RESCUED if moved else Kind.CREATED
            _record(step, done, Outcome.SUCCESS, started, rows=moved)
        return moved

    with _action(step, kind, summary) as fields:
        moved, fields["attempts"] = _with_lock_retries(work)
        fields["logged"] = True
        fields["nothing_done"] = moved is None  # made since the plan was read


def _finalize(step: Step, policy: PartitionPolicy, run_at: dt.datetime, summary: dict[str, Any]) -> None:
    def work() -> None:
        with connection.cursor() as cursor:
            ddl.set_local_lock_timeout(cursor, _lock_timeout_ms())
            ddl.finalize_detach(cursor, step.table, step.partition)

    with _action(step, Kind.FINALIZED, summary) as fields:
        _, fields["attempts"] = _with_lock_retries(work)


def _retire(step: Step, policy: PartitionPolicy, run_at: dt.datetime, summary: dict[str, Any]) -> None:
    """Detach (unless already detached), archive and verify (if the policy archives), drop.
    Each stage is its own logged action; a stage that does not succeed stops the retirement
    here, and the next run takes it up again from the detached, marked table."""
    with connection.cursor() as cursor:
        parts = ddl.partitions(cursor, step.table)
        if step.detached and not ddl.table_exists(cursor, step.partition):
            return  # dropped since the plan was made
    if not step.detached and step.partition not in {p.name for p in parts if not p.detach_pending}:
        return  # not (or no longer) an attached partition, e.g. its rescue failed just before
    has_default = any(p.is_default for p in parts)
    if not step.detached:
        with _action(step, Kind.DETACHED, summary) as fields:
            if has_default:
                fields["attempts"] = _detach(step, policy)
                fields["logged"] = True
            else:
                _detach_concurrently(step, policy)
        if not fields["ok"]:
            return
    if policy.archive:
        with _action(step, Kind.ARCHIVED, summary) as fields:
            fields.update(_archive(step, run_at))
        if not fields["ok"]:
            return

    def drop() -> None:
        with connection.cursor() as cursor:
            ddl.set_local_lock_timeout(cursor, _lock_timeout_ms())
            ddl.drop_table(cursor, step.partition)

    with _action(step, Kind.DROPPED, summary) as fields:
        _, fields["attempts"] = _with_lock_retries(drop)


def _on_detach(cursor: Any, step: Step, policy: PartitionPolicy) -> None:
    if policy.on_detach:
        import_string(policy.on_detach)(cursor, step.table, step.partition)


def _detach(step: Step, policy: PartitionPolicy) -> int:
    """Plain DETACH (the table has a DEFAULT partition), marked and logged in one transaction."""
    started = timezone.now()

    def work() -> None:
        with connection.cursor() as cursor:
            ddl.set_local_lock_timeout(cursor, _lock_timeout_ms())
            ddl.detach_partition(cursor, step.table, step.partition, concurrently=False)
            ddl.mark_retiring(cursor, step.partition)
            _on_detach(cursor, step, policy)
        _record(step, Kind.DETACHED, Outcome.SUCCESS, started)

    _, attempts = _with_lock_retries(work)
    return int(attempts)


def _detach_concurrently(step: Step, policy: PartitionPolicy) -> None:
    """DETACH ... CONCURRENTLY (no DEFAULT partition): outside any transaction. If it is
    interrupted (lock_timeout while it waits for older snapshots, a cancel, a killed worker) the
    partition stays pending detach, marked as retiring: the next run finalises and retires it."""
    with connection.cursor() as cursor:
        pending = [p.name for p in ddl.partitions(cursor, step.table) if p.detach_pending]
        if pending:  # PostgreSQL allows one pending detach per table
            raise LockBusy(
                0,
                Text(
                    gettext_noop("%(p)s is still pending detach: the next run finalises it first"),
                    p=pending[0],
                ),
            )
        ddl.mark_retiring(cursor, step.partition)
        try:
            with session_lock_timeout(connection, _lock_timeout_ms()):
                ddl.detach_partition(cursor, step.table, step.partition, concurrently=True)
        except OperationalError as exc:
            if _is_lock_conflict(exc):
                raise LockBusy(1) from exc
            raise
    if policy.on_detach:
        with transaction.atomic(), connection.cursor() as cursor:
            _on_detach(cursor, step, policy)


def _archive(step: Step, run_at: dt.datetime) -> dict[str, Any]:
    """Archive and verify the detached table. Stale `.partial` files of its month (a killed
    run's) are deleted first; a verified archive an earlier run wrote of this same table (its drop
    failed after it) is reused, not dumped again (`nothing_done` when the log already has it)."""
    with connection.cursor() as cursor:
        rows = ddl.count_rows(cursor, step.partition)  # a detached table: nothing writes to it now
        cursor.execute("SELECT current_schema(), to_regclass(%s)::oid", [f'"{step.partition}"'])
        schema, table_oid = cursor.fetchone()
    directory = archive_directory(step.table)
    removed = archive.remove_stale_partials(directory, step.partition)
    notes = [
        Text(gettext_noop("removed a partial archive a stopped run left: %(file)s"), file=path.name)
        for path in removed
    ]
    made = archive.written_archive(
        step.partition, schema=schema, directory=directory, table_oid=table_oid, expected_rows=rows
    )
    logged = False
    if made is None:
        made = archive.dump_table(
            step.partition,
            schema=schema,
            directory=directory,
            stamp=run_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
            lock_wait_ms=_lock_timeout_ms(),
        )
    else:
        notes.append(
            Text(
                gettext_noop("reused the verified archive an earlier run wrote (its drop had not succeeded)")
            )
        )
        logged = PartitionAction.objects.filter(
            partition=step.partition,
            kind=Kind.ARCHIVED,
            outcome=Outcome.SUCCESS,
            archive_path=str(made.path),
        ).exists()
    archive.verify_archive(made, name=step.partition, schema=schema, expected_rows=rows)
    for note in notes:
        log.info("partition maintenance: %s: %s", step.partition, note.english())
    return {
        "rows": rows,
        "archive_path": str(made.path),
        "archive_sha256": made.sha256,
        "archive_bytes": made.bytes,
        "detail": joined(notes) if notes else None,
        "nothing_done": logged,  # the log holds it already (the archives listed once)
    }


def archive_directory(table: str) -> Path:
    """Where retired partitions of `table` are archived: beside the backups."""
    return Path(settings.OKADA_BACKUP_DIR) / "partitions" / table


# --- Asking for a run --------------------------------------------------------------------------


def maintenance_request(*, actor: Actor) -> None:
    """Queue a maintenance run now (the admin's "run maintenance now"), for an actor who holds
    `partitions.run_partition_maintenance` (superusers do). Queued once the transaction commits;
    the run itself is single-flight, like the hourly one."""
    actor.require("partitions.run_partition_maintenance")
    from .tasks import maintain_partitions  # lazy: tasks import services

    transaction.on_commit(lambda: maintain_partitions.delay())
