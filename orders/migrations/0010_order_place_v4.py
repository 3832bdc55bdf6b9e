"""okada_order_place() v4: plain index scans only, and time-ordered ids for the rows it writes.

Planner settings. The function's plans are generic (v3, 0006), and a generic plan estimates ten
rows for `= ANY(ids)`. On a small catalog (a few thousand products) that made a sequential scan
of catalog_stock look cheaper than the key lookups, twice per order: the lock-and-check and the
reservation each read every stock row, and the table only grows with the dead versions the
reservations leave. Where it did use the indexes it chose bitmap scans and a hash join, whose
set-up costs more than a few key lookups and whose output needed a sort for the lock order.
Every statement here reaches a handful of rows by key, so the function turns both off for
itself (the caller's session keeps its own settings): the lock-and-check becomes a merge join of
two index scans in product-id order, which is the lock order, with no sort. Measured on a
1,000-product catalog: 0.48 ms per call before, 0.34 ms without sequential scans, about 5% less
again without bitmap scans.

Ids. The rows it writes get UUID v7 ids like the models' (okada.core.ids, migration 0009).
PostgreSQL 15 has no uuidv7() (18 has), so okada_uuid7() makes one: the random bits of
gen_random_uuid() with the first 48 replaced by the Unix time in milliseconds and the version
nibble turned from 4 into 7 (0100 | 0011); the variant bits stay as they are. Being a single
SELECT in SQL, it is inlined where it is called.

Otherwise v3 as it was: the same arguments, result and rows written.
"""

from importlib import import_module

from django.db import migrations

V3 = import_module("orders.migrations.0006_order_place_function_arrays")

SIGNATURE = (
    "public.okada_order_place("
    "uuid, uuid, uuid, uuid[], integer[], text, text, text, text, integer, text, integer, text)"
)

UUID7 = r"""
CREATE FUNCTION public.okada_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(set_bit(set_bit(
               overlay(uuid_send(gen_random_uuid())
                       PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                         FROM 3)
                       FROM 1 FOR 6),
               52, 1), 53, 1), 'hex')::uuid
$$;
COMMENT ON FUNCTION public.okada_uuid7() IS
    'A UUID v7 (RFC 9562): Unix time in milliseconds, then random bits; ids made later sort later.';
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
-- Every statement reaches a handful of rows by key: plain index scans only (see the docstring).
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    v_vendor_ok boolean;
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
    v_number text;
    v_expires timestamptz;
BEGIN
    -- Lock and check in one statement. The FOR UPDATE subquery takes the stock rows in
    -- product-id order (no deadlock between orders sharing products) and returns their latest
    -- committed values; its product columns are the snapshot the items are written from.
    SELECT EXISTS (SELECT FROM catalog_vendor
                    WHERE id = p_vendor AND status = 'active' AND deleted_at IS NULL),
           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone),
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
      INTO v_vendor_ok, v_fee, v_found, v_short, v_subtotal, v_ids, v_qty, v_skus, v_names, v_prices
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

    IF v_fee IS NULL THEN
        RAISE EXCEPTION 'okada_order_place: no zone %', p_zone USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NOT v_vendor_ok THEN
        RETURN jsonb_build_object('error', 'vendor_not_active');
    END IF;
    IF v_found < cardinality(p_product_ids) THEN
        RETURN jsonb_build_object('error', 'product_unavailable', 'product_ids', (
            SELECT jsonb_agg(id ORDER BY id) FROM unnest(p_product_ids) AS id
             WHERE id <> ALL(coalesce(v_ids, '{}'))));
    END IF;
    IF jsonb_array_length(v_short) > 0 THEN
        RETURN jsonb_build_object('error', 'out_of_stock', 'items', v_short);
    END IF;

    v_number := 'OK-' || lpad(nextval('orders_order_number_seq')::text, 7, '0');
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


class Migration(migrations.Migration):
    dependencies = [("orders", "0009_uuid7_ids")]

    operations = [
        migrations.RunSQL(
            [UUID7, SQL],
            [f"DROP FUNCTION {SIGNATURE}", V3.SQL, "DROP FUNCTION public.okada_uuid7()"],
        )
    ]
