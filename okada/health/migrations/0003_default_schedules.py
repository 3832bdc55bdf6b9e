from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Database health snapshot"),
        task="health.take_snapshot",
        minute="2",
        description=gettext_noop("Hourly: snapshot of table, index and query statistics; prunes those past retention."),
    ),
    Schedule(
        name=gettext_noop("Health alerts"),
        task="health.evaluate_alerts",
        minute="*",
        description=gettext_noop("Every minute: open, repeat and clear health alerts (thresholds in OKADA_HEALTH_* settings)."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0002_pg_stat_statements"),
        ("core", "0002_default_schedules"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
