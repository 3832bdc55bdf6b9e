"""okada_order_place() v9: the customer found by phone is key-share-locked before the stock rows.

v8 found the customer by phone with a plain read and key-share-locked it after the stock rows,
in the checking statement. A delete of that customer committing in between was seen there, and
the storefront's placement (orders.services.order_place_for_phone) answered `customer_unavailable`
still holding the stock rows, then created a customer for the number: its insert waited for
another first order of that number, which had inserted its customer and was waiting for those
stock rows. PostgreSQL failed one of the two as a deadlock (a 503 `try_again`, its client had
to send it again).

Now the lookup by phone takes FOR KEY SHARE, before any stock row. A delete in flight is waited
for there, holding no stock row, and then seen (its row no longer matches): `customer_unknown`,
and the caller creates the customer, then places with its id. A delete that comes later waits
for the placement and finds its order (`in_use`). A storefront placement thus takes its customer
(the insert of a new one, or the key-share lock of the one found) before its stock rows, and no
placement waits for a customer while holding them but for a delete's FOR UPDATE (a delete locks
no stock row).

A placement by customer id (orders.services.order_place, and the storefront's second call with
the customer it has just created or found) keeps its check in the checking statement, after the
stock rows: it creates no customer after it, and its key-share lock waits only for a delete,
so it closes no cycle, and the hot path keeps its statements. A customer found by phone is not
looked up again there (`v_customer_json IS NOT NULL OR EXISTS (...)`: PostgreSQL runs the
subquery only when it is needed): the storefront's placement does not pay for its new lock.

Same signature: CREATE OR REPLACE, and the reverse puts v8's text back (migration 0030).
"""

from importlib import import_module

from django.db import migrations

V8 = import_module("orders.migrations.0030_order_place_v8_customer_name")

SIGNATURE = V8.SIGNATURE

# v8's function as 0030 created it, made replaceable (same signature).
V8_SQL = V8._with_customer_name(V8.V7.SQL).replace(
    "CREATE FUNCTION public.okada_order_place(\n", "CREATE OR REPLACE FUNCTION public.okada_order_place(\n", 1
)

REPLACEMENTS = (
    (
        "    -- The customer by phone, before any lock: a caller told `customer_unknown` holds nothing\n"
        "    -- while it creates the customer (which may wait for a concurrent first order of that number).\n"
        "    IF v_customer IS NULL THEN\n"
        "        SELECT c.id, jsonb_build_object('id', c.id, 'name', c.name, 'phone', c.phone)\n"
        "          INTO v_customer, v_customer_json\n"
        "          FROM orders_customer c\n"
        "         WHERE c.phone = p_customer_phone AND c.deleted_at IS NULL;\n",
        "    -- The customer by phone, key-share-locked before any stock row (v9, migration 0034): a\n"
        "    -- delete in flight is waited for here, holding no stock row, and its customer then not\n"
        "    -- found. A caller told `customer_unknown` creates the customer holding no stock row, so\n"
        "    -- its insert (which may wait for a concurrent first order of that number) closes no cycle.\n"
        "    IF v_customer IS NULL THEN\n"
        "        SELECT c.id, jsonb_build_object('id', c.id, 'name', c.name, 'phone', c.phone)\n"
        "          INTO v_customer, v_customer_json\n"
        "          FROM orders_customer c\n"
        "         WHERE c.phone = p_customer_phone AND c.deleted_at IS NULL\n"
        "           FOR KEY SHARE;\n",
    ),
    (
        "           EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL\n"
        "                       FOR KEY SHARE),\n",
        "           -- Found by phone: locked live above already (the subquery is then not run).\n"
        "           v_customer_json IS NOT NULL\n"
        "               OR EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL\n"
        "                              FOR KEY SHARE),\n",
    ),
)


def _customer_first(sql: str) -> str:
    for before, after in REPLACEMENTS:
        if sql.count(before) != 1:
            raise ValueError(f"v8's text is not where it was: {before.strip()}")
        sql = sql.replace(before, after)
    return sql


SQL = _customer_first(V8_SQL)


class Migration(migrations.Migration):
    dependencies = [("orders", "0033_order_updated_at_moves_forward")]

    operations = [migrations.RunSQL(SQL, V8_SQL)]
