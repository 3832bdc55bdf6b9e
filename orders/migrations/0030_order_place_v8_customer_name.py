"""okada_order_place() v8: the order keeps the customer's name it was placed with.

v7 wrote no name on the order, and every reader showed the customer record's: a vendor placing
an order for any phone number (POST /api/v1/orders) was answered with the name the marketplace
holds for that number, also when that person had never ordered from it. v8 takes the name as
one more argument, `p_customer_name`, and writes it into orders_order.customer_name (migration
0029) and its history row, in the statement that writes them already: no statement, lookup or
lock more. The storefront's call passes the name given in the request, the service-level
placement the customer's own name (orders.services).

A new argument changes the signature: v7's function is dropped and v8's created (CREATE OR
REPLACE would leave both overloads), and the reverse drops v8's and creates v7's again. Either
way in one transaction: no placement sees the function missing. Everything else is v7's
(migration 0028).
"""

from importlib import import_module

from django.db import migrations

V7 = import_module("orders.migrations.0028_order_place_v7_same_city")

V7_SIGNATURE = (
    "public.okada_order_place("
    "uuid, uuid, uuid, uuid[], integer[], text, text, text, text, integer, text, integer, text, text, text)"
)
# p_customer_name after p_note, among the arguments every caller gives (those after the first
# with a default must have one too, and the name is never optional).
SIGNATURE = (
    "public.okada_order_place("
    "uuid, uuid, uuid, uuid[], integer[], text, text, text, text, text, integer, text, integer, text, "
    "text, text)"
)

REPLACEMENTS = (
    (
        "CREATE OR REPLACE FUNCTION public.okada_order_place(\n",
        "CREATE FUNCTION public.okada_order_place(\n",
    ),
    (
        "    p_payment_method text, p_channel text, p_address text, p_note text,\n",
        "    p_payment_method text, p_channel text, p_address text, p_note text, p_customer_name text,\n",
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
