"""Thin scheduled tasks of the credentials app: they call services inside `job()`."""

from celery import shared_task
from django.utils.translation import gettext_lazy as _

from okada.core.jobs import job, labelled


@labelled(_("Prune personal tokens"), deleted=_("tokens deleted"))
@shared_task(name="credentials.prune_tokens", acks_late=True)
def prune_tokens() -> None:
    from .services import personal_tokens_prune

    with job("credentials.prune_tokens") as run:
        run.summary = {"deleted": personal_tokens_prune()}
