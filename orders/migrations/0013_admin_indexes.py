# The admin's order list (newest first, date filters), today's figures and the 14-day chart read
# orders_order_placed; the open-orders queue and dashboard read the small partial index
# orders_order_open. Built CONCURRENTLY: a million orders, and placement goes on meanwhile.
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

import okada.core.fields


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("orders", "0012_admin_labels_exports")]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["placed_at"], name="orders_order_placed"),
        ),
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                condition=models.Q(
                    okada.core.fields.AnyOf(
                        models.F("status"), ["pending", "accepted", "preparing", "ready", "out_for_delivery"]
                    )
                ),
                fields=["status", "placed_at"],
                name="orders_order_open",
            ),
        ),
    ]
