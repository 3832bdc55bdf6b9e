# What each staff role may do in the catalog (okada.core.roles).
from django.db import migrations

from okada.core.roles import FINANCE, OPERATIONS, STOCK, SUPPORT, grant_operation


def crud(*models):
    return [f"catalog.{verb}_{m}" for m in models for verb in ("view", "add", "change", "delete")]


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0008_stock_low_index"),
        ("core", "0006_roles"),
    ]

    operations = [
        grant_operation(
            {
                OPERATIONS: [
                    *crud("vendor", "vendormember", "category", "product"),
                    "catalog.view_stock",
                    "catalog.view_stockmovement",
                    "catalog.adjust_stock",
                    "catalog.count_stock",
                ],
                STOCK: [
                    "catalog.view_vendor",
                    "catalog.view_category",
                    "catalog.view_product",
                    "catalog.view_stock",
                    "catalog.view_stockmovement",
                    "catalog.adjust_stock",
                    "catalog.count_stock",
                ],
                # Read-only, for the vendor filter and names on the orders they follow.
                SUPPORT: ["catalog.view_vendor"],
                FINANCE: ["catalog.view_vendor"],
            }
        ),
    ]
