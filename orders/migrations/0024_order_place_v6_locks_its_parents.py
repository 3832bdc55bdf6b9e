"""okada_order_place() v6, with the vendor, zone and customer key-share-locked as they are checked.

v6 read them with plain reads: a soft delete of the customer (or zone, or vendor) that committed
while the placement was in flight was not seen by either side. core.soft_delete locks the row
FOR UPDATE and refuses while live orders use it, but it cannot see an order not yet committed,
and the placement, having read the row live, does not look again (its deferred foreign keys are
satisfied by a soft-deleted row). Both committed: a live order of a deleted customer or zone.

Now the checks take FOR KEY SHARE, the lock the order's foreign keys take at commit anyway
(concurrent placements do not wait for each other on it; it only meets a FOR UPDATE). A delete
in flight is waited for and then seen (`customer_unavailable`, `zone_unavailable`,
`vendor_unavailable`); a delete that comes later waits for the placement and then finds its
order (`in_use`). The locks are taken after the stock rows', where the foreign keys took them:
no service locks a vendor, zone or customer and then stock, so no new lock cycle.
The signature and everything else are v6's (migration 0023).
"""

from importlib import import_module

from django.db import migrations

V6 = import_module("orders.migrations.0023_order_place_v6_one_payment_time")

SIGNATURE = V6.SIGNATURE

UNLOCKED = (
    "    SELECT (SELECT status FROM catalog_vendor WHERE id = p_vendor AND deleted_at IS NULL),\n",
    "           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL),\n",
    "           EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL),\n",
)
LOCKED = (
    "    SELECT (SELECT status FROM catalog_vendor WHERE id = p_vendor AND deleted_at IS NULL\n"
    "               FOR KEY SHARE),\n",
    "           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL\n"
    "               FOR KEY SHARE),\n",
    "           EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL\n"
    "                       FOR KEY SHARE),\n",
)


def _locking(sql: str) -> str:
    for before, after in zip(UNLOCKED, LOCKED, strict=True):
        if sql.count(before) != 1:
            raise ValueError(f"v6's check is not where it was: {before.strip()}")
        sql = sql.replace(before, after)
    return sql


SQL = _locking(V6.SQL)


class Migration(migrations.Migration):
    dependencies = [("orders", "0023_order_place_v6_one_payment_time")]

    operations = [migrations.RunSQL(SQL, V6.SQL)]
