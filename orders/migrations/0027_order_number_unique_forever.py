"""Order numbers unique forever and sorted right by an index (DESIGN section 3).

- `orders_order_number_uniq`: UNIQUE over every order, deleted ones included, replacing the
  partial `orders_order_number_live_uniq` (live rows only). A number comes from a sequence and is
  never reused: a deleted order keeps its number, and restoring it can never collide. Its index is
  built CONCURRENTLY, then attached as the constraint (okada.core.operations), and only then is
  the partial one dropped CONCURRENTLY: a number is unique at every moment in between.
- `orders_order_number_sort` on (length(number), number): the admin's number column sorted as
  OrderQuerySet.by_number() sorts (OK-9999999 before OK-10000000), read from the index in either
  direction instead of sorting a million rows. Built CONCURRENTLY: placement goes on meanwhile.

Each step can run again: a rerun after an interruption (a lock not granted in time) goes on
where the first run stopped.
"""

import django.db.models.functions.text
from django.db import migrations, models

from okada.core.operations import (
    add_index_concurrently,
    add_unique_concurrently,
    comments_only,
    drop_index_concurrently,
)

NUMBER_COMMENT = (
    "Human order number, OK- and the sequence, at least 7 digits (OK-0000123); unique, "
    "deleted orders included (never reused)."
)


def number_field() -> models.CharField:
    return models.CharField(db_comment=NUMBER_COMMENT, editable=False, max_length=22, verbose_name="number")


class Migration(migrations.Migration):
    atomic = False  # indexes built and dropped CONCURRENTLY

    dependencies = [
        ("catalog", "0012_data_dictionary"),
        ("orders", "0026_data_dictionary"),
    ]

    operations = [
        add_unique_concurrently(
            "orders",
            migrations.AddConstraint(
                model_name="order",
                constraint=models.UniqueConstraint(fields=("number",), name="orders_order_number_uniq"),
            ),
        ),
        drop_index_concurrently(
            migrations.RemoveConstraint(model_name="order", name="orders_order_number_live_uniq"),
            create_sql=(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS orders_order_number_live_uniq "
                "ON orders_order (number) WHERE deleted_at IS NULL"
            ),
        ),
        add_index_concurrently(
            "orders",
            migrations.AddIndex(
                model_name="order",
                index=models.Index(
                    django.db.models.functions.text.Length("number"),
                    models.F("number"),
                    name="orders_order_number_sort",
                ),
            ),
        ),
        *comments_only(
            "orders",
            [
                migrations.AlterField(model_name="historicalorder", name="number", field=number_field()),
                migrations.AlterField(model_name="order", name="number", field=number_field()),
            ],
        ),
    ]
