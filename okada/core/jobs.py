"""`job(name)`: single-flight lock + JobRun row around every scheduled job.

The lock is a PostgreSQL session advisory lock held on a connection of its own. It needs no Redis
(so jobs keep their guarantee when Redis is down) and it cannot outlive its holder: when a worker is
killed, its connection drops and PostgreSQL releases the lock at once, so the re-delivered task
(acks_late) can run. A second run that finds the lock taken is recorded as `skipped`.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import Ignore
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from . import actors
from .models import JobRun

log = logging.getLogger(__name__)


class RunHandle:
    """What the job body sees: set `summary` to say what it did."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        self.summary: Any = None


class JobSkipped(Ignore):
    """Raised on entering `job()` when another run holds the lock: the body does not run.

    It is Celery's `Ignore`, so a skipped task ends quietly (state IGNORED, no retry, no error
    log); callers outside Celery catch it.
    """


def _host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def advisory_lock(name: str) -> Iterator[bool]:
    """Try the advisory lock for `name` on a dedicated connection; yield whether we hold it."""
    conn = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [f"okada.job:{name}"])
            acquired = bool(cur.fetchone()[0])
        yield acquired
    finally:
        # Closing the session releases the lock even if the unlock is never reached.
        conn.close()


@contextmanager
def job(name: str) -> Iterator[RunHandle]:
    """Run the block at most once at a time across all workers, and log it as a JobRun.

    Usage::

        with job("backups.run_backup") as run:
            run.summary = backup_run()

    When the lock is taken the block is not entered at all: `job()` records a skipped run and
    raises JobSkipped from the `with` line.
    """
    with advisory_lock(name) as acquired:
        if not acquired:
            now = timezone.now()
            JobRun.objects.create(
                name=name,
                started_at=now,
                finished_at=now,
                outcome=JobRun.Outcome.SKIPPED,
                summary={"reason": "another run holds the lock"},
                host=_host(),
            )
            log.info("job %s skipped: already running", name)
            raise JobSkipped(f"job {name} is already running")
        # We hold the lock, so any run still marked running died without finishing.
        JobRun.objects.filter(name=name, outcome=JobRun.Outcome.RUNNING).update(
            outcome=JobRun.Outcome.ABANDONED, finished_at=timezone.now()
        )
        run = JobRun.objects.create(name=name, host=_host())
        handle = RunHandle(run)
        try:
            with actors.acting_as(reason=f"job {name}"):
                yield handle
        except BaseException as exc:
            log.exception("job %s failed", name)
            run.outcome = JobRun.Outcome.FAILED
            run.error = "".join(traceback.format_exception(exc))
            run.summary = _jsonable(handle.summary)
            run.finished_at = timezone.now()
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
