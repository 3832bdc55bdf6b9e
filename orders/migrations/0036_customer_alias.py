"""`GET /orders?q=` a customer's name without an index on every order (orders.models
customer_name_matches): migration 0035's GIN over each order's own name (orders_order_name_search)
is dropped, as is its partial (customer, vendor) index of the orders without a name
(orders_order_legacy_name). Every placement entered that GIN (its pending list one spot every
placement wrote): about a tenth of placement throughput (bench order_place, 2026-12-05).

In their place, orders_customer_alias (orders.models.CustomerAlias): for each vendor and customer,
the names its orders show that are not the customer record's name. Rare: a placement writes one
only when the name given differs from the record's (orders.services.order_place_for_phone), and
a rename of a customer by staff for the orders that showed the old name (customer_update). The
search takes the customers whose record name matches (orders_customer_name_search, kept from 0035:
customers are inserted rarely) and those of the aliases that match (orders_alias_name_search,
vendor_id in the GIN through btree_gin), then their orders through (customer, -placed_at), each
checked on the name it shows.

The backfill writes the aliases of the orders placed so far (one INSERT ... SELECT DISTINCT over
the orders with a name of their own; ON CONFLICT DO NOTHING, so it may run again). Orders placed
by code older than this migration while it runs write no alias: run the migration with the new
code serving, or run it again after (the index drops are IF EXISTS, the table is kept).
The drops are CONCURRENTLY (okada.core.operations.drop_index_concurrently: writers go on);
reversible, the reverse builds them again CONCURRENTLY.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models

from okada.core.operations import drop_index_concurrently

BACKFILL_SQL = """
INSERT INTO orders_customer_alias (vendor_id, customer_id, name)
SELECT DISTINCT o.vendor_id, o.customer_id, o.customer_name
  FROM orders_order o
  JOIN orders_customer c ON c.id = o.customer_id
 WHERE o.customer_name <> '' AND o.customer_name <> c.name
ON CONFLICT DO NOTHING
"""

NAME_SEARCH_SQL = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_order_name_search ON orders_order USING gin "
    "(vendor_id, public.okada_name_search_vector(customer_name)) WHERE NOT (customer_name = '')"
)
LEGACY_NAME_SQL = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_order_legacy_name ON orders_order "
    "(customer_id, vendor_id) WHERE customer_name = ''"
)


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("catalog", "0019_product_sku_trigram"),
        ("orders", "0035_order_name_search"),
    ]

    operations = [
        # A new table: its indexes are built plainly (nothing reads or writes it yet).
        migrations.CreateModel(
            name="CustomerAlias",
            fields=[
                ("id", models.BigAutoField(db_comment="Row id.", primary_key=True, serialize=False)),
                (
                    "name",
                    models.CharField(
                        db_comment="The name the orders show (their customer_name), not the customer record's.",
                        max_length=200,
                    ),
                ),
                (
                    "customer",
                    models.ForeignKey(
                        db_comment="Customer the orders are of.",
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="orders.customer",
                    ),
                ),
                (
                    "vendor",
                    models.ForeignKey(
                        db_comment="Vendor whose orders show this name.",
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="catalog.vendor",
                    ),
                ),
            ],
            options={
                "db_table": "orders_customer_alias",
                "db_table_comment": (
                    "Names a vendor's orders of a customer show that differ from the customer's name: "
                    "the orders' name search finds them through it."
                ),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("vendor", "customer", "name"), name="orders_customer_alias_uniq"
                    ),
                ],
                "indexes": [
                    django.contrib.postgres.indexes.GinIndex(
                        models.F("vendor"),
                        models.Func(
                            models.F("name"),
                            function="public.okada_name_search_vector",
                            output_field=django.contrib.postgres.search.SearchVectorField(),
                        ),
                        name="orders_alias_name_search",
                    ),
                ],
            },
        ),
        migrations.RunSQL(BACKFILL_SQL, migrations.RunSQL.noop, elidable=False),
        drop_index_concurrently(
            migrations.RemoveIndex(model_name="order", name="orders_order_name_search"),
            create_sql=NAME_SEARCH_SQL,
        ),
        drop_index_concurrently(
            migrations.RemoveIndex(model_name="order", name="orders_order_legacy_name"),
            create_sql=LEGACY_NAME_SQL,
        ),
    ]
