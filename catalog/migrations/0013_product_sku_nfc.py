"""SKUs in Unicode NFC, enforced by PostgreSQL (catalog.skus), step 1 of 2.

The stored SKUs that are not NFC are normalised first (`normalize_stored_skus`: it stops the
migration, changing nothing, if two live products of a vendor would then share a SKU, one
created while it runs included; the message names them and says what to do). Then the CHECK is added NOT VALID: from the commit on,
every insert and update is checked, without reading the table under its ACCESS EXCLUSIVE lock
(held only for the catalog change at the end of this transaction). 0014 validates it.
"""

from typing import Any

from django.db import migrations, models

import okada.core.fields
from catalog.skus import normalize_stored_skus


def normalize(apps: Any, schema_editor: Any) -> None:
    normalize_stored_skus(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0012_data_dictionary")]

    operations = [
        # Not reversed: the NFC spelling of a SKU is the same SKU.
        migrations.RunPython(normalize, migrations.RunPython.noop, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="product",
                    constraint=models.CheckConstraint(
                        condition=okada.core.fields.NfcNormalized("sku"), name="catalog_product_sku_nfc"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE catalog_product ADD CONSTRAINT catalog_product_sku_nfc "
                    "CHECK (sku IS NFC NORMALIZED) NOT VALID",
                    # Backwards is the state before this migration: no such constraint.
                    "-- squawk-ignore ban-drop-constraint\n"
                    "ALTER TABLE catalog_product DROP CONSTRAINT IF EXISTS catalog_product_sku_nfc",
                ),
            ],
        ),
    ]
