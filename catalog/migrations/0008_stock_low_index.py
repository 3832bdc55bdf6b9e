# The dashboard's low-stock panel reads this partial index (a few rows), never the million
# stock rows. Built CONCURRENTLY: order placement keeps writing stock meanwhile.
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0007_admin_labels_members_stock_level")]

    operations = [
        AddIndexConcurrently(
            model_name="stock",
            index=models.Index(condition=models.Q(("level__lt", 20)), fields=["level"], name="catalog_stock_low"),
        ),
    ]
