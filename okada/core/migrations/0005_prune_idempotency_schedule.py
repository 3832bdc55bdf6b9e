from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Prune idempotency keys"),
        task="core.prune_idempotency_keys",
        minute="20",
        description=gettext_noop("Hourly: delete Idempotency-Key records older than OKADA_IDEMPOTENCY_TTL_HOURS (24 h)."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_idempotency_records"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
