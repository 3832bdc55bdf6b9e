"""`GET /orders?q=` a customer's name (orders.models.customer_name_matches): the name each order shows
(Order.shown_customer_name), found through indexes, never by reading a vendor's orders (a scan of
the largest vendor's 15,000 orders, a full-text vector made for each, took 250 ms).

- okada_name_search_vector(name): a name's vector as a product name's (French and English
  stemming over unaccented text, catalog migration 0001's okada_product_search_vector), so that
  okada_search_query() matches it as it matches products. IMMUTABLE and schema-qualified, as
  catalog 0001's functions: pg_restore rebuilds the indexes with an empty search_path.
- orders_order_name_search: GIN over (vendor_id, the vector of the order's own name), for the
  orders that keep one (placed since migration 0029). vendor_id in the GIN (btree_gin, which
  ships with PostgreSQL's contrib as unaccent and pg_trgm do) makes the index intersect a
  vendor's orders with a word's: a first name common in the whole marketplace does not fetch
  every vendor's orders bearing it.
- orders_order_legacy_name: (customer_id, vendor_id) of the orders placed before (their name is
  ''; they show the customer record's name), found from the customers whose name matches
  (orders_customer_name_search): partial, so a new order never enters it.

Every order placed enters orders_order_name_search (its vector made once, on insert; and again
on each update, as an order's updates are never HOT): the cost of the feature on the placement
path, about 10 us of PostgreSQL time an order inserted and 2 to 3 KiB more WAL (figures in
docs/performance.md, 2026-12-05). The GIN's pending list (fastupdate, PostgreSQL's default) is
kept: without it a placement wrote about twice the WAL. Built CONCURRENTLY
(okada.core.operations: writers go on, it runs again after an interruption); orders_order is
not partitioned."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import BtreeGinExtension
from django.contrib.postgres.search import SearchVectorField
from django.db import migrations, models

from okada.core.operations import add_index_concurrently

NAME_VECTOR_SQL = """
CREATE OR REPLACE FUNCTION public.okada_name_search_vector(name text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT public.okada_product_search_vector(name, '', '') $$;
"""
NAME_VECTOR_SQL_REVERSE = "DROP FUNCTION IF EXISTS public.okada_name_search_vector(text);"


def name_vector(field: str) -> models.Func:
    return models.Func(
        models.F(field), function="public.okada_name_search_vector", output_field=SearchVectorField()
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("catalog", "0019_product_sku_trigram"),
        ("orders", "0034_order_place_v9_customer_before_stock"),
    ]

    operations = [
        BtreeGinExtension(),
        migrations.RunSQL(NAME_VECTOR_SQL, NAME_VECTOR_SQL_REVERSE),
        add_index_concurrently(
            "orders",
            migrations.AddIndex(
                model_name="customer",
                index=GinIndex(name_vector("name"), name="orders_customer_name_search"),
            ),
        ),
        add_index_concurrently(
            "orders",
            migrations.AddIndex(
                model_name="order",
                index=GinIndex(
                    models.F("vendor"),
                    name_vector("customer_name"),
                    condition=~models.Q(customer_name=""),
                    name="orders_order_name_search",
                ),
            ),
        ),
        add_index_concurrently(
            "orders",
            migrations.AddIndex(
                model_name="order",
                index=models.Index(
                    fields=["customer", "vendor"],
                    condition=models.Q(customer_name=""),
                    name="orders_order_legacy_name",
                ),
            ),
        ),
    ]
