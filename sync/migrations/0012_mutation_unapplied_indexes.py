"""Two partial indexes of the pushed mutations the server did not apply (rejections and conflicts,
a few percent of the pushes), for the admin's list of them (1.5 million stored in a month of a
thousand vendors' devices):

- by status, newest first: the list filtered to rejections or conflicts (and a mutation name)
  walked the whole primary key when few or none of them matched (0.3 to 1.5 s);
- by code, for its search by code (`insufficient_stock`), which read every stored mutation.

A push whose mutation is applied (most of them) writes neither. Built CONCURRENTLY
(okada.core.operations.add_index_concurrently): devices keep pushing meanwhile, and the
migration runs again after an interruption."""

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
                index=models.Index(
                    fields=["status", "-id"], name="sync_mutation_unapplied", condition=~Q(status="applied")
                ),
            ),
        ),
        add_index_concurrently(
            "sync",
            migrations.AddIndex(
                model_name="mutation",
                index=models.Index(fields=["code"], name="sync_mutation_code", condition=~Q(code="")),
            ),
        ),
    ]
