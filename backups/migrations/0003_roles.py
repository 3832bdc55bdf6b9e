# Operations watch the backups (and may start one or a drill); Finance and Support do not need them.
from django.db import migrations

from okada.core.roles import OPERATIONS, grant_operation


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0002_default_schedules"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {OPERATIONS: ["backups.view_backup", "backups.view_backupverification", "backups.run_backup"]}
        ),
    ]
