"""The storefront's product list of the whole marketplace, one index per ordering: without them
each page sorted every orderable product (about a second on a million). Partial (live, active
products: the rows the storefront may list), built CONCURRENTLY so that the catalog keeps being
written while they are made (okada.core.operations: each can run again after an interruption)."""

from django.db import migrations, models

from okada.core.operations import add_index_concurrently

ORDERABLE_ROWS = models.Q(deleted_at__isnull=True, is_active=True)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("catalog", "0015_product_sku_visible_characters")]

    operations = [
        add_index_concurrently(
            "catalog",
            migrations.AddIndex(
                model_name="product",
                index=models.Index(
                    fields=[key, "id"], condition=ORDERABLE_ROWS, name=f"catalog_product_shop_{suffix}"
                ),
            ),
        )
        for key, suffix in (
            ("updated_at", "upd"),
            ("created_at", "created"),
            ("name", "name"),
            ("sku", "sku"),
            ("price_xaf", "price"),
        )
    ]
