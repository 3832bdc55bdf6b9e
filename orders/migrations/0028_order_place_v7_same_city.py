"""okada_order_place() v7: a vendor delivers in its own city only.

v6 placed an order of a Douala vendor for delivery to a Yaoundé zone (250 km away, for quick
commerce) when the storefront sent that zone. The zone's check now also compares its city with
the vendor's, in the same subquery (no statement more on the hot path): a zone of another city
answers `zone_out_of_area` with the vendor's city, which the services turn into a 400 naming
`zone` (orders.services._refuse). Everything else is v6's as migration 0024 left it.
"""

from importlib import import_module

from django.db import migrations

V6 = import_module("orders.migrations.0024_order_place_v6_locks_its_parents")

ZONE_CHECKED = (
    "           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL\n"
    "               FOR KEY SHARE),\n"
)
ZONE_IN_AREA = (
    "           -- -1 for a zone of another city than the vendor's (no fee is negative: CHECK).\n"
    "           (SELECT CASE WHEN city = (SELECT city FROM catalog_vendor WHERE id = p_vendor)\n"
    "                        THEN delivery_fee_xaf ELSE -1 END\n"
    "              FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL\n"
    "               FOR KEY SHARE),\n"
)
ZONE_REFUSED = (
    "    IF v_fee IS NULL THEN\n"
    "        RETURN jsonb_build_object('error', 'zone_unavailable');\n"
    "    END IF;\n"
)
AREA_REFUSED = (
    "    IF v_fee IS NULL THEN\n"
    "        RETURN jsonb_build_object('error', 'zone_unavailable');\n"
    "    END IF;\n"
    "    IF v_fee < 0 THEN\n"
    "        RETURN jsonb_build_object('error', 'zone_out_of_area',\n"
    "                                  'city', (SELECT city FROM catalog_vendor WHERE id = p_vendor));\n"
    "    END IF;\n"
)


def _same_city(sql: str) -> str:
    for before, after in ((ZONE_CHECKED, ZONE_IN_AREA), (ZONE_REFUSED, AREA_REFUSED)):
        if sql.count(before) != 1:
            raise ValueError(f"v6's check is not where it was: {before.strip()}")
        sql = sql.replace(before, after)
    return sql


SQL = _same_city(V6.SQL)


class Migration(migrations.Migration):
    dependencies = [("orders", "0027_order_number_unique_forever")]

    operations = [migrations.RunSQL(SQL, V6.SQL)]
