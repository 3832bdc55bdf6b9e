"""Order numbers that never cut, and no order for a deleted zone or customer (okada_order_place v5).

Numbers. v4 made `'OK-' || lpad(n::text, 7, '0')`, and lpad also *cuts* to 7 characters: from
10,000,000 on, every number came out as OK-1000000 again and every placement failed on the
unique index. okada_order_number(n) is now the one definition of a number (the placement
function and seed_demo both call it): OK- and the sequence's value, zero-padded to at least 7
digits and never cut (OK-0000042, OK-9999999, OK-10000000). The column grows from 20 to 22
characters, so any bigint fits (a metadata-only change in PostgreSQL: no table rewrite). Numbers
of different lengths sort by length, then text (OrderQuerySet.by_number()).

Deleted rows. v4 checked neither the zone's nor the customer's `deleted_at`, and a missing zone
raised an exception (an IntegrityError in Python). The lock-and-check statement now reads both,
by key, in the same statement (no extra round trip), and the function returns the coded errors
`zone_unavailable` and `customer_unavailable` before writing anything.

Otherwise v4 as it was: the same arguments, planner settings, rows written and result.
"""

from importlib import import_module

from django.db import migrations, models

V4 = import_module("orders.migrations.0010_order_place_v4")

NUMBER = r"""
CREATE FUNCTION public.okada_order_number(n bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT 'OK-' || lpad(n::text, greatest(7, length(n::text)), '0')
$$;
COMMENT ON FUNCTION public.okada_order_number(bigint) IS
    'Order number for a value of orders_order_number_seq: OK- and the value, zero-padded to at least '
    '7 digits, never cut (OK-0000042, OK-12345678).';
"""

