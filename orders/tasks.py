from celery import shared_task
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from okada.core.jobs import JobFailed, job, labelled
from okada.core.texts import Text


@labelled(_("Expire unpaid mobile-money orders"), expired=_("orders expired"))
@shared_task(name="orders.expire_unpaid_orders", acks_late=True)
def expire_unpaid_orders() -> None:
    from .services import order_expire_unpaid

    with job("orders.expire_unpaid_orders") as run:
        run.summary = {"expired": order_expire_unpaid()}


@shared_task(name="orders.export_orders", acks_late=True)
def export_orders(export_id: str, language: str = "fr") -> None:
    """One CSV export (not a scheduled job: several users may export at once)."""
    from .exports import export_run

    export_run(export_id=export_id, language=language)


@labelled(_("Prune order exports"), deleted=_("exports deleted"))
@shared_task(name="orders.prune_exports", acks_late=True)
def prune_exports() -> None:
    from .exports import exports_prune

    with job("orders.prune_exports") as run:
        run.summary = {"deleted": exports_prune()}


@labelled(
    _("Invariant audit"), findings=_("findings"), checks=_("rows found per check"), samples=_("sample rows")
)
@shared_task(name="orders.audit_invariants", acks_late=True)
def audit_invariants() -> None:
    """Nightly: check the stored data against the services' rules; any finding fails the run."""
    from .audit import invariant_audit

    with job("orders.audit_invariants") as run:
        report = invariant_audit()
        run.summary = report.summary()
        if report.findings:
            broken = ", ".join(name for name, count in report.counts.items() if count)
            raise JobFailed(
                Text.of(
                    ngettext_lazy(
                        "invariant audit: %(n)s finding in %(checks)s",
                        "invariant audit: %(n)s findings in %(checks)s",
                        "n",
                    )
                ).with_params(
                    n=report.findings,
                    checks=broken,
                )
            )
