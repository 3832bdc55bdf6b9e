"""One vendor's products and stock, newest first (the admin's lists of a vendor): an index on
(vendor, id) each, in place of the vendor's own index (which it serves as well). On the vendor's
index alone, PostgreSQL read the list by walking the whole primary key back to an old vendor's
rows. Built first, then the old index dropped, both CONCURRENTLY and able to run again after an
interruption (okada.core.operations)."""

import django.db.models.deletion
from django.db import migrations, models

from okada.core.operations import add_index_concurrently, drop_field_index


class Migration(migrations.Migration):
    atomic = False  # indexes are built and dropped CONCURRENTLY

    dependencies = [
        ("catalog", "0016_storefront_sort_indexes"),
    ]

    operations = [
        add_index_concurrently(
            "catalog",
            migrations.AddIndex(
                model_name="product",
                index=models.Index(fields=["vendor", "id"], name="catalog_product_vendor_newest"),
            ),
        ),
        add_index_concurrently(
            "catalog",
            migrations.AddIndex(
                model_name="stock",
                index=models.Index(fields=["vendor", "id"], name="catalog_stock_vendor_newest"),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="product",
                name="vendor",
                field=models.ForeignKey(
                    db_comment="Seller.",
                    db_index=False,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="products",
                    to="catalog.vendor",
                    verbose_name="vendor",
                ),
            ),
        ),
        drop_field_index(
            "catalog",
            migrations.AlterField(
                model_name="stock",
                name="vendor",
                field=models.ForeignKey(
                    db_comment="Product's vendor (denormalised).",
                    db_index=False,
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="stocks",
                    to="catalog.vendor",
                    verbose_name="vendor",
                ),
            ),
        ),
    ]
