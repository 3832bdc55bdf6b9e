"""okada.health's own panels of "Marketplace health": scheduled jobs, partitions made ahead, and
the Celery queue. The domains add theirs from their health.py (orders, stock, backups)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from okada.core.health_registry import Panel, register_panel

from . import pg, selectors


def jobs_panel() -> dict[str, Any]:
    with pg.reads() as cur:
        jobs = selectors.job_summary(cur)
    return {"jobs": jobs, "overdue": {o["job"]: o for o in selectors.overdue_jobs(jobs)}}


def partitions_panel() -> dict[str, Any]:
    with pg.reads() as cur:
        return {"tables": selectors.partition_status(cur)}


def queue_panel() -> dict[str, Any]:
    return selectors.queue_status()


def register() -> None:
    register_panel(
        Panel(
            key="health.jobs",
            title=_("Scheduled jobs"),
            template="admin/health/panels/jobs.html",
            build=jobs_panel,
            order=60,
            wide=True,
        )
    )
    register_panel(
        Panel(
            key="health.partitions",
            title=_("Partitions made ahead"),
            template="admin/health/panels/partitions.html",
            build=partitions_panel,
            order=70,
        )
    )
    register_panel(
        Panel(
            key="health.queue",
            title=_("Celery queue"),
            template="admin/health/panels/queue.html",
            build=queue_panel,
            order=80,
        )
    )
