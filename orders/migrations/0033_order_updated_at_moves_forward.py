"""An order's `updated_at` only moves forward: a change stamped before the time the row already
has (a web server whose clock is behind another's) is stamped one microsecond after it.

The sync download walks a vendor's orders by (updated_at, id) and brings each order's items and
payments with it (sync.feed). An order changed during a download comes again through the change
feed, but its unchanged items and payments do not: had the change moved the order behind the
download's cursor, a device would never get them. Stamping strictly later (not merely keeping the
old time) also keeps every change visible to the checks that compare `updated_at` with the value
staff saw (sync conflicts). A statement that leaves `updated_at` as it was is left alone (a
stamp equal to the old one cannot be told from it); the trigger's WHEN clause keeps the usual
update (a later time) from calling the function at all."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION okada_updated_at_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := OLD.updated_at + interval '1 microsecond';
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION okada_updated_at_forward() IS
    'Stamps a change one microsecond after the row''s updated_at when its writer''s clock is behind.';
CREATE TRIGGER okada_updated_at_forward BEFORE UPDATE ON orders_order
    FOR EACH ROW
    WHEN (NEW.updated_at < OLD.updated_at)
    EXECUTE FUNCTION okada_updated_at_forward();
"""

REVERSE = """
DROP TRIGGER okada_updated_at_forward ON orders_order;
DROP FUNCTION okada_updated_at_forward();
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0032_order_event_admin_indexes")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
