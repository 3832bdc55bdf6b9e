"""Two partial indexes of the stock ledger, for the admin: its list filtered by a kind staff write
(restock, adjustment, count, return: 0.3 to 1.5 s on 7.5 million movements, the list walking the
primary key back until it found a page of them) and its search by reference (an ILIKE substring
over every partition: 2 to 6 s). Neither holds the movements orders write (reserve, release,
sale): placement, the hot path, writes no entry in them. An order's movements are searched by its
number through its products instead (catalog.selectors.movement_search).

Built partition by partition, CONCURRENTLY (okada.core.operations.add_partitioned_index): orders
keep being placed meanwhile, and the migration runs again after an interruption."""

from django.contrib.postgres.indexes import OpClass
from django.db import migrations, models
from django.db.models.functions import Upper

from okada.core.fields import AnyOf
from okada.core.operations import add_partitioned_index

MANUAL_KINDS = ("restock", "adjustment", "count", "return")
ORDER_KINDS = ("reserve", "release", "sale")  # the others


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("catalog", "0017_vendor_newest_indexes")]

    operations = [
        add_partitioned_index(
            "catalog",
            migrations.AddIndex(
                model_name="stockmovement",
                index=models.Index(
                    fields=["kind", "id"],
                    name="catalog_stockmove_manual_kind",
                    condition=models.Q(AnyOf(models.F("kind"), list(MANUAL_KINDS))),
                ),
            ),
        ),
        add_partitioned_index(
            "catalog",
            migrations.AddIndex(
                model_name="stockmovement",
                index=models.Index(
                    OpClass(Upper("reference"), name="text_pattern_ops"),
                    name="catalog_stockmove_manual_ref",
                    condition=~models.Q(AnyOf(models.F("kind"), list(ORDER_KINDS))) & ~models.Q(reference=""),
                ),
            ),
        ),
    ]
