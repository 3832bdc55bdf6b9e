# Hourly: personal tokens expired or revoked longer than OKADA_API_TOKEN_RETENTION_DAYS go.
from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Prune personal tokens"),
        task="credentials.prune_tokens",
        minute="25",
        description=gettext_noop(
            "Hourly: delete personal API tokens expired or revoked more than "
            "OKADA_API_TOKEN_RETENTION_DAYS (7) days ago."
        ),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("credentials", "0002_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
