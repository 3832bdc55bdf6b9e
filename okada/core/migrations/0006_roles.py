# Staff roles as groups (okada.core.roles); each app's own migration grants its permissions.
from django.db import migrations

from okada.core.roles import FINANCE, OPERATIONS, ROLES, STOCK, SUPPORT, grant_operation

BEAT = [
    "django_celery_beat.view_periodictask",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.view_crontabschedule",
    "django_celery_beat.add_crontabschedule",
    "django_celery_beat.view_intervalschedule",
]


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role in ROLES:
        Group.objects.get_or_create(name=role)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_prune_idempotency_schedule"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_groups, migrations.RunPython.noop),
        grant_operation(
            {
                OPERATIONS: ["core.view_jobrun", *BEAT],
                STOCK: [],
                SUPPORT: [],
                FINANCE: ["core.view_jobrun"],
            }
        ),
    ]
