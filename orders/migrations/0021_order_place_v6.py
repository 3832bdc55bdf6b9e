"""okada_order_place() v6: the whole of POST /api/v1/orders in one call.

The storefront's order over HTTP cost about ten times the placement itself, mostly in Python and
round trips around the function: the vendor, zone and customer read first, the mobile-money
payment request written afterwards (the order row locked again, the payment looked up by its key,
two savepoints, then the payment and its event), and the items read back for the answer. v6
takes two more arguments, both optional, and does that work inside the call:

- `p_customer_phone`: with `p_customer` NULL, the live customer with this (normalised) phone
  number. It is read before any lock is taken; when there is none the function returns
  `customer_unknown` having changed and locked nothing, so the caller creates the customer (with
  its history, through the service) and calls again.
- `p_payment_reference`: the mobile-money payment request of the new order, `pending`, for its
  total, with this reference and the key `order-placed:<order id>`, and its `payment` event,
  written in the placement's statement. The order is new and not yet visible to anyone, so
  nothing is locked again and no earlier payment can bear that key.

Called with a phone (the API's call), the result also carries the items written (ordered by
name, then id, as the API shows them); with a payment reference, the payment (`payment`: id and time) and, when the customer was found by phone, the customer's
id, name and phone. The vendor check now tells a missing or deleted vendor
(`vendor_unavailable`) from one that is not active (`vendor_not_active`); the errors come in the
order the API checked them before: vendor missing, zone missing, vendor not active, customer.

Called with the first 13 arguments, v6 places an order as v5 did.
"""

from importlib import import_module

from django.db import migrations

V4 = import_module("orders.migrations.0010_order_place_v4")
V5 = import_module("orders.migrations.0015_order_place_v5")

SIGNATURE = (
    "public.okada_order_place("
    "uuid, uuid, uuid, uuid[], integer[], text, text, text, text, integer, text, integer, text, text, text)"
)

