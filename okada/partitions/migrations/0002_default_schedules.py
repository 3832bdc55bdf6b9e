from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Partition maintenance"),
        task="partitions.maintain_partitions",
        minute="7",
        description=gettext_noop("Hourly: premake monthly partitions, rescue rows from DEFAULT, retire months past retention."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("partitions", "0001_initial"),
        ("core", "0002_default_schedules"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
