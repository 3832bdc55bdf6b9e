"""okada_order_place() v10: the order's alias is written against the customer's name under its lock.

The order keeps the name its placement gives (`p_customer_name`): the storefront's, or for a
staff placement (orders.services.order_place) the name of the customer object at hand. When that
name is not the customer record's, the orders' name search finds the order only through an
alias (orders_customer_alias, migration 0036). The services compared the given name with the
customer as Python had read it, before the placement's lock: a rename committing in between
(after staff opened the customer, or after a first order of a number read the customer another
first order had just made) left an order showing the old name, a record with the new one, and no
alias. The rename's own aliases (orders.services.customer_update) were written before the order
existed: the name search could never find that order by the name it shows.

Now the placement reads the customer's name where it locks the row (FOR KEY SHARE, which a
rename's FOR UPDATE waits for, and which reads the row's latest committed version), and writes
the alias itself when the name given is another, in a statement only that rare case runs. The
common path keeps its statements: the lookup by phone reads the name in the statement that
locked the row already, and a placement by id reads it in the checking statement instead of the
bare EXISTS (a customer found by phone is still not looked up again: COALESCE runs the subquery
only when the phone's lookup found nothing).

Same signature: CREATE OR REPLACE, and the reverse puts v9's text back (migration 0034). The code
of the release before, still running until its restart, writes the storefront's alias itself as
well: the second insert does nothing (ON CONFLICT DO NOTHING).
"""

from importlib import import_module

from django.db import migrations

V9 = import_module("orders.migrations.0034_order_place_v9_customer_before_stock")

SIGNATURE = V9.SIGNATURE

REPLACEMENTS = (
    ("    v_customer_ok boolean;\n", "    v_customer_name text;\n"),
    (
        "        SELECT c.id, jsonb_build_object('id', c.id, 'name', c.name, 'phone', c.phone)\n"
        "          INTO v_customer, v_customer_json\n",
        "        SELECT c.id, c.name, jsonb_build_object('id', c.id, 'name', c.name, 'phone', c.phone)\n"
        "          INTO v_customer, v_customer_name, v_customer_json\n",
    ),
    (
        "           -- Found by phone: locked live above already (the subquery is then not run).\n"
        "           v_customer_json IS NOT NULL\n"
        "               OR EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL\n"
        "                              FOR KEY SHARE),\n",
        "           -- The customer's name under its lock (v10), NULL for a deleted or missing one. Found\n"
        "           -- by phone: locked live above already (the subquery is then not run).\n"
        "           coalesce(v_customer_name,\n"
        "                    (SELECT name FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL\n"
        "                        FOR KEY SHARE)),\n",
    ),
    (
        "      INTO v_vendor_status, v_fee, v_customer_ok, v_found,",
        "      INTO v_vendor_status, v_fee, v_customer_name, v_found,",
    ),
    (
        "    IF NOT v_customer_ok THEN\n",
        "    IF v_customer_name IS NULL THEN\n",
    ),
    (
        "    -- The mobile-money request, as orders.services.payment_record writes one, in a statement\n",
        "    -- The order shows a name that is not the customer record's, as read under the record's\n"
        "    -- lock (v10, migration 0038): the orders' name search finds it through an alias\n"
        "    -- (orders.models.CustomerAlias). Rare, so in a statement of its own. A rename waits for\n"
        "    -- this placement's lock (orders.services.customer_update) and then sees its order.\n"
        "    IF p_customer_name <> '' AND p_customer_name <> v_customer_name THEN\n"
        "        INSERT INTO orders_customer_alias (vendor_id, customer_id, name)\n"
        "        VALUES (p_vendor, v_customer, p_customer_name)\n"
        "        ON CONFLICT DO NOTHING;\n"
        "    END IF;\n"
        "\n"
        "    -- The mobile-money request, as orders.services.payment_record writes one, in a statement\n",
    ),
)


def _alias_under_lock(sql: str) -> str:
    for before, after in REPLACEMENTS:
        if sql.count(before) != 1:
            raise ValueError(f"v9's text is not where it was: {before.strip()}")
        sql = sql.replace(before, after)
    return sql


SQL = _alias_under_lock(V9.SQL)


class Migration(migrations.Migration):
    dependencies = [("orders", "0037_customer_alias_verbose_names")]

    operations = [migrations.RunSQL(SQL, V9.SQL)]