SQL = r"""
CREATE FUNCTION public.okada_order_place(
    p_vendor uuid, p_customer uuid, p_zone uuid, p_product_ids uuid[], p_quantities integer[],
    p_payment_method text, p_channel text, p_address text, p_note text,
    p_expires_minutes integer, p_actor text, p_actor_user integer, p_reason text,
    p_customer_phone text DEFAULT NULL, p_payment_reference text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = public, pg_temp
SET plan_cache_mode = force_generic_plan
-- Every statement reaches a handful of rows by key: plain index scans only (see migration 0010).
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    v_customer uuid := p_customer;
    v_customer_json jsonb;
    v_vendor_status text;
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
    v_items jsonb;
    v_payment jsonb;
BEGIN
    -- The customer by phone, before any lock: a caller told `customer_unknown` holds nothing
    -- while it creates the customer (which may wait for a concurrent first order of that number).
    IF v_customer IS NULL THEN
        SELECT c.id, jsonb_build_object('id', c.id, 'name', c.name, 'phone', c.phone)
          INTO v_customer, v_customer_json
          FROM orders_customer c
         WHERE c.phone = p_customer_phone AND c.deleted_at IS NULL;
        IF v_customer IS NULL THEN
            RETURN jsonb_build_object('error', 'customer_unknown');
        END IF;
    END IF;

    -- Lock and check in one statement. The FOR UPDATE subquery takes the stock rows in
    -- product-id order (no deadlock between orders sharing products) and returns their latest
    -- committed values; its product columns are the snapshot the items are written from.
    SELECT (SELECT status FROM catalog_vendor WHERE id = p_vendor AND deleted_at IS NULL),
           -- NULL for a deleted or missing zone.
           (SELECT delivery_fee_xaf FROM orders_zone WHERE id = p_zone AND deleted_at IS NULL),
           EXISTS (SELECT FROM orders_customer WHERE id = v_customer AND deleted_at IS NULL),
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
      INTO v_vendor_status, v_fee, v_customer_ok, v_found, v_short, v_subtotal, v_ids, v_qty, v_skus,
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

    IF v_vendor_status IS NULL THEN
        RETURN jsonb_build_object('error', 'vendor_unavailable');
    END IF;
    IF v_fee IS NULL THEN
        RETURN jsonb_build_object('error', 'zone_unavailable');
    END IF;
    IF v_vendor_status <> 'active' THEN
        RETURN jsonb_build_object('error', 'vendor_not_active');
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
    -- DEFERRABLE INITIALLY DEFERRED), and the items, events and payment hang off `placed`.
    WITH placed AS (
        INSERT INTO orders_order (
            id, created_at, updated_at, deleted_at, deleted_by_cascade, number, status, channel,
            payment_method, payment_status, subtotal_xaf, delivery_fee_xaf, total_xaf, address,
            placed_at, expires_at, note, customer_id, vendor_id, zone_id)
        VALUES (
            v_order, now(), now(), NULL, false, v_number, 'pending', p_channel,
            p_payment_method, 'unpaid', v_subtotal, v_fee, v_subtotal + v_fee, p_address,
            now(), v_expires, p_note, v_customer, p_vendor, p_zone)
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
        RETURNING id, product_id, sku, name, unit_price_xaf, quantity, line_total_xaf
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
    ), moved AS (
        INSERT INTO catalog_stockmovement (
            id, created_at, product_id, vendor_id, delta, kind, reason, reference, actor)
        SELECT okada_uuid7(), now(), product_id, p_vendor, qty, 'reserve', 'reserve', v_number, p_actor
          FROM reserved
    )
    -- The items for the answer only when the API asks (it always gives the phone, also with the
    -- id of a customer it has just created): the service-level placement
    -- does not pay for building them (the aggregate is not evaluated when the CASE is false).
    SELECT CASE WHEN p_customer_phone IS NOT NULL THEN
               (SELECT jsonb_agg(jsonb_build_object(
                    'id', i.id, 'product_id', i.product_id, 'sku', i.sku, 'name', i.name,
                    'unit_price_xaf', i.unit_price_xaf, 'quantity', i.quantity,
                    'line_total_xaf', i.line_total_xaf) ORDER BY i.name, i.id)
                  FROM items i)
           END
      INTO v_items;

    -- The mobile-money request, as orders.services.payment_record writes one, in a statement
    -- of its own that only its callers run (an empty INSERT in the statement above would still
    -- cost every placement its setup). Its time is the clock's, after now(): on the timeline its
    -- event comes after the `placed` one.
    IF p_payment_reference IS NOT NULL THEN
        WITH payment AS (
            INSERT INTO orders_payment (
                id, created_at, updated_at, order_id, provider, provider_reference,
                idempotency_key, amount_xaf, received_xaf, status, paid_at, callbacks,
                needs_refund, refund_settled_at, refund_settled_by_id)
            VALUES (
                okada_uuid7(), clock_timestamp(), clock_timestamp(), v_order, p_payment_method,
                p_payment_reference, 'order-placed:' || v_order, v_subtotal + v_fee, NULL,
                'pending', NULL, '[]'::jsonb, false, NULL, NULL)
            RETURNING id, created_at, order_id, provider, provider_reference, amount_xaf, status
        )
        INSERT INTO orders_orderevent (
            id, created_at, order_id, kind, from_status, to_status, actor, actor_user_id, data)
        SELECT okada_uuid7(), payment.created_at, payment.order_id, 'payment', '', '', p_actor,
               p_actor_user,
               jsonb_build_object('payment_id', payment.id, 'provider', payment.provider,
                                  'reference', payment.provider_reference, 'status', payment.status,
                                  'amount_xaf', payment.amount_xaf)
          FROM payment
        RETURNING jsonb_build_object('id', data -> 'payment_id', 'created_at', created_at)
          INTO v_payment;
    END IF;

    RETURN jsonb_build_object(
        'id', v_order, 'number', v_number, 'subtotal_xaf', v_subtotal,
        'delivery_fee_xaf', v_fee, 'placed_at', now(), 'expires_at', v_expires,
        'items', v_items, 'payment', v_payment, 'customer', v_customer_json);
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("orders", "0020_payment_refund_flagged_at")]

    operations = [
        migrations.RunSQL(
            # A new signature (two more arguments): v5 goes, so a 13-argument call finds v6 only.
            [f"DROP FUNCTION {V4.SIGNATURE}", SQL],
            # v5's CREATE OR REPLACE makes the 13-argument function again.
            [f"DROP FUNCTION {SIGNATURE}", V5.SQL],
        ),
    ]
