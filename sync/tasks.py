"""Thin scheduled tasks of the sync app: they call services inside `job()`.

The change feed's partitions are kept by okada.partitions (sync/partitions.py declares them).
"""

from celery import shared_task
from django.utils.translation import gettext_lazy as _

from okada.core.jobs import job, labelled


@labelled(_("Prune stored push results"), deleted=_("push results deleted"))
@shared_task(name="sync.prune_push_results", acks_late=True)
def prune_push_results() -> None:
    from .services import push_results_prune

    with job("sync.prune_push_results") as run:
        run.summary = {"deleted": push_results_prune()}
