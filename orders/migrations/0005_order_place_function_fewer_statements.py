"""okada_order_place() v2: the same contract as migration 0004 in fewer statements.

The items are parsed once into arrays; one query after the row locks finds unknown products,
short stock and the subtotal together; the reservation and its ledger rows, and the order and
its history row, are each one statement (data-modifying CTEs).
"""

from django.db import migrations

SQL = r"""
CREATE OR REPLACE FUNCTION public.okada_order_place(
    p_vendor uuid, p_customer uuid, p_zone uuid, p_items jsonb,
    p_payment_method text, p_channel text, p_address text, p_note text,
    p_expires_minutes integer, p_actor text, p_actor_user integer, p_reason text
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    v_ids uuid[];
    v_qty integer[];
    v_fee bigint;
    v_subtotal bigint;
    v_missing jsonb;
    v_short jsonb;
    v_order uuid := gen_random_uuid();
    v_number text;
    v_expires timestamptz;
BEGIN
    PERFORM 1 FROM catalog_vendor WHERE id = p_vendor AND status = 'active' AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('error', 'vendor_not_active');
    END IF;

    SELECT array_agg(l.product_id ORDER BY l.product_id), array_agg(l.quantity ORDER BY l.product_id)
      INTO v_ids, v_qty
      FROM jsonb_to_recordset(p_items) AS l(product_id uuid, quantity integer);

    -- Lock the stock rows in product-id order, then check with the latest committed values.
    PERFORM 1 FROM catalog_stock WHERE product_id = ANY(v_ids) ORDER BY product_id FOR UPDATE;

    SELECT coalesce(jsonb_agg(l.id) FILTER (WHERE p.id IS NULL), '[]'::jsonb),
           coalesce(jsonb_agg(jsonb_build_object(
               'product_id', l.id, 'sku', p.sku, 'requested', l.qty,
               'available', greatest(coalesce(s.on_hand - s.reserved, 0), 0)))
               FILTER (WHERE p.id IS NOT NULL AND (s.product_id IS NULL OR s.on_hand - s.reserved < l.qty)),
               '[]'::jsonb),
           sum(p.price_xaf * l.qty)
      INTO v_missing, v_short, v_subtotal
      FROM unnest(v_ids, v_qty) AS l(id, qty)
      LEFT JOIN catalog_product p
        ON p.id = l.id AND p.vendor_id = p_vendor AND p.is_active AND p.deleted_at IS NULL
      LEFT JOIN catalog_stock s ON s.product_id = p.id;
    IF jsonb_array_length(v_missing) > 0 THEN
        RETURN jsonb_build_object('error', 'product_unavailable', 'product_ids', v_missing);
    END IF;
    IF jsonb_array_length(v_short) > 0 THEN
        RETURN jsonb_build_object('error', 'out_of_stock', 'items', v_short);
    END IF;

    v_number := 'OK-' || lpad(nextval('orders_order_number_seq')::text, 7, '0');

    WITH reserved AS (
        UPDATE catalog_stock s
           SET reserved = s.reserved + l.qty, version = s.version + 1, updated_at = now()
          FROM unnest(v_ids, v_qty) AS l(id, qty)
         WHERE s.product_id = l.id
        RETURNING s.product_id, l.qty
    )
    INSERT INTO catalog_stockmovement (
        id, created_at, product_id, vendor_id, delta, kind, reason, reference, actor)
    SELECT gen_random_uuid(), now(), product_id, p_vendor, qty, 'reserve', 'reserve', v_number, p_actor
      FROM reserved;

    SELECT delivery_fee_xaf INTO v_fee FROM orders_zone WHERE id = p_zone;
    v_expires := CASE WHEN p_expires_minutes IS NULL THEN NULL
                      ELSE now() + make_interval(mins => p_expires_minutes) END;

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
    )
    INSERT INTO orders_historicalorder (
        id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
        payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
        placed_at, expires_at, note, customer_id, vendor_id, zone_id,
        history_date, history_change_reason, history_type, history_user_id)
    SELECT id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
           payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
           placed_at, expires_at, note, customer_id, vendor_id, zone_id,
           now(), p_reason, '+', p_actor_user
      FROM placed;

    INSERT INTO orders_orderitem (
        id, created_at, updated_at, order_id, product_id, sku, name, unit_price_xaf, quantity,
        line_total_xaf)
    SELECT gen_random_uuid(), now(), now(), v_order, p.id, p.sku, p.name, p.price_xaf, l.qty,
           p.price_xaf * l.qty
      FROM unnest(v_ids, v_qty) AS l(id, qty)
      JOIN catalog_product p ON p.id = l.id;

    INSERT INTO orders_orderevent (
        id, created_at, order_id, kind, from_status, to_status, actor, actor_user_id, data)
    VALUES (
        gen_random_uuid(), now(), v_order, 'placed', '', 'pending', p_actor, p_actor_user,
        jsonb_build_object('channel', p_channel, 'total_xaf', v_subtotal + v_fee));

    RETURN jsonb_build_object(
        'id', v_order, 'number', v_number, 'subtotal_xaf', v_subtotal,
        'delivery_fee_xaf', v_fee, 'placed_at', now(), 'expires_at', v_expires);
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0004_order_place_function")]

    # Backwards: v2 keeps v1's contract, so leaving it in place is a correct reverse.
    operations = [migrations.RunSQL(SQL, migrations.RunSQL.noop)]
