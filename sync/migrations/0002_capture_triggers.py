"""Capture triggers on every synced table: changed row ids go to the change feed (sync.feed).

The SQL is written out by `sync.feed.capture_sql()` from the entity list as it stands when the
migration runs; a later change to the list (a new table, another priority) needs a migration of
its own that drops and recreates the triggers concerned.
"""

from django.db import migrations

from sync.feed import ENTITIES, capture_sql, drop_capture_sql


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("catalog", "0005_uuid7_ids"),
        ("orders", "0010_order_place_v4"),  # okada_uuid7()
    ]

    operations = [
        migrations.RunSQL(capture_sql(entity), drop_capture_sql(entity)) for entity in ENTITIES
    ]
