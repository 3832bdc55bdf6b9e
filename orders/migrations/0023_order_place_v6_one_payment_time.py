"""okada_order_place() v6, corrected: the payment request's `created_at` and `updated_at` are
one reading of the clock.

v6 wrote them as `clock_timestamp(), clock_timestamp()`: two readings, which differ by a
microsecond or more whenever the clock ticks in between (about one placement in twenty on an
idle machine, more under load). The order placed for a phone number (POST /api/v1/orders)
answers the payment built from `created_at` alone, so its `updated_at` then differed from the
stored row. The signature and everything else are v6's.
"""

from importlib import import_module

from django.db import migrations

V6 = import_module("orders.migrations.0021_order_place_v6")

SIGNATURE = V6.SIGNATURE

TWO_READINGS = """\
            VALUES (
                okada_uuid7(), clock_timestamp(), clock_timestamp(), v_order, p_payment_method,
                p_payment_reference, 'order-placed:' || v_order, v_subtotal + v_fee, NULL,
                'pending', NULL, '[]'::jsonb, false, NULL, NULL)
"""
ONE_READING = """\
            SELECT okada_uuid7(), clock.now, clock.now, v_order, p_payment_method,
                   p_payment_reference, 'order-placed:' || v_order, v_subtotal + v_fee, NULL,
                   'pending', NULL, '[]'::jsonb, false, NULL, NULL
              FROM (SELECT clock_timestamp() AS now) AS clock
"""


def _replacing(sql: str) -> str:
    if sql.count(TWO_READINGS) != 1:
        raise ValueError("v6's payment insert is not where it was")
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(TWO_READINGS, ONE_READING)


SQL = _replacing(V6.SQL)
V6_SQL = V6.SQL.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


class Migration(migrations.Migration):
    dependencies = [("orders", "0022_payment_created_index")]

    operations = [migrations.RunSQL(SQL, V6_SQL)]
