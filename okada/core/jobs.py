"""`job(name)`: single-flight lock + JobRun row around every scheduled job.

Usage (tasks follow STYLE.md)::

    with job("backups.run_backup") as run:
        for step in steps:
            run.check()          # a safe point: stop if the lock was lost
            step()
        run.summary = {...}

The lock
--------
A PostgreSQL session advisory lock held on a connection of its own. It needs no Redis (jobs keep
their guarantee when Redis is down) and it does not outlive its holder for long:

- a killed worker process: its socket closes, PostgreSQL ends the backend and the lock is free at
  once, so the task delivered again (acks_late, reject_on_worker_lost) can run;
- a worker host that vanishes (power cut, network gone) sends nothing, and by default PostgreSQL
  would wait for the kernel's TCP keepalive: 2 hours + 9 probes. The lock's connection has TCP
  keepalives on both ends (`KEEPALIVE` here; PostgreSQL's side is set on every Django
  connection, `okada.core.db.SERVER_KEEPALIVE`): PostgreSQL probes the idle connection after 30 s, then
  every 10 s, and drops it after 3 unanswered probes, and data left unacknowledged for 60 s
  (`tcp_user_timeout`) drops it too: the lock is free about a minute after the host vanished. On
  the worker's side the same numbers make `run.check()` fail within a minute when the server is
  the one that vanished.

Checking the lock at safe points
--------------------------------
The lock can be lost while the body runs (an operator's `pg_terminate_backend`, a server restart,
a network cut long enough for the keepalives): from then on another run may start. A job that
runs for long calls `run.check()` at its safe points (between tables, files, partitions): it
raises `LockLost`, and the run is recorded as failed with that message. `run.still_holds_lock()`
asks without raising. `job()` itself checks once more when the body ends: a run that lost its
lock at any point is never recorded as a success.

A run that finds the lock taken
-------------------------------
Usually another run is alive and holds it: this run is recorded as `skipped` and its body does
not run (`JobSkipped`, which is Celery's `Ignore`). But the holder may be a dead run whose backend
PostgreSQL has not ended yet (its process was killed a moment ago, or its host vanished less than
a minute ago); skipping would then acknowledge the redelivered task and lose the rerun that
`acks_late` promises. So the lock's connection names its holder (`application_name` =
`okada job <pid>@<host>`), and a run that finds the lock taken reads who holds it. It waits for
the lock (at most `RERUN_WAIT_SECONDS`, longer than the keepalives take; PostgreSQL hands the lock
over the moment the backend ends) instead of skipping when:

- the holder is a process of this host that no longer lives (dead or a zombie), or
- this run is a Celery task delivered again (`delivery_info["redelivered"]`: its first delivery
  died without acknowledging it) and the holder is not a live process of this host: it may be
  that first delivery's backend on a host that vanished.

A live holder on this host, or any holder when this is a first delivery, means another run is
going on: skipped at once, as before. A wait that runs out is recorded as skipped too (the holder
was alive after all, e.g. a run longer than Redis's visibility timeout).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from celery.exceptions import Ignore
from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from . import actors, logs
from .db import reconnect_if_broken
from .errors import DomainError
from .models import JobRun
from .texts import text_of

log = logging.getLogger(__name__)

# libpq settings of the lock's connection: the worker's side of the TCP connection.
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds idle before the first probe
    "keepalives_interval": 10,  # seconds between probes
    "keepalives_count": 3,  # unanswered probes before the connection is dropped
    "tcp_user_timeout": 60_000,  # ms that sent data may stay unacknowledged
}
# How long a run waits for a lock held by a dead run: more than the keepalives take (~60 s).
RERUN_WAIT_SECONDS = 90.0

_HOLDER = re.compile(r"okada job (\d+)@(.*)")
_APPLICATION_NAME_MAX = 63  # PostgreSQL cuts application_name to NAMEDATALEN - 1 bytes


class LockLost(Exception):
    """The run's lock connection ended: another run of the job may have started."""


class JobSkipped(Ignore):
    """Raised on entering `job()` when another run holds the lock: the body does not run.

    It is Celery's `Ignore`, so a skipped task ends quietly (state IGNORED, no retry, no error
    log); callers outside Celery catch it.
    """


class JobFailed(Exception):
    """Raise from a job body that ran to its end but found problems (e.g. an audit's findings),
    after setting `run.summary`: the run is recorded `failed` with that summary and this message
    as its error, without a traceback (nothing crashed). Raise it with an okada.core.texts.Text:
    the error is then shown in each reader's language."""


def _host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_name() -> str:
    return f"okada job {os.getpid()}@{socket.gethostname()}"[:_APPLICATION_NAME_MAX]


