from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Nightly backup"),
        task="backups.run_backup",
        minute="0",
        hour="2",
        description=gettext_noop("pg_dump of the whole database to OKADA_BACKUP_DIR, then retention pruning."),
    ),
    Schedule(
        name=gettext_noop("Restore drill"),
        task="backups.run_restore_drill",
        minute="0",
        hour="4",
        description=gettext_noop("Restore the newest backup into a scratch database and check it."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("core", "0002_default_schedules"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
