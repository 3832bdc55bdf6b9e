"""Two partial indexes of the order timeline, for the admin: its list of notes (filtered by kind
"note": 0.5 to 0.7 s on 6.5 million events, the list walking the primary key back until it found
a page of them) and a user's delete page, which asks whether any event names the user (an EXISTS
on actor_user_id, unindexed: 1.2 to 1.8 s, every partition read).

Placement writes no note. It names a user only when one places the order (staff in the admin,
a vendor's account); orders placed with the storefront's key, most of them, enter neither index.

Built partition by partition, CONCURRENTLY (okada.core.operations.add_partitioned_index): orders
keep being placed meanwhile, and the migration runs again after an interruption."""

from django.conf import settings
from django.db import migrations, models

from okada.core.operations import add_partitioned_index


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
    ]
