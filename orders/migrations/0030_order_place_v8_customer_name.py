"""okada_order_place() v8: the order keeps the customer's name it was placed with.

v7 wrote no name on the order, and every reader showed the customer record's: a vendor placing
an order for any phone number (POST /api/v1/orders) was answered with the name the marketplace
holds for that number, also when that person had never ordered from it. v8 takes the name as
one more argument, `p_customer_name`, and writes it into orders_order.customer_name (migration
0029) and its history row, in the statement that writes them already: no statement, lookup or
lock more. The storefront's call passes the name given in the request, the service-level
placement the customer's own name (orders.services).

The argument comes last, defaulting to '' (no name of the order's own, as orders placed before):
the code of the release before, still running between this migration and its restart, calls
the function with v7's 15 arguments and goes on placing orders (they show the customer's name,
as before). A new argument changes the signature all the same: v7's function is dropped and
v8's created (CREATE OR REPLACE would leave both overloads, and a call with 15 arguments would
then be ambiguous), and the reverse drops v8's and creates v7's again, in one transaction: no
placement sees the function missing. Everything else is v7's (migration 0028).
"""

from importlib import import_module

from django.db import migrations

V7 = import_module("orders.migrations.0028_order_place_v7_same_city")

V7_SIGNATURE = (
    "public.okada_order_place("
    "uuid, uuid, uuid, uuid[], integer[], text, text, text, text, integer, text, integer, text, text, text)"
)
SIGNATURE = f"{V7_SIGNATURE[:-1]}, text)"  # p_customer_name last

REPLACEMENTS = (
    (
        "CREATE OR REPLACE FUNCTION public.okada_order_place(\n",
        "CREATE FUNCTION public.okada_order_place(\n",
    ),
    (
        "    p_customer_phone text DEFAULT NULL, p_payment_reference text DEFAULT NULL\n",
        "    p_customer_phone text DEFAULT NULL, p_payment_reference text DEFAULT NULL,\n"
        "    -- '' when not given: a caller of v7 (the release before, until it restarts).\n"
        "    p_customer_name text DEFAULT ''\n",
    ),
    # The order row.
    (
        "            placed_at, expires_at, note, customer_id, vendor_id, zone_id)\n"
        "        VALUES (\n",
        "            placed_at, expires_at, note, customer_name, customer_id, vendor_id, zone_id)\n"
        "        VALUES (\n",
    ),
    (
        "            now(), v_expires, p_note, v_customer, p_vendor, p_zone)\n",
        "            now(), v_expires, p_note, p_customer_name, v_customer, p_vendor, p_zone)\n",
    ),
    # Its history row, copied from it.
    (
        "            placed_at, expires_at, note, customer_id, vendor_id, zone_id,\n"
        "            history_date, history_change_reason, history_type, history_user_id)\n",
        "            placed_at, expires_at, note, customer_name, customer_id, vendor_id, zone_id,\n"
        "            history_date, history_change_reason, history_type, history_user_id)\n",
    ),
    (
        "               placed_at, expires_at, note, customer_id, vendor_id, zone_id,\n"
        "               now(), p_reason, '+', p_actor_user\n",
        "               placed_at, expires_at, note, customer_name, customer_id, vendor_id, zone_id,\n"
        "               now(), p_reason, '+', p_actor_user\n",
    ),
)


def _with_customer_name(sql: str) -> str:
    for before, after in REPLACEMENTS:
        if sql.count(before) != 1:
            raise ValueError(f"v7's text is not where it was: {before.strip()}")
        sql = sql.replace(before, after)
    return sql


SQL = f"DROP FUNCTION {V7_SIGNATURE};\n{_with_customer_name(V7.SQL)}"
REVERSE_SQL = f"DROP FUNCTION {SIGNATURE};\n{V7.SQL}"


class Migration(migrations.Migration):
    dependencies = [("orders", "0029_order_customer_name")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
