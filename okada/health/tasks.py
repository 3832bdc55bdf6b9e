"""Health jobs: thin tasks calling the services inside `job()` (single-flight, a JobRun each)."""

from celery import shared_task
from django.utils.translation import gettext_lazy as _

from okada.core.jobs import job, labelled


@labelled(
    _("Database health snapshot"),
    hour=_("hour"),
    taken=_("taken"),
    reason=_("reason"),
    tables=_("tables"),
    indexes=_("indexes"),
    statements=_("queries"),
    statements_available=_("query statistics available"),
    pruned=_("old snapshots deleted"),
)
@shared_task(name="health.take_snapshot", acks_late=True)
def take_snapshot() -> None:
    """Hourly: this hour's statistics snapshot, then the snapshots past retention pruned."""
    from .services import snapshot_take, snapshots_prune

    with job("health.take_snapshot") as run:
        summary = snapshot_take()
        run.check()
        summary["pruned"] = snapshots_prune()
        run.summary = summary


@labelled(
    _("Health alerts"),
    opened=_("alerts opened"),
    cleared=_("alerts cleared"),
    repeated=_("alerts seen again"),
    errors=_("conditions that could not be read"),
)
@shared_task(name="health.evaluate_alerts", acks_late=True)
def evaluate_alerts() -> None:
    """Every minute: open, repeat and clear alerts (a long lock wait must not wait an hour)."""
    from .services import alerts_evaluate

    with job("health.evaluate_alerts") as run:
        run.summary = alerts_evaluate()
