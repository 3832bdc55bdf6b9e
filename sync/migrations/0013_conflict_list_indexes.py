"""Indexes of the sync conflicts, for the admin's list of them: conflicts are never pruned
(hundreds of thousands in a year of a busy marketplace), and its pages sorted every conflict
(newest first) or read the whole table:

- by time, newest first (created_at, then the key, as the list orders them): the list of all
  conflicts, the one a staff member opens, and a range of days;
- by kind, newest first: the list filtered to a kind;
- by row id: the search of a row's conflicts by its id.

Conflicts are a fraction of a percent of the pushes: their writes pay little for them. Built
CONCURRENTLY (okada.core.operations.add_index_concurrently): devices keep pushing meanwhile, and
the migration runs again after an interruption."""

from django.db import migrations, models

from okada.core.operations import add_index_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("sync", "0012_mutation_unapplied_indexes")]

    operations = [
        add_index_concurrently(
            "sync",
            migrations.AddIndex(
                model_name="syncconflict",
                index=models.Index(fields=["-created_at", "-id"], name="sync_conflict_created"),
            ),
        ),
        add_index_concurrently(
            "sync",
            migrations.AddIndex(
                model_name="syncconflict",
                index=models.Index(fields=["kind", "-created_at"], name="sync_conflict_kind"),
            ),
        ),
        add_index_concurrently(
            "sync",
            migrations.AddIndex(
                model_name="syncconflict",
                index=models.Index(fields=["row_id"], name="sync_conflict_row"),
            ),
        ),
    ]
