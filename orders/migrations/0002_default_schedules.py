from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Expire unpaid mobile-money orders"),
        task="orders.expire_unpaid_orders",
        minute="*/5",
        description=gettext_noop("Pending mobile-money orders unpaid past OKADA_MOBILE_MONEY_DEADLINE_MINUTES expire."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("core", "0002_default_schedules"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
