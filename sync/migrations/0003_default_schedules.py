from django.db import migrations

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name="Sync: change feed partitions and retention",
        task="sync.maintain_feed",
        minute="17",
        description=(
            "Creates the change feed's monthly partitions ahead, drops those older than "
            "OKADA_SYNC_FEED_RETENTION_DAYS and prunes stored push results."
        ),
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
