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
        ("catalog", "0009_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="category",
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
            "catalog",
            migrations.AlterField(
                model_name="historicalcategory",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="historicalcategory",
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
            "catalog",
            migrations.AlterField(
                model_name="historicalproduct",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="historicalproduct",
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
            "catalog",
            migrations.AlterField(
                model_name="historicalvendor",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="historicalvendor",
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
            "catalog",
            migrations.AlterField(
                model_name="historicalvendormember",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="historicalvendormember",
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
            "catalog",
            migrations.AlterField(
                model_name="product",
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
            "catalog",
            migrations.AlterField(
                model_name="stockmovement",
                name="vendor",
                field=models.ForeignKey(
                    db_comment="Vendor.",
                    db_constraint=False,
                    db_index=False,
                    on_delete=django.db.models.deletion.DO_NOTHING,
                    related_name="+",
                    to="catalog.vendor",
                    verbose_name="vendor",
                ),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="vendor",
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
            "catalog",
            migrations.AlterField(
                model_name="vendormember",
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
            model_name="category",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="catalog_category_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalcategory",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="catalog_hcategory_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalcategory",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="catalog_hcategory_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalproduct",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="catalog_hproduct_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalproduct",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="catalog_hproduct_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalvendor",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="catalog_hvendor_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalvendor",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="catalog_hvendor_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalvendormember",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="catalog_hvendormember_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalvendormember",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="catalog_hvendormember_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="product",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="catalog_product_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="vendor",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="catalog_vendor_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="vendormember",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="catalog_vendormember_deleted",
            ),
        ),
    ]
