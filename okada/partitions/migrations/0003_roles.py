# Operations watch the partitions and may run their maintenance now (okada.core.roles).
from django.db import migrations

from okada.core.roles import OPERATIONS, grant_operation


class Migration(migrations.Migration):
    dependencies = [
        ("partitions", "0002_default_schedules"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    "partitions.view_partitionedtable",
                    "partitions.view_partitionaction",
                    "partitions.run_partition_maintenance",
                ]
            }
        ),
    ]
