"""Capture triggers on every synced table: changed row ids go to the change feed (sync.feed).

Written out as `sync.feed.capture_sql()` generated them when this migration was made, so the
migration stays what it was whatever the entity list becomes; a change to the list (a table,
a priority, a child) needs a migration of its own that drops and recreates the triggers concerned
(tests/sync/test_feed.py compares the installed triggers with the code).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("catalog", "0005_uuid7_ids"),
        ("orders", "0010_order_place_v4"),  # okada_uuid7()
    ]

    operations = [
        # orders_order -> orders (priority 0, entity 1)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 1,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 1,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
        IF TG_OP = 'UPDATE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 2,
               g.ids[i:i + 999]
          FROM (SELECT n.vendor_id AS vendor_id, array_agg(c.id) AS ids
                  FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN orders_orderitem c ON c.order_id = n.id WHERE (n.deleted_at IS NULL) <> (o.deleted_at IS NULL)
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 8,
               g.ids[i:i + 999]
          FROM (SELECT n.vendor_id AS vendor_id, array_agg(c.id) AS ids
                  FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN orders_payment c ON c.order_id = n.id WHERE (n.deleted_at IS NULL) <> (o.deleted_at IS NULL)
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_orders() IS 'Offline sync: records the ids of changed orders_order rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON orders_order
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_orders();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON orders_order
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_orders();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON orders_order
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_orders();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON orders_order;
DROP TRIGGER IF EXISTS okada_sync_update ON orders_order;
DROP TRIGGER IF EXISTS okada_sync_delete ON orders_order;
DROP FUNCTION IF EXISTS okada_sync_capture_orders();""",
        ),
        # orders_orderitem -> order_items (priority 0, entity 2)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_order_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 2,
               g.ids[i:i + 999]
          FROM (SELECT o.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r JOIN orders_order o ON o.id = r.order_id WHERE o.vendor_id IS NOT NULL
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 2,
               g.ids[i:i + 999]
          FROM (SELECT o.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r JOIN orders_order o ON o.id = r.order_id WHERE o.vendor_id IS NOT NULL
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_order_items() IS 'Offline sync: records the ids of changed orders_orderitem rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON orders_orderitem
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_order_items();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON orders_orderitem
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_order_items();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON orders_orderitem
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_order_items();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON orders_orderitem;
DROP TRIGGER IF EXISTS okada_sync_update ON orders_orderitem;
DROP TRIGGER IF EXISTS okada_sync_delete ON orders_orderitem;
DROP FUNCTION IF EXISTS okada_sync_capture_order_items();""",
        ),
        # catalog_stock -> stock (priority 0, entity 3)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 3,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 3,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_stock() IS 'Offline sync: records the ids of changed catalog_stock rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON catalog_stock
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_stock();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON catalog_stock
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_stock();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON catalog_stock
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_stock();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON catalog_stock;
DROP TRIGGER IF EXISTS okada_sync_update ON catalog_stock;
DROP TRIGGER IF EXISTS okada_sync_delete ON catalog_stock;
DROP FUNCTION IF EXISTS okada_sync_capture_stock();""",
        ),
        # catalog_category -> categories (priority 1, entity 4)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_categories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 4,
               g.ids[i:i + 999]
          FROM (SELECT NULL::uuid AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 4,
               g.ids[i:i + 999]
          FROM (SELECT NULL::uuid AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_categories() IS 'Offline sync: records the ids of changed catalog_category rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON catalog_category
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_categories();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON catalog_category
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_categories();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON catalog_category
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_categories();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON catalog_category;
DROP TRIGGER IF EXISTS okada_sync_update ON catalog_category;
DROP TRIGGER IF EXISTS okada_sync_delete ON catalog_category;
DROP FUNCTION IF EXISTS okada_sync_capture_categories();""",
        ),
        # orders_zone -> zones (priority 1, entity 5)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_zones() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 5,
               g.ids[i:i + 999]
          FROM (SELECT NULL::uuid AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 5,
               g.ids[i:i + 999]
          FROM (SELECT NULL::uuid AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_zones() IS 'Offline sync: records the ids of changed orders_zone rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON orders_zone
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_zones();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON orders_zone
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_zones();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON orders_zone
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_zones();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON orders_zone;
DROP TRIGGER IF EXISTS okada_sync_update ON orders_zone;
DROP TRIGGER IF EXISTS okada_sync_delete ON orders_zone;
DROP FUNCTION IF EXISTS okada_sync_capture_zones();""",
        ),
        # catalog_product -> products (priority 1, entity 6)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_products() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 6,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 1, 6,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
        IF TG_OP = 'UPDATE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 0, 3,
               g.ids[i:i + 999]
          FROM (SELECT n.vendor_id AS vendor_id, array_agg(c.id) AS ids
                  FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN catalog_stock c ON c.product_id = n.id WHERE (n.deleted_at IS NULL) <> (o.deleted_at IS NULL)
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_products() IS 'Offline sync: records the ids of changed catalog_product rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON catalog_product
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_products();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON catalog_product
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_products();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON catalog_product
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_products();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON catalog_product;
DROP TRIGGER IF EXISTS okada_sync_update ON catalog_product;
DROP TRIGGER IF EXISTS okada_sync_delete ON catalog_product;
DROP FUNCTION IF EXISTS okada_sync_capture_products();""",
        ),
        # catalog_vendor -> vendors (priority 2, entity 7)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_vendors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 7,
               g.ids[i:i + 999]
          FROM (SELECT r.id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 7,
               g.ids[i:i + 999]
          FROM (SELECT r.id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_vendors() IS 'Offline sync: records the ids of changed catalog_vendor rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON catalog_vendor
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_vendors();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON catalog_vendor
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_vendors();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON catalog_vendor
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_vendors();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON catalog_vendor;
DROP TRIGGER IF EXISTS okada_sync_update ON catalog_vendor;
DROP TRIGGER IF EXISTS okada_sync_delete ON catalog_vendor;
DROP FUNCTION IF EXISTS okada_sync_capture_vendors();""",
        ),
        # orders_payment -> payments (priority 2, entity 8)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 8,
               g.ids[i:i + 999]
          FROM (SELECT o.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r JOIN orders_order o ON o.id = r.order_id WHERE o.vendor_id IS NOT NULL
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 8,
               g.ids[i:i + 999]
          FROM (SELECT o.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r JOIN orders_order o ON o.id = r.order_id WHERE o.vendor_id IS NOT NULL
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_payments() IS 'Offline sync: records the ids of changed orders_payment rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON orders_payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_payments();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON orders_payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_payments();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON orders_payment
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_payments();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON orders_payment;
DROP TRIGGER IF EXISTS okada_sync_update ON orders_payment;
DROP TRIGGER IF EXISTS okada_sync_delete ON orders_payment;
DROP FUNCTION IF EXISTS okada_sync_capture_payments();""",
        ),
        # sync_conflict -> conflicts (priority 2, entity 9)
        migrations.RunSQL(
            r"""
CREATE OR REPLACE FUNCTION okada_sync_capture_conflicts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 9,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM old_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    ELSE
        INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, 2, 9,
               g.ids[i:i + 999]
          FROM (SELECT r.vendor_id AS vendor_id, array_agg(r.id) AS ids
                  FROM new_rows r
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), 1000) AS i;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION okada_sync_capture_conflicts() IS 'Offline sync: records the ids of changed sync_conflict rows in sync_change.';
CREATE TRIGGER okada_sync_insert AFTER INSERT ON sync_conflict
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_conflicts();
CREATE TRIGGER okada_sync_update AFTER UPDATE ON sync_conflict
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_conflicts();
CREATE TRIGGER okada_sync_delete AFTER DELETE ON sync_conflict
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION okada_sync_capture_conflicts();
""",
            r"""DROP TRIGGER IF EXISTS okada_sync_insert ON sync_conflict;
DROP TRIGGER IF EXISTS okada_sync_update ON sync_conflict;
DROP TRIGGER IF EXISTS okada_sync_delete ON sync_conflict;
DROP FUNCTION IF EXISTS okada_sync_capture_conflicts();""",
        ),
    ]
