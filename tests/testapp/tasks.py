"""Test-only Celery tasks (tests/testapp is installed by the test settings only)."""

from __future__ import annotations

import os
import signal

from celery import current_task, shared_task

from okada.core.jobs import job


@shared_task(name="testapp.crash_then_run_job", acks_late=True)
def crash_then_run_job(name: str) -> None:
    """Kills its own worker process on the first delivery; the delivery that follows runs `name`."""
    if not (current_task.request.delivery_info or {}).get("redelivered"):
        os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-task: the task is not acked
    with job(name) as run:
        run.summary = "rerun finished"


@shared_task(name="testapp.log_inside_job")
def log_inside_job(name: str) -> None:
    """Logs one line inside `job(name)` (tests of what a task's log lines carry)."""
    import logging

    with job(name):
        logging.getLogger("testapp").warning("inside the job")
