"""Payments by day for Finance's list (orders.admin.PaymentAdmin): an index on (created_at, id),
built CONCURRENTLY so payments keep being written while it is made."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("orders", "0021_order_place_v6")]

    operations = [
        AddIndexConcurrently(
            model_name="payment",
            index=models.Index(fields=["created_at", "id"], name="orders_payment_created"),
        ),
    ]
