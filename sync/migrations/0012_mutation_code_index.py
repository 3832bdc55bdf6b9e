"""The pushed mutations' codes, for the admin's search by code (`insufficient_stock`): a partial
index of the rejections and conflicts, a few percent of the pushes. Without it a search read all
the stored mutations (1.5 million in a month of a thousand vendors' devices: seconds). A push
whose mutation is applied (the code is empty) does not write it.

Built CONCURRENTLY (okada.core.operations.add_index_concurrently): devices keep pushing
meanwhile, and the migration runs again after an interruption."""

from django.db import migrations, models
from django.db.models import Q

from okada.core.operations import add_index_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("sync", "0011_feed_state_home")]

    operations = [
        add_index_concurrently(
            "sync",
            migrations.AddIndex(
                model_name="mutation",
                index=models.Index(fields=["code"], name="sync_mutation_code", condition=~Q(code="")),
            ),
        ),
    ]
