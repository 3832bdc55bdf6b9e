"""The order timeline is append-only in the database, not only by convention: UPDATE and DELETE
of orders_orderevent rows (through the parent or a partition) fail. What an event got wrong is
told by a later one (a note on the order). Partition maintenance still moves rows out of DEFAULT
and retires months (okada.partitions.ddl)."""

from django.db import migrations

from okada.partitions.ddl import append_only


class Migration(migrations.Migration):
    dependencies = [("orders", "0024_order_place_v6_locks_its_parents")]

    operations = [append_only("orders_orderevent", hint="add a note to the order instead")]
