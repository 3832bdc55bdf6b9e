"""The tracked base's index budget (okada.core.operations.drop_field_index, tested both ways)."""

import django.contrib.postgres.indexes
import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

from okada.core.operations import drop_field_index


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("testapp", "0004_labels"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="book",
                name="deleted_at",
                field=models.DateTimeField(
                    blank=True,
                    db_comment="Soft delete: when the row was deleted; NULL for live rows.",
                    editable=False,
                    null=True,
                    verbose_name="deleted at",
                ),
            ),
        ),
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="historicalbook",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="historicalbook",
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
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="historicalshelf",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="historicalshelf",
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
        drop_field_index(
            "testapp",
            migrations.AlterField(
                model_name="shelf",
                name="deleted_at",
                field=models.DateTimeField(
                    blank=True,
                    db_comment="Soft delete: when the row was deleted; NULL for live rows.",
                    editable=False,
                    null=True,
                    verbose_name="deleted at",
                ),
            ),
        ),
        AddIndexConcurrently(
            model_name="book",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="testapp_book_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalbook",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="testapp_hbook_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalbook",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="testapp_hbook_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalshelf",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="testapp_hshelf_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalshelf",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="testapp_hshelf_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="shelf",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="testapp_shelf_deleted",
            ),
        ),
    ]
