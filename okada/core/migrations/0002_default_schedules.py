from django.db import migrations
from django.utils.translation import gettext_noop

from okada.core.schedules import Schedule, install, uninstall

SCHEDULES = [
    Schedule(
        name=gettext_noop("Prune old job runs"),
        task="core.prune_job_runs",
        minute="15",
        hour="3",
        description=gettext_noop("Delete JobRun rows older than OKADA_JOB_RUN_RETENTION_DAYS."),
    ),
    Schedule(
        name=gettext_noop("Clean duplicate history"),
        task="core.clean_duplicate_history",
        minute="30",
        hour="5",
        day_of_week="0",
        description=gettext_noop("Weekly: drop history rows identical to the previous one."),
    ),
]


def forwards(apps, schema_editor):
    install(apps, SCHEDULES)


def backwards(apps, schema_editor):
    uninstall(apps, SCHEDULES)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
