from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Nightly invariant audit"),
        task="orders.audit_invariants",
        minute="0",
        hour="3",
        description=gettext_noop(
            "Stock = ledger, order totals = items, reserved stock = open orders' items, "
            "paid status = payments; any finding fails the run."
        ),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [("orders", "0016_payments_named_received_needs_refund")]

    operations = [migrations.RunPython(forwards, backwards)]
