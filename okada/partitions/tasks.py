"""The hourly maintenance task: a thin wrapper that runs the service inside `job()`."""

from typing import Any

from celery import shared_task
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from okada.core.jobs import job, labelled, started_by_hand_with
from okada.core.texts import Text, joined


@labelled(
    _("Partition maintenance"),
    steps=_("steps planned"),
    done=_("done"),
    deferred=_("left to the next run"),
    failed=_("failed"),
    warnings=_("warnings"),
)
@started_by_hand_with("partitions.run_partition_maintenance")
@shared_task(name="partitions.maintain_partitions", acks_late=True)
def maintain_partitions() -> dict[str, Any]:
    from .services import MaintenanceFailed, maintenance_run

    with job("partitions.maintain_partitions") as run:
        # run.check() before each step: a run that lost its lock stops there (LockLost).
        summary = run.summary = maintenance_run(between_steps=run.check)
        if summary["failed"]:
            # The run did every step it could; the failed ones are in the action log.
            raise MaintenanceFailed(
                Text(
                    gettext_noop("Some steps failed (see the partition action log): %(steps)s"),
                    steps=joined([Text.load(failed) for failed in summary["failed"]]),
                )
            )
    return summary
