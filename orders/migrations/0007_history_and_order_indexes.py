"""Fewer indexes to write per order placed.

History tables keep only their row-id index (plus history_date and history_user); orders lose
the single-column vendor and customer indexes (their composite indexes lead with those
columns), order items the order index (the unique (order, product) index leads with it), and
events the index on actor_user (no constraint, no query by it).

Django would drop and re-create (and so re-validate) a foreign key to change its index; the
three foreign keys below only drop the index.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def drop_index(name: str, *, table: str, column: str) -> migrations.RunSQL:
    return migrations.RunSQL(
        f'DROP INDEX IF EXISTS "{name}"', f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")'
    )


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0003_history_and_order_indexes"),
        ("orders", "0006_order_place_function_arrays"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalcustomer",
            name="deleted_at",
            field=models.DateTimeField(
                blank=True,
                db_comment="Soft delete: when the row was deleted; NULL for live rows.",
                editable=False,
                null=True,
                verbose_name="deleted at",
            ),
        ),
        migrations.AlterField(
            model_name="historicalcustomer",
            name="zone",
            field=models.ForeignKey(
                blank=True,
                db_comment="Usual zone.",
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="orders.zone",
            ),
        ),
        migrations.AlterField(
            model_name="historicalorder",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_comment="Buyer.",
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="orders.customer",
            ),
        ),
        migrations.AlterField(
            model_name="historicalorder",
            name="deleted_at",
            field=models.DateTimeField(
                blank=True,
                db_comment="Soft delete: when the row was deleted; NULL for live rows.",
                editable=False,
                null=True,
                verbose_name="deleted at",
            ),
        ),
        migrations.AlterField(
            model_name="historicalorder",
            name="vendor",
            field=models.ForeignKey(
                blank=True,
                db_comment="Seller.",
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="catalog.vendor",
            ),
        ),
        migrations.AlterField(
            model_name="historicalorder",
            name="zone",
            field=models.ForeignKey(
                blank=True,
                db_comment="Delivery zone.",
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="orders.zone",
            ),
        ),
        migrations.AlterField(
            model_name="historicalzone",
            name="deleted_at",
            field=models.DateTimeField(
                blank=True,
                db_comment="Soft delete: when the row was deleted; NULL for live rows.",
                editable=False,
                null=True,
                verbose_name="deleted at",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="customer",
                    field=models.ForeignKey(
                        db_comment="Buyer.",
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="orders",
                        to="orders.customer",
                    ),
                )
            ],
            database_operations=[
                drop_index("orders_order_customer_id_0b76f6a4", table="orders_order", column="customer_id")
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="vendor",
                    field=models.ForeignKey(
                        db_comment="Seller.",
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="orders",
                        to="catalog.vendor",
                    ),
                )
            ],
            database_operations=[
                drop_index("orders_order_vendor_id_a95998e8", table="orders_order", column="vendor_id")
            ],
        ),
        migrations.AlterField(
            model_name="orderevent",
            name="actor_user",
            field=models.ForeignKey(
                blank=True,
                db_comment="Acting user, when there was one.",
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="orderitem",
                    name="order",
                    field=models.ForeignKey(
                        db_comment="Order.",
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="orders.order",
                    ),
                )
            ],
            database_operations=[
                drop_index("orders_orderitem_order_id_fe61a34d", table="orders_orderitem", column="order_id")
            ],
        ),
        migrations.AlterField(
            model_name="orderitem",
            name="quantity",
            field=models.IntegerField(db_comment="Units ordered (> 0).", verbose_name="quantity"),
        ),
    ]
