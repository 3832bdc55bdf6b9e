# Operations issue and revoke API keys and revoke personal tokens (okada.core.roles). Deleting a
# key stays with superusers: a revoked key keeps who used it and when.
from django.db import migrations

from okada.core.roles import OPERATIONS, grant_operation


class Migration(migrations.Migration):
    dependencies = [
        ("credentials", "0001_initial"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    "credentials.view_apikey",
                    "credentials.add_apikey",
                    "credentials.change_apikey",
                    "credentials.view_personaltoken",
                    "credentials.change_personaltoken",
                ]
            }
        ),
    ]
