"""SKUs in Unicode NFC, step 2 of 2: VALIDATE the CHECK 0013 added NOT VALID.

A SKU written by the code of before this release between 0013's read of the table and its
commit is not NFC yet: normalised here first (the same function, the same refusal of
collisions). None can be written since 0013 committed, so the validation cannot fail. VALIDATE
reads the whole table under a SHARE UPDATE EXCLUSIVE lock: reads and writes go on meanwhile.
"""

from typing import Any

from django.db import migrations

from catalog.skus import normalize_stored_skus


def normalize(apps: Any, schema_editor: Any) -> None:
    normalize_stored_skus(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0013_product_sku_nfc")]

    operations = [
        migrations.RunPython(normalize, migrations.RunPython.noop, elidable=False),
        migrations.RunSQL(
            "ALTER TABLE catalog_product VALIDATE CONSTRAINT catalog_product_sku_nfc", migrations.RunSQL.noop
        ),
    ]
