"""Partial indexes for the admin, none of which an order's placement fills:
- the timeline's notes (its list filtered by kind "note": 0.5 to 0.7 s on 6.5 million events,
  the list walking the primary key back until it found a page of them);
- the events naming a user and the payments whose refund a user settled: a user's delete page
  asks whether any row names the user (okada.core.admin._named_in_records), an EXISTS on each
  of these unindexed columns (1.2 to 1.8 s for the events, every partition read; 0.1 s for the
  payments).

Placement writes no note and settles no refund. Its events name a user only when one places the
order (staff in the admin, a vendor's account); orders placed with the storefront's key, most of
them, enter none of these indexes.

The timeline's are built partition by partition, CONCURRENTLY (okada.core.operations.
add_partitioned_index), the payments' CONCURRENTLY: orders keep being placed meanwhile, and the
migration runs again after an interruption."""

from django.conf import settings
from django.db import migrations, models

from okada.core.operations import add_index_concurrently, add_partitioned_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("orders", "0031_storefront_updated_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        add_partitioned_index(
            "orders",
            migrations.AddIndex(
                model_name="orderevent",
                index=models.Index(fields=["id"], name="orders_event_notes", condition=models.Q(kind="note")),
            ),
        ),
        add_partitioned_index(
            "orders",
            migrations.AddIndex(
                model_name="orderevent",
                index=models.Index(
                    fields=["actor_user"],
                    name="orders_event_actor_user",
                    condition=models.Q(actor_user__isnull=False),
                ),
            ),
        ),
        # The delete page also asks whether the user settled a refund: an unindexed column of
        # every payment (0.1 s). Only settled refunds enter this one (the table is not partitioned).
        add_index_concurrently(
            "orders",
            migrations.AddIndex(
                model_name="payment",
                index=models.Index(
                    fields=["refund_settled_by"],
                    name="orders_payment_settled_by",
                    condition=models.Q(refund_settled_by__isnull=False),
                ),
            ),
        ),
    ]
