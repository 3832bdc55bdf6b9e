# The Operations role reads the health screens and alerts and acknowledges alerts (okada.core.roles);
# acting on the database (cancel, terminate, reset statistics) stays with superusers.
from django.db import migrations

from okada.core.roles import OPERATIONS, grant_operation


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0003_default_schedules"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    "health.view_database_health",
                    "health.view_alert",
                    "health.acknowledge_alert",
                    "health.view_databaseaction",
                ]
            }
        ),
    ]
