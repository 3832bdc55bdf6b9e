"""Thin scheduled tasks of the sync app: they call services inside `job()`."""

from celery import shared_task

from okada.core.jobs import job


@shared_task(name="sync.maintain_feed", acks_late=True)
def maintain_feed() -> None:
    from .services import feed_maintain

    with job("sync.maintain_feed") as run:
        run.summary = feed_maintain()
