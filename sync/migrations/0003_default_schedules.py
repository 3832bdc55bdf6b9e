from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Sync: prune stored push results"),
        task="sync.prune_push_results",
        minute="17",
        hour="3",
        description=gettext_noop("Deletes stored push results older than OKADA_SYNC_MUTATION_RETENTION_DAYS."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0002_capture_triggers"),
        ("core", "0002_default_schedules"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
