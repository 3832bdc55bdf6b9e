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
        ("orders", "0017_audit_schedule"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="customer",
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
            "orders",
            migrations.AlterField(
                model_name="historicalcustomer",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="historicalcustomer",
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
            "orders",
            migrations.AlterField(
                model_name="historicalorder",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="historicalorder",
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
            "orders",
            migrations.AlterField(
                model_name="historicalzone",
                name="history_date",
                field=models.DateTimeField(),
            ),
        ),
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="historicalzone",
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
            "orders",
            migrations.AlterField(
                model_name="order",
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
            "orders",
            migrations.AlterField(
                model_name="order",
                name="zone",
                field=models.ForeignKey(
                    db_comment="Delivery zone.",
                    db_index=False,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="orders",
                    to="orders.zone",
                    verbose_name="zone",
                ),
            ),
        ),
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="orderitem",
                name="product",
                field=models.ForeignKey(
                    db_comment="Product ordered.",
                    db_index=False,
                    on_delete=django.db.models.deletion.DO_NOTHING,
                    related_name="order_items",
                    to="catalog.product",
                    verbose_name="product",
                ),
            ),
        ),
        drop_field_index(
            "orders",
            migrations.AlterField(
                model_name="zone",
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
            model_name="customer",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="orders_customer_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalcustomer",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="orders_hcustomer_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalcustomer",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="orders_hcustomer_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalorder",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="orders_horder_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalorder",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="orders_horder_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalzone",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["history_date"], name="orders_hzone_date"
            ),
        ),
        AddIndexConcurrently(
            model_name="historicalzone",
            index=models.Index(
                condition=models.Q(("history_user__isnull", False)),
                fields=["history_user"],
                name="orders_hzone_user",
            ),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="orders_order_deleted",
            ),
        ),
        AddIndexConcurrently(
            model_name="zone",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["deleted_at"],
                name="orders_zone_deleted",
            ),
        ),
    ]
