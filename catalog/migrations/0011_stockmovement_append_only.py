"""The stock ledger is append-only in the database, not only by convention: UPDATE and DELETE of
catalog_stockmovement rows (through the parent or a partition) fail. A wrong movement is
corrected by another movement (an adjustment through the admin or the services). Partition
maintenance still moves rows out of DEFAULT and retires months (okada.partitions.ddl)."""

from django.db import migrations

from okada.partitions.ddl import append_only


class Migration(migrations.Migration):
    dependencies = [("catalog", "0010_index_budget")]

    operations = [append_only("catalog_stockmovement", hint="record a correcting movement instead")]
