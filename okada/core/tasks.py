"""Housekeeping tasks of the core: thin wrappers that call services inside `job()`."""

from celery import shared_task
from django.utils.translation import gettext_lazy as _

from .jobs import job, labelled


@labelled(_("Prune old job runs"), deleted=_("job runs deleted"))
@shared_task(name="core.prune_job_runs", acks_late=True)
def prune_job_runs() -> None:
    from .services import job_runs_prune

    with job("core.prune_job_runs") as run:
        run.summary = {"deleted": job_runs_prune()}


# `output`: what runs recorded before this job counted its deletions (simple-history's command).
@labelled(_("Clean duplicate history"), deleted=_("duplicate history rows deleted"), output=_("output"))
@shared_task(name="core.clean_duplicate_history", acks_late=True)
def clean_duplicate_history() -> None:
    from .services import history_clean_duplicates

    with job("core.clean_duplicate_history") as run:
        run.summary = history_clean_duplicates(days=8)


@labelled(_("Prune idempotency keys"), deleted=_("keys deleted"))
@shared_task(name="core.prune_idempotency_keys", acks_late=True)
def prune_idempotency_keys() -> None:
    from .api.idempotency import prune

    with job("core.prune_idempotency_keys") as run:
        run.summary = {"deleted": prune()}
