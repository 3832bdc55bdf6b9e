# Operations follow the vendors' devices: they see devices, conflicts and pushed mutations, resolve
# conflicts and revoke devices (okada.core.roles). Other roles do not need offline sync.
from django.db import migrations

from okada.core.roles import OPERATIONS, grant_operation


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_history_indexes"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    "sync.view_device",
                    "sync.view_syncconflict",
                    "sync.view_mutation",
                    "sync.resolve_syncconflict",
                    "sync.revoke_device",
                ]
            }
        ),
    ]
