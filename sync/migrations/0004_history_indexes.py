"""Indexes that cost every write and served no query: a partial index of soft-deleted rows
instead of a full one on deleted_at; history by date with BRIN and by user only where there is
one; no index of their own for foreign keys nothing reads by (see the models' comments)."""

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

from okada.core.operations import drop_field_index


class Migration(migrations.Migration):
    atomic = False  # indexes are built and dropped CONCURRENTLY (okada.core.operations)

    dependencies = [
        ("catalog", "0010_index_budget"),
        ("sync", "0003_default_schedules"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        drop_field_index(
            "sync",
            migrations.AlterField(
                model_name="historicalsyncconflict",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "sync",
            migrations.AlterField(
                model_name="historicalsyncconflict",
                name="history_user",
                field=models.ForeignKey(
                    db_index=False,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalsyncconflict",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="sync_hsyncconflict_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalsyncconflict",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="sync_hsyncconflict_user",
            ),
        ),
    ]
