"""The hourly maintenance task: a thin wrapper that runs the service inside `job()`."""

from typing import Any

from celery import shared_task

from okada.core.jobs import job, started_by_hand_with


@started_by_hand_with("partitions.run_partition_maintenance")
@shared_task(name="partitions.maintain_partitions", acks_late=True)
def maintain_partitions() -> dict[str, Any]:
    from .services import MaintenanceFailed, maintenance_run

    with job("partitions.maintain_partitions") as run:
        # run.check() before each step: a run that lost its lock stops there (LockLost).
        summary = run.summary = maintenance_run(between_steps=run.check)
        if summary["failed"]:
            # The run did every step it could; the failed ones are in the action log.
            raise MaintenanceFailed("; ".join(summary["failed"]))
    return summary
