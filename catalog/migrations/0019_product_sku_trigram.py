"""A trigram index of the products' SKUs (upper case), for the admin's stock search: it matches
each word of the term anywhere in a SKU (Django's `icontains`), which no b-tree serves, so a SKU
nobody has read all the products (0.3 to 0.5 s on a million). With the index, PostgreSQL reads
the few products whose SKU holds the term's trigrams. Products only: placement writes none.

pg_trgm ships with PostgreSQL (contrib), as unaccent (migration 0001) does. The index is built
CONCURRENTLY (okada.core.operations.add_index_concurrently): vendors keep editing meanwhile,
and the migration runs again after an interruption."""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations
from django.db.models.functions import Upper

from okada.core.operations import add_index_concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("catalog", "0018_ledger_manual_kind_indexes")]

    operations = [
        TrigramExtension(),
        add_index_concurrently(
            "catalog",
            migrations.AddIndex(
                model_name="product",
                index=GinIndex(OpClass(Upper("sku"), name="gin_trgm_ops"), name="catalog_product_sku_trgm"),
            ),
        ),
    ]