class JobLock:
    """The advisory lock of one job name, on a dedicated connection with TCP keepalives (the
    worker's side here; PostgreSQL's side is set on every new connection, okada.core.db)."""

    def __init__(self, name: str) -> None:
        self.key = f"okada.job:{name}"
        default = connections[DEFAULT_DB_ALIAS].settings_dict
        options = {**default.get("OPTIONS", {}), **KEEPALIVE, "application_name": _holder_name()}
        options.pop("pool", None)  # a pooled session would outlive close(), and the lock with it
        settings = {**default, "OPTIONS": options}
        self.connection: BaseDatabaseWrapper = load_backend(settings["ENGINE"]).DatabaseWrapper(
            settings, DEFAULT_DB_ALIAS
        )
        self.backend_pid: int | None = None

    def _one(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.connection.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return row[0] if row else None

    def try_acquire(self) -> bool:
        self.backend_pid = self._one("SELECT pg_backend_pid()")
        return bool(self._one("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [self.key]))

    def wait(self, seconds: float) -> bool:
        """Wait for the lock at most `seconds`; PostgreSQL grants it the moment the holder ends."""
        self._one("SELECT set_config('lock_timeout', %s, false)", [f"{int(seconds * 1000)}ms"])
        try:
            self._one("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [self.key])
            return True
        except Error as exc:
            if getattr(exc.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
                return False
            raise
        finally:
            self._one("SELECT set_config('lock_timeout', '0', false)")

    def holder(self) -> str | None:
        """The application_name of the session holding the lock (None: nobody holds it now)."""
        # A bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
        return self._one(
            """
            WITH k AS (SELECT hashtextextended(%s, 0) AS key)
            SELECT a.application_name
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = ((k.key >> 32) & 4294967295)::oid
               AND l.objid = (k.key & 4294967295)::oid
            """,
            [self.key],
        )

    def held(self) -> bool:
        """Whether this connection is still the session that took the lock."""
        if self.backend_pid is None:
            return False
        try:
            return bool(self._one("SELECT pg_backend_pid()") == self.backend_pid)
        except Error:
            return False

    def close(self) -> None:
        # Closing the session releases the lock even if no unlock is ever sent.
        with suppress(Error):  # already broken: the server ended it, and the lock with it
            self.connection.close()


@contextmanager
def advisory_lock(name: str) -> Iterator[JobLock]:
    """The lock of job `name` on its own connection (not yet taken), closed on the way out."""
    lock = JobLock(name)
    try:
        yield lock
    finally:
        lock.close()


class RunHandle:
    """What the job body sees: set `summary` to say what it did; call `check()` at safe points."""

    def __init__(self, run: JobRun, lock: JobLock) -> None:
        self.run = run
        self.summary: Any = None
        self._lock = lock

    @property
    def lock_backend_pid(self) -> int | None:
        """The PostgreSQL backend that holds this run's lock."""
        return self._lock.backend_pid

    def still_holds_lock(self) -> bool:
        return self._lock.held()

    def check(self) -> None:
        """Raise LockLost if the lock was lost: another run may have started, so stop here."""
        if not self._lock.held():
            raise LockLost(
                f"job {self.run.name} lost its lock (its database session "
                f"{self._lock.backend_pid} ended): another run may have started, so this one stopped"
            )


def _process_alive(pid: int) -> bool:
    """True for a running process of this host; a zombie nobody reaped yet counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _holder_state(holder: str) -> str:
    """`dead` or `alive` for a holder process of this host, `elsewhere` for any other holder."""
    match = _HOLDER.fullmatch(holder)
    if not match:
        return "elsewhere"
    pid, host = int(match[1]), match[2]
    here = socket.gethostname()
    same_host = host == here or (len(holder.encode()) >= _APPLICATION_NAME_MAX and here.startswith(host))
    if not same_host:
        return "elsewhere"
    return "alive" if _process_alive(pid) else "dead"


def _redelivered() -> bool:
    """Inside a Celery task delivered again because its first delivery died unacknowledged."""
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    delivery_info = getattr(request, "delivery_info", None) or {}
    return bool(delivery_info.get("redelivered"))


def _why_wait(holder: str | None) -> str | None:
    """Why the lock may belong to a dead run (so wait for it), or None: a live run holds it."""
    if holder is None:
        return "the holder just let go"
    state = _holder_state(holder)
    if state == "dead":
        return f"its holder {holder} is a dead process of this host"
    if state == "elsewhere" and _redelivered():
        return f"this task is a rerun after a crash and {holder} may be the dead run's session"
    return None


def take_unless_live(lock: JobLock, what: str) -> tuple[bool, str | None, str | None]:
    """Take `lock` (from `advisory_lock`) as `job()` does: at once if it is free; not at all if a
    live run holds it; and, if its holder may be a dead run (module docstring, "A run that finds
    the lock taken"), after waiting for it up to RERUN_WAIT_SECONDS. Returns whether it was
    taken, the holder seen (None if it was free) and why this run waited (None if it did not).
    `what` names the run in the log ("job orders.prune_exports")."""
    if lock.try_acquire():
        return True, None, None
    holder = lock.holder()
    reason = _why_wait(holder)
    if not reason:
        return False, holder, None
    log.warning("%s: lock taken, %s: waiting up to %.0f s", what, reason, RERUN_WAIT_SECONDS)
    return lock.wait(RERUN_WAIT_SECONDS), holder, reason


@contextmanager
def job(name: str) -> Iterator[RunHandle]:
    """Run the block at most once at a time across all workers, and log it as a JobRun.

    When a live run holds the lock the block is not entered at all: `job()` records a skipped
    run and raises JobSkipped from the `with` line. See the module docstring for the lock, the
    safe-point checks (`run.check()`) and reruns after a crash.
    """
    with advisory_lock(name) as lock:
        acquired, holder, reason = take_unless_live(lock, f"job {name}")
        if not acquired:
            now = timezone.now()
            summary: dict[str, Any] = {"reason": gettext_noop("another run holds the lock"), "holder": holder}
            if reason:
                summary["waited_seconds"] = RERUN_WAIT_SECONDS
            JobRun.objects.create(
                name=name,
                started_at=now,
                finished_at=now,
                outcome=JobRun.Outcome.SKIPPED,
                summary=summary,
                host=_host(),
            )
            log.info("job %s skipped: already running (%s)", name, holder)
            raise JobSkipped(f"job {name} is already running")
        # We hold the lock, so any run still marked running died without finishing.
        JobRun.objects.filter(name=name, outcome=JobRun.Outcome.RUNNING).update(
            outcome=JobRun.Outcome.ABANDONED, finished_at=timezone.now()
        )
        run = JobRun.objects.create(name=name, host=_host())
        handle = RunHandle(run, lock)
        try:
            # Stored in English, shown with the job's label (okada.core.display.reason_label).
            with actors.acting_as(reason=f"job {name}"), logs.bound(job=name, job_run=str(run.pk)):
                yield handle
            handle.check()  # a run that lost its lock on the way is not a success
        except BaseException as exc:
            # A refusal (a 4xx DomainError: e.g. verifying a pruned backup) is no crash either:
            # the run keeps its sentence. The log keeps its traceback: a bug may raise one too
            # (a service refusing what a job wrongly asked), and the trace is how it is found.
            if isinstance(exc, JobFailed) or (isinstance(exc, DomainError) and exc.status < 500):
                refusal = None if isinstance(exc, JobFailed) else exc
                log.error("job %s failed: %s", name, text_of(exc).english(), exc_info=refusal)
                run.error = text_of(exc).stored
            else:
                log.exception("job %s failed", name)
                trace = "".join(traceback.format_exception(exc))
                run.error = f"{exc}\n\n{trace}" if isinstance(exc, LockLost) else trace
            run.outcome = JobRun.Outcome.FAILED
            run.summary = _jsonable(handle.summary)
            run.finished_at = timezone.now()
            reconnect_if_broken()  # the failure may be that our session was ended
            try:
                run.save(update_fields=["outcome", "error", "summary", "finished_at", "updated_at"])
            except Exception:  # e.g. the database went away: keep the job's own error
                log.exception("could not record the failure of job %s", name)
            raise
        run.outcome = JobRun.Outcome.SUCCESS
        run.summary = _jsonable(handle.summary)
        run.finished_at = timezone.now()
        run.save(update_fields=["outcome", "summary", "finished_at", "updated_at"])


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list, str, int, float, bool)):
        return value
    return str(value)


_T = TypeVar("_T")


def started_by_hand_with(permission: str) -> Any:
    """Mark a Celery task as one that only holders of `permission` may start by hand: the
    permission its own "run now" button asks for. The scheduled jobs' screens ask for it too
    (okada.core.admin.run_permission), so the change permission on schedules does not start a
    backup for someone its own button would refuse."""

    def mark(task: _T) -> _T:
        task.run_permission = permission  # type: ignore[attr-defined]
        return task

    return mark


# --- What staff read: a job's label and its summary's keys ---------------------------------------
# The labels sit on the Celery task, as `run_permission` does (started_by_hand_with): each app
# labels its own tasks where it defines them, okada.core imports no domain app, and the admin
# finds them through Celery's task registry (job names are task names). JobRun.name and the
# summaries stay as stored (scripts and logs read them); only the screens translate them.

# Keys job() itself writes in the summary of a skipped run.
SKIPPED_SUMMARY = {
    "reason": _("reason"),
    "holder": _("lock holder"),
    "waited_seconds": _("seconds waited"),
}


def labelled(label: str | Promise, **summary: str | Promise) -> Any:
    """Give a job (its Celery task) the `label` staff read instead of the task name, and labels
    for the keys of its `run.summary` (a key without one shows as it is)."""

    def mark(task: _T) -> _T:
        task.job_label = label  # type: ignore[attr-defined]
        task.summary_labels = summary  # type: ignore[attr-defined]
        return task

    return mark


_tasks_imported = False


def registered_task(name: str) -> Any:
    """The Celery task named `name` (None when there is none), every app's tasks imported."""
    global _tasks_imported
    from celery import current_app

    if not _tasks_imported:
        current_app.loader.import_default_modules()
        _tasks_imported = True
    return current_app.tasks.get(name)


def labelled_task_names() -> list[str]:
    """The names of the tasks that have a label (okada.core.jobs.labelled)."""
    from celery import current_app

    registered_task("")  # imports every app's tasks
    return sorted(name for name, task in current_app.tasks.items() if getattr(task, "job_label", None))