SQL = r"""
CREATE OR REPLACE FUNCTION public.okada_order_place(
    p_vendor uuid, p_customer uuid, p_zone uuid, p_product_ids uuid[], p_quantities integer[],
    p_payment_method text, p_channel text, p_address text, p_note text,
    p_expires_minutes integer, p_actor text, p_actor_user integer, p_reason text
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public, pg_temp
SET plan_cache_mode = force_generic_plan
-- Every statement reaches a handful of rows by key: plain index scans only (see migration 0010).
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    v_vendor_ok boolean;
    v_customer_ok boolean;
    v_found integer;
    v_short jsonb;
    v_subtotal bigint;
    v_ids uuid[];
    v_qty integer[];
    v_skus text[];
    v_names text[];
    v_prices bigint[];
    v_fee bigint;
    v_order uuid := okada_uuid7();
    v_seq bigint;
    v_number text;
    v_expires timestamptz;
BEGIN
    -- Lock and check in one statement. The FOR UPDATE subquery takes the stock rows in
    -- product-id order (no deadlock between orders sharing products) and returns their latest
    -- committed values; its product columns are the snapshot the items are written from.
    SELECT EXISTS (SELECT FROM catalog_vendor
                    WHERE id = p_vendor AND status = 'active' AND deleted_at IS NULL),
           -- NULL for a deleted or missing zone.
           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL),
           EXISTS (SELECT FROM orders_customer WHERE id = p_customer AND deleted_at IS NULL),
           -- No ORDER BY in the aggregates: they all read the same rows in the same order (the
           -- locking subquery's, by product id), so the arrays stay aligned without six sorts.
           count(*) FILTER (WHERE x.orderable),
           coalesce(jsonb_agg(jsonb_build_object(
               'product_id', x.product_id, 'sku', x.sku, 'requested', x.qty,
               'available', greatest(x.available, 0)))
               FILTER (WHERE x.orderable AND x.available < x.qty), '[]'::jsonb),
           sum(x.price_xaf * x.qty) FILTER (WHERE x.orderable),
           array_agg(x.product_id) FILTER (WHERE x.orderable),
           array_agg(x.qty) FILTER (WHERE x.orderable),
           array_agg(x.sku) FILTER (WHERE x.orderable),
           array_agg(x.name) FILTER (WHERE x.orderable),
           array_agg(x.price_xaf) FILTER (WHERE x.orderable)
      INTO v_vendor_ok, v_fee, v_customer_ok, v_found, v_short, v_subtotal, v_ids, v_qty, v_skus,
           v_names, v_prices
      FROM (
          -- Only key conditions here, both sides: generic plans stay index scans at any size.
          SELECT s.product_id, s.on_hand - s.reserved AS available, p.sku, p.name, p.price_xaf,
                 p.vendor_id = p_vendor AND p.is_active AND p.deleted_at IS NULL AS orderable,
                 p_quantities[array_position(p_product_ids, s.product_id)] AS qty
            FROM catalog_stock s
            JOIN catalog_product p ON p.id = s.product_id
           WHERE s.product_id = ANY(p_product_ids) AND p.id = ANY(p_product_ids)
           ORDER BY s.product_id
             FOR UPDATE OF s
      ) AS x;

    IF NOT v_vendor_ok THEN
        RETURN jsonb_build_object('error', 'vendor_not_active');
    END IF;
    IF v_fee IS NULL THEN
        RETURN jsonb_build_object('error', 'zone_unavailable');
    END IF;
    IF NOT v_customer_ok THEN
        RETURN jsonb_build_object('error', 'customer_unavailable');
    END IF;
    IF v_found < cardinality(p_product_ids) THEN
        RETURN jsonb_build_object('error', 'product_unavailable', 'product_ids', (
            SELECT jsonb_agg(id ORDER BY id) FROM unnest(p_product_ids) AS id
             WHERE id <> ALL(coalesce(v_ids, '{}'))));
    END IF;
    IF jsonb_array_length(v_short) > 0 THEN
        RETURN jsonb_build_object('error', 'out_of_stock', 'items', v_short);
    END IF;

    -- The sequence's value in a variable first: okada_order_number() uses its argument twice, so
    -- the planner inlines it for a variable but not for nextval() (which must run once), and a
    -- call not inlined runs as a SQL function, planned again in every transaction.
    v_seq := nextval('orders_order_number_seq');
    v_number := okada_order_number(v_seq);
    v_expires := CASE WHEN p_expires_minutes IS NULL THEN NULL
                      ELSE now() + make_interval(mins => p_expires_minutes) END;

    -- Every write in one statement. Foreign keys are checked at commit (Django declares them
    -- DEFERRABLE INITIALLY DEFERRED), and the items and event hang off `placed`.
    WITH placed AS (
        INSERT INTO orders_order (
            id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
            payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
            placed_at, expires_at, note, customer_id, vendor_id, zone_id)
        VALUES (
            v_order, now(), now(), NULL, false, v_number, 'pending', p_channel,
            p_payment_method, 'unpaid', v_subtotal, v_fee, v_subtotal + v_fee, p_address,
            now(), v_expires, p_note, p_customer, p_vendor, p_zone)
        RETURNING *
    ), history AS (
        INSERT INTO orders_historicalorder (
            id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
            payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
            placed_at, expires_at, note, customer_id, vendor_id, zone_id,
            history_date, history_change_reason, history_type, history_user_id)
        SELECT id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
               payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
               placed_at, expires_at, note, customer_id, vendor_id, zone_id,
               now(), p_reason, '+', p_actor_user
          FROM placed
    ), items AS (
        INSERT INTO orders_orderitem (
            id, created_at, updated_at, order_id, product_id, sku, name, unit_price_xaf, quantity,
            line_total_xaf)
        SELECT okada_uuid7(), now(), now(), placed.id, l.id, l.sku, l.name, l.price, l.qty,
               l.price * l.qty
          FROM placed, unnest(v_ids, v_qty, v_skus, v_names, v_prices) AS l(id, qty, sku, name, price)
    ), event AS (
        INSERT INTO orders_orderevent (
            id, created_at, order_id, kind, from_status, to_status, actor, actor_user_id, data)
        SELECT okada_uuid7(), now(), placed.id, 'placed', '', 'pending', p_actor, p_actor_user,
               jsonb_build_object('channel', p_channel, 'total_xaf', placed.total_xaf)
          FROM placed
    ), reserved AS (
        UPDATE catalog_stock s
           SET reserved = s.reserved + l.qty, version = s.version + 1, updated_at = now()
          FROM unnest(v_ids, v_qty) AS l(id, qty)
         WHERE s.product_id = ANY(v_ids) AND s.product_id = l.id  -- ANY: an index scan at any size
        RETURNING s.product_id, l.qty
    )
    INSERT INTO catalog_stockmovement (
        id, created_at, product_id, vendor_id, delta, kind, reason, reference, actor)
    SELECT okada_uuid7(), now(), product_id, p_vendor, qty, 'reserve', 'reserve', v_number, p_actor
      FROM reserved;

    RETURN jsonb_build_object(
        'id', v_order, 'number', v_number, 'subtotal_xaf', v_subtotal,
        'delivery_fee_xaf', v_fee, 'placed_at', now(), 'expires_at', v_expires);
END
$$;
"""


def number_field() -> models.CharField:
    return models.CharField(
        db_comment="Human order number, OK- and the sequence, at least 7 digits (OK-0000123); unique.",
        editable=False,
        max_length=22,
        verbose_name="number",
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0014_roles_and_export_pruning")]

    operations = [
        migrations.AlterField(model_name="historicalorder", name="number", field=number_field()),
        migrations.AlterField(model_name="order", name="number", field=number_field()),
        migrations.RunSQL(
            [NUMBER, SQL],
            # v4's CREATE OR REPLACE keeps the signature, so going back is replacing the body.
            [V4.SQL, "DROP FUNCTION public.okada_order_number(bigint)"],
        ),
    ]
