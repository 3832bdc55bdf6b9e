"""Thin scheduled tasks of the credentials app: they call services inside `job()`."""

from celery import shared_task

from okada.core.jobs import job


@shared_task(name="credentials.prune_tokens", acks_late=True)
def prune_tokens() -> None:
    from .services import personal_tokens_prune

    with job("credentials.prune_tokens") as run:
        run.summary = {"deleted": personal_tokens_prune()}
