"""Offline-sync activity for a seeded marketplace: devices, pushed mutations, conflicts, the feed.

A marketplace that sells has vendors' phones and tablets syncing: operations staff read their
pushed mutations and resolve their conflicts every day, so those screens must be measured with
the rows they have in production (bench/admin.py). Written set-based in SQL from the vendors,
products and orders already in the database, so it also fills a database seeded before it
existed (bench/kept.py), in a minute or two for the large preset:

- a device per active or suspended vendor, a second one for every other vendor, 3% revoked;
- each device's pushed mutations of the last `OKADA_SYNC_MUTATION_RETENTION_DAYS` (older ones are
  pruned: their ids below the kept ones), 600 to 1,600 per device, mostly stock adjustments and
  order moves; about 5% rejected, 0.3% conflicts;
- conflicts, which are never pruned: those of the kept mutations and a few older ones per device,
  open when recent, most of them resolved, with their history rows;
- the change feed those writes and the orders' events would have left, in the feed's monthly
  partitions that exist (never its default one).

Random draws come from PostgreSQL's random(), seeded (setseed) for a repeatable mix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from okada.partitions.ddl import partitions
from sync.feed import BY_NAME, FEED_TABLE

# A UUID v7 made at a given time (the ids the application makes are time-ordered: the lists
# read newest first by key): 48 bits of milliseconds, version 7, random bits, variant 10.
UUID7_AT = """
CREATE FUNCTION pg_temp.syncseed_uuid7(at timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
          || substr(md5(random()::text), 1, 3) || to_hex(8 + floor(random() * 4)::int)
          || substr(md5(random()::text), 1, 15))::uuid
$$"""

DEVICES = """
CREATE TEMP TABLE syncseed_device ON COMMIT DROP AS
WITH v AS (
  SELECT id, created_at, status, row_number() OVER (ORDER BY id) AS rn FROM catalog_vendor
  WHERE deleted_at IS NULL AND status IN ('active', 'suspended')
), d AS (
  SELECT gen_random_uuid() AS id, v.id AS vendor_id, v.status AS vendor_status, n.n AS nth,
         least(greatest(v.created_at, %(now)s - interval '240 days') + random() * interval '60 days',
               %(now)s - interval '1 day') AS created_at,
         random() < 0.03 AS revoked, 600 + floor(random() * 1000)::int AS pushed
  FROM v CROSS JOIN LATERAL generate_series(1, 1 + (v.rn %% 2)::int) AS n(n)
)
SELECT d.*, w.since, greatest(w.until, w.since + interval '1 hour') AS until,
       -- Ids pushed before the kept window were pruned: the kept ones start above them.
       CASE WHEN d.created_at < %(window)s THEN 1 + floor(random() * 5000)::bigint ELSE 0 END AS pruned
FROM d CROSS JOIN LATERAL (
  SELECT greatest(d.created_at, %(window)s) AS since,
         CASE WHEN d.revoked THEN %(now)s - random() * interval '20 days'
              ELSE %(now)s - random() * interval '2 hours' END AS until
) AS w"""

# A few products (with their stock) and recent orders of each vendor, for the mutations' rows.
SAMPLES = """
CREATE TEMP TABLE syncseed_rows ON COMMIT DROP AS
SELECT v.vendor_id, p.ids AS products, p.stocks, o.ids AS orders
FROM (SELECT DISTINCT vendor_id FROM syncseed_device) AS v
CROSS JOIN LATERAL (
  SELECT array_agg(x.id) AS ids, array_agg(s.id) AS stocks FROM (
    SELECT id FROM catalog_product WHERE vendor_id = v.vendor_id AND deleted_at IS NULL LIMIT 40
  ) AS x JOIN catalog_stock s ON s.product_id = x.id
) AS p
CROSS JOIN LATERAL (
  SELECT array_agg(id) AS ids FROM (
    SELECT id FROM orders_order WHERE vendor_id = v.vendor_id ORDER BY updated_at DESC LIMIT 40
  ) AS y
) AS o"""

MUTATIONS = """
CREATE TEMP TABLE syncseed_mutation ON COMMIT DROP AS
SELECT m.*,
       CASE WHEN m.status = 'conflict' THEN pg_temp.syncseed_uuid7(m.created_at) END AS conflict_id
FROM (
  SELECT pg_temp.syncseed_uuid7(t.at) AS id, t.at AS created_at, d.id AS device_id, d.vendor_id,
         d.vendor_status, d.pruned + k AS mutation_id, t.name, t.pick,
         coalesce(r.products[1 + t.pick %% cardinality(r.products)], gen_random_uuid()) AS product_id,
         coalesce(r.stocks[1 + t.pick %% cardinality(r.stocks)], gen_random_uuid()) AS stock_id,
         coalesce(r.orders[1 + t.pick %% cardinality(r.orders)], gen_random_uuid()) AS order_id,
         CASE WHEN t.roll < 0.003 AND t.name IN ('stock.adjust', 'stock.count', 'product.update',
                                                  'order.transition') THEN 'conflict'
              WHEN t.roll < 0.053 THEN 'rejected' ELSE 'applied' END AS status
  FROM syncseed_device d
  JOIN syncseed_rows r ON r.vendor_id = d.vendor_id
  CROSS JOIN LATERAL generate_series(1, d.pushed) AS k
  CROSS JOIN LATERAL (
    -- The last one at the device's last push (`until`).
    SELECT d.since + (d.until - d.since) * ((k - CASE WHEN k = d.pushed THEN 0 ELSE random() * 0.9 END)
                                            / d.pushed) AS at,
           CASE WHEN x.n < 0.50 THEN 'stock.adjust' WHEN x.n < 0.80 THEN 'order.transition'
                WHEN x.n < 0.90 THEN 'stock.count' WHEN x.n < 0.97 THEN 'product.update'
                WHEN x.n < 0.99 THEN 'product.create' ELSE 'product.delete' END AS name,
           floor(random() * 1000)::int AS pick, random() AS roll
    FROM (SELECT random() + k * 0 AS n) AS x
  ) AS t
) AS m"""

# Conflicts older than the kept mutations (theirs were pruned): a few per device.
OLD_CONFLICTS = """
CREATE TEMP TABLE syncseed_old ON COMMIT DROP AS
SELECT pg_temp.syncseed_uuid7(t.at) AS conflict_id, t.at AS created_at, d.id AS device_id, d.vendor_id,
       d.vendor_status, 1 + floor(t.f * d.pruned)::bigint AS mutation_id, t.name,
       floor(random() * 1000)::int AS pick
FROM syncseed_device d
CROSS JOIN LATERAL generate_series(1, CASE WHEN d.pruned > 0 THEN floor(random() * 7)::int ELSE 0 END) AS k
CROSS JOIN LATERAL (
  SELECT d.created_at + (d.since - d.created_at) * x.f AS at, x.f,
         (ARRAY['stock.adjust', 'stock.count', 'product.update', 'order.transition'])
           [1 + floor(random() * 4)::int] AS name
  FROM (SELECT random() + k * 0 AS f) AS x
) AS t"""

CONFLICTS = """
INSERT INTO sync_conflict (id, created_at, updated_at, vendor_id, device_id, mutation_id, kind, entity,
                           row_id, base_version, device_value, server_value, status, resolved_by_id,
                           resolved_at, resolution_note)
SELECT c.conflict_id, c.created_at, coalesce(c.resolved_at, c.created_at), c.vendor_id, c.device_id,
       c.mutation_id, c.kind, c.entity, c.row_id, c.base_version, c.device_value, c.server_value,
       c.status, NULL, c.resolved_at,
       CASE c.status WHEN 'kept_server' THEN 'resolved in admin (keep_server)'
                     WHEN 'applied_device' THEN 'resolved in admin (apply_device)' ELSE '' END
FROM (
  SELECT a.*, CASE WHEN a.status = 'open' THEN NULL
                   ELSE least(a.created_at + random() * interval '3 days', %(now)s) END AS resolved_at
  FROM (
    SELECT k.*,
           CASE WHEN k.created_at > %(now)s - interval '7 days' AND random() < 0.5 THEN 'open'
                WHEN random() < 0.05 THEN 'open'
                WHEN random() < 0.7 THEN 'kept_server' ELSE 'applied_device' END AS status
    FROM (
      SELECT s.conflict_id, s.created_at, s.vendor_id, s.device_id, s.mutation_id,
             CASE WHEN s.name LIKE 'stock.%%' AND s.vendor_status = 'suspended' THEN 'vendor_suspended'
                  WHEN s.name = 'stock.adjust' THEN 'impossible_stock'
                  WHEN s.name = 'stock.count' THEN 'stale_count'
                  WHEN s.name = 'order.transition' THEN 'stale_transition'
                  WHEN s.pick %% 5 = 0 THEN 'delete_vs_update' ELSE 'price' END AS kind,
             CASE WHEN s.name LIKE 'stock.%%' THEN 'stock' WHEN s.name LIKE 'order.%%' THEN 'orders'
                  ELSE 'products' END AS entity,
             CASE WHEN s.name LIKE 'stock.%%' THEN r.stocks[1 + s.pick %% cardinality(r.stocks)]
                  WHEN s.name LIKE 'order.%%' THEN r.orders[1 + s.pick %% cardinality(r.orders)]
                  ELSE r.products[1 + s.pick %% cardinality(r.products)] END AS row_id,
             CASE WHEN s.name IN ('stock.count', 'product.update') THEN 1 + s.pick %% 9 END AS base_version,
             CASE s.name
               WHEN 'stock.adjust' THEN jsonb_build_object('delta', -2 - s.pick %% 4, 'reason', 'vente')
               WHEN 'stock.count' THEN jsonb_build_object('on_hand', s.pick %% 30, 'base_on_hand', 12)
               WHEN 'order.transition' THEN
                 jsonb_build_object('to', 'ready', 'base_status', 'preparing', 'note', '')
               ELSE jsonb_build_object('fields', jsonb_build_object('price_xaf', 500 + 25 * s.pick))
             END AS device_value,
             CASE WHEN s.name LIKE 'stock.%%' THEN
                    jsonb_build_object('on_hand', s.pick %% 3, 'reserved', 0, 'version', 2 + s.pick %% 9)
                  WHEN s.name = 'order.transition' THEN jsonb_build_object('status', 'cancelled')
                  ELSE jsonb_build_object('fields', jsonb_build_object('price_xaf', 450 + 25 * s.pick),
                                          'version', 2 + s.pick %% 9) END AS server_value
      FROM (SELECT conflict_id, created_at, vendor_id, device_id, mutation_id, vendor_status, name, pick
            FROM syncseed_mutation WHERE status = 'conflict'
            UNION ALL
            SELECT conflict_id, created_at, vendor_id, device_id, mutation_id, vendor_status, name, pick
            FROM syncseed_old) AS s
      JOIN syncseed_rows r ON r.vendor_id = s.vendor_id
    ) AS k
  ) AS a
) AS c
WHERE c.row_id IS NOT NULL"""

STORED_MUTATIONS = """
INSERT INTO sync_mutation (id, created_at, updated_at, device_id, mutation_id, name, args, status, code,
                           message, conflict_id)
SELECT m.id, m.created_at, m.created_at, m.device_id, m.mutation_id, m.name,
       CASE m.name
         WHEN 'stock.adjust' THEN jsonb_build_object('product_id', m.product_id,
           'delta', CASE WHEN m.pick %% 5 = 0 THEN 6 + m.pick %% 20 ELSE -1 - m.pick %% 3 END,
           'reason', CASE WHEN m.pick %% 5 = 0 THEN 'réassort' ELSE 'vente comptoir' END)
         WHEN 'stock.count' THEN jsonb_build_object('product_id', m.product_id, 'on_hand', m.pick %% 40,
           'base_version', 1 + m.pick %% 9, 'base_on_hand', m.pick %% 40 + 1)
         WHEN 'order.transition' THEN jsonb_build_object('order_id', m.order_id,
           'to', (ARRAY['accepted', 'preparing', 'ready', 'out_for_delivery'])[1 + m.pick %% 4],
           'base_status', 'pending', 'note', '')
         WHEN 'product.update' THEN jsonb_build_object('product_id', m.product_id,
           'base_version', 1 + m.pick %% 9, 'fields', jsonb_build_object('price_xaf', 500 + 25 * m.pick))
         WHEN 'product.create' THEN jsonb_build_object('id', gen_random_uuid(),
           'sku', 'DEV-' || m.mutation_id, 'name', 'Article ' || m.mutation_id,
           'price_xaf', 500 + 25 * m.pick, 'initial_stock', m.pick %% 20)
         ELSE jsonb_build_object('product_id', m.product_id, 'base_version', 1 + m.pick %% 9)
       END,
       m.status,
       CASE WHEN m.status = 'conflict' THEN c.kind
            WHEN m.status = 'applied' THEN ''
            WHEN m.name = 'stock.adjust' THEN 'insufficient_stock'
            WHEN m.name = 'order.transition' THEN 'invalid_transition'
            WHEN m.name = 'product.create' THEN 'sku_taken'
            ELSE 'version_conflict' END,
       CASE WHEN m.status <> 'rejected' THEN ''
            WHEN m.name = 'stock.adjust' THEN jsonb_build_object(
              'msgid', 'Cannot remove %%(n)d units: %%(on_hand)d on hand, %%(reserved)d reserved.',
              'params', jsonb_build_object('n', 1 + m.pick %% 3, 'on_hand', 0, 'reserved', 0))::text
            WHEN m.name = 'order.transition' THEN jsonb_build_object(
              'msgid', 'An order cannot go from %%(from)s to %%(to)s.',
              'params', jsonb_build_object('from', 'delivered', 'to', 'accepted'))::text
            ELSE '' END,
       c.id
FROM syncseed_mutation m
LEFT JOIN sync_conflict c ON c.id = m.conflict_id
-- A conflict's mutation whose row could not be drawn (a vendor without products): applied.
WHERE m.status <> 'conflict' OR c.id IS NOT NULL"""

STORED_DEVICES = """
INSERT INTO sync_device (id, created_at, updated_at, vendor_id, name, registered_by_id, last_mutation_id,
                         last_pull_at, last_push_at, revoked_at, revoked_by_id, revoke_reason)
SELECT d.id, d.created_at, greatest(d.created_at, d.until), d.vendor_id,
       CASE d.nth WHEN 1 THEN 'Caisse 1' ELSE 'Tablette ' || d.nth END, NULL,
       d.pruned + d.pushed, least(d.until + random() * interval '90 seconds', %(now)s), d.until,
       CASE WHEN d.revoked THEN least(d.until + interval '1 hour', %(now)s) END, NULL,
       CASE WHEN d.revoked THEN 'revoked in admin' ELSE '' END
FROM syncseed_device d"""

CONFLICT_HISTORY = """
INSERT INTO sync_historicalsyncconflict (id, created_at, vendor_id, device_id, mutation_id, kind, entity,
  row_id, base_version, device_value, server_value, status, resolved_by_id, resolved_at, resolution_note,
  history_date, history_change_reason, history_type, history_user_id)
SELECT id, created_at, vendor_id, device_id, mutation_id, kind, entity, row_id, base_version, device_value,
       server_value, 'open', NULL::int, NULL::timestamptz, '', created_at, NULL::text, '+', NULL::int
FROM sync_conflict
UNION ALL
SELECT id, created_at, vendor_id, device_id, mutation_id, kind, entity, row_id, base_version, device_value,
       server_value, status, resolved_by_id, resolved_at, resolution_note, resolved_at, resolution_note, '~',
       NULL
FROM sync_conflict WHERE status <> 'open'
ORDER BY 16  -- history_date: history ids in time order"""

# The feed (sync.feed.ENTITIES' codes and priorities): what the orders' events, the applied
# mutations and the conflicts wrote, one row per statement. Its xid8 grows with time below the
# current transaction's, so every row is committed for a pull.
FEED = """
INSERT INTO sync_change (id, created_at, xid, vendor_id, priority, entity, row_ids)
SELECT pg_temp.syncseed_uuid7(f.at), f.at,
       (3 + floor((extract(epoch FROM f.at - %(feed_from)s) / extract(epoch FROM %(now)s - %(feed_from)s))
                  * (pg_current_xact_id()::text::bigint - 4)))::text::xid8,
       f.vendor_id, f.priority, f.entity, f.row_ids
FROM (
  SELECT e.created_at AS at, o.vendor_id, 0 AS priority, 1 AS entity, ARRAY[e.order_id] AS row_ids
  FROM orders_orderevent e JOIN orders_order o ON o.id = e.order_id
  WHERE e.created_at >= %(feed_from)s AND e.created_at < %(now)s AND e.kind <> 'note'
  UNION ALL
  SELECT e.created_at, o.vendor_id, 0, 2, i.ids
  FROM orders_orderevent e JOIN orders_order o ON o.id = e.order_id
  CROSS JOIN LATERAL (SELECT array_agg(id) AS ids FROM orders_orderitem WHERE order_id = e.order_id) AS i
  WHERE e.created_at >= %(feed_from)s AND e.created_at < %(now)s AND e.kind = 'placed' AND i.ids IS NOT NULL
  UNION ALL
  SELECT m.created_at, m.vendor_id,
         CASE WHEN m.name LIKE 'product.%%' THEN 1 ELSE 0 END,
         CASE WHEN m.name LIKE 'stock.%%' THEN 3 WHEN m.name LIKE 'order.%%' THEN 1 ELSE 6 END,
         ARRAY[CASE WHEN m.name LIKE 'stock.%%' THEN m.stock_id WHEN m.name LIKE 'order.%%' THEN m.order_id
                    ELSE m.product_id END]
  FROM syncseed_mutation m WHERE m.status = 'applied' AND m.created_at >= %(feed_from)s
  UNION ALL
  SELECT c.created_at, c.vendor_id, 2, 9, ARRAY[c.id] FROM sync_conflict c WHERE c.created_at >= %(feed_from)s
  UNION ALL
  SELECT c.resolved_at, c.vendor_id, 2, 9, ARRAY[c.id] FROM sync_conflict c
  WHERE c.resolved_at >= %(feed_from)s AND c.resolved_at < %(now)s
) AS f
WHERE f.at < %(feed_until)s
ORDER BY f.at"""

# The capture trigger of sync_conflict (sync.feed) recorded the conflicts CONFLICTS inserted: all
# of them at once, stamped with this transaction (now(), its xid), as if every conflict of the
# past months had just been written. FEED writes them as they happened (at their creation and
# their resolution), so the trigger's rows go: each conflict is then in the feed once per event,
# not twice. Only the fill's conflicts were captured so (fill_sync starts on an empty table).
CAPTURED_CONFLICTS = f"""
DELETE FROM {FEED_TABLE}
WHERE created_at = now() AND xid = pg_current_xact_id() AND entity = {BY_NAME["conflicts"].code}"""  # noqa: S608 (constants)

# A small seed fires the capture triggers (seed_demo silences them only in bulk): each seeded row
# is in the feed once, stamped with the seed's transaction, as if just written. FEED writes again
# the rows it covers (orders and their items, the stock, products and orders the mutations
# changed), at their events' times: those ids leave the seed's captured rows (and a row left
# empty goes), so each seeded row is in the feed as the seed captured it or once per event the
# fill writes, never both. A bulk seed (the large preset) captured nothing: nothing to do.
SEED_CAPTURED = f"CREATE TEMP TABLE syncseed_captured ON COMMIT DROP AS SELECT id FROM {FEED_TABLE}"  # noqa: S608 (constants)
SEED_RECAPTURED = (
    f"""CREATE TEMP TABLE syncseed_fed ON COMMIT DROP AS
SELECT DISTINCT f.entity, u.row_id
FROM {FEED_TABLE} f CROSS JOIN LATERAL unnest(f.row_ids) AS u(row_id)
WHERE f.id NOT IN (SELECT id FROM syncseed_captured)""",  # noqa: S608 (constants)
    f"""UPDATE {FEED_TABLE} c
SET row_ids = ARRAY(
  SELECT u.row_id FROM unnest(c.row_ids) WITH ORDINALITY AS u(row_id, n)
  WHERE NOT EXISTS (SELECT FROM syncseed_fed f WHERE f.entity = c.entity AND f.row_id = u.row_id)
  ORDER BY u.n)
WHERE c.id IN (SELECT id FROM syncseed_captured)""",  # noqa: S608 (constants)
    f"""DELETE FROM {FEED_TABLE}
WHERE id IN (SELECT id FROM syncseed_captured) AND cardinality(row_ids) = 0""",  # noqa: S608 (constants)
)

TABLES = ("sync_device", "sync_conflict", "sync_historicalsyncconflict", "sync_mutation", "sync_change")


def _feed_span(cur: Any, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """Where the feed's rows go: three months back (its retention) to `now`, within its monthly
    partitions (never its default one); None when it has none there."""
    bounds = [(p.starts_at, p.ends_at) for p in partitions(cur, FEED_TABLE) if p.month is not None]
    starts = [start for start, _ in bounds if start is not None]
    ends = [end for _, end in bounds if end is not None]
    if not starts or not ends:
        return None
    start = max(min(starts), now - dt.timedelta(days=91))
    end = min(max(ends), now)
    return (start, end) if start < end else None


def fill_sync(cur: Any, *, now: dt.datetime, seed: float = 0.2026) -> dict[str, int]:
    """Fill the empty sync tables of a seeded marketplace, in the caller's transaction; return the
    rows written per table. `now` is the end of the activity (the seed's end)."""
    cur.execute("SELECT EXISTS (SELECT FROM sync_device) OR EXISTS (SELECT FROM sync_conflict)")
    if cur.fetchone()[0]:
        raise ValueError("the sync tables already hold devices or conflicts")
    window = now - dt.timedelta(days=settings.OKADA_SYNC_MUTATION_RETENTION_DAYS)
    span = _feed_span(cur, now)
    feed_from, feed_until = span or (now, now)
    params = {"now": now, "window": window, "feed_from": feed_from, "feed_until": feed_until}
    cur.execute(f"SELECT EXISTS (SELECT FROM {FEED_TABLE})")  # noqa: S608 (constant)
    captured = cur.fetchone()[0]  # a small seed's rows (a bulk seed captures none)
    if captured:
        cur.execute(SEED_CAPTURED)
    cur.execute("SELECT setseed(%s)", [seed])
    cur.execute(UUID7_AT)
    for sql in (DEVICES, SAMPLES, MUTATIONS, OLD_CONFLICTS):
        cur.execute(sql, params)
    # Conflicts and their mutations reference devices: parents first (the keys are deferred,
    # but a foreign key checked at commit reads the same rows).
    for sql in (STORED_DEVICES, CONFLICTS, CAPTURED_CONFLICTS, STORED_MUTATIONS, CONFLICT_HISTORY):
        cur.execute(sql, params)
    if span is not None:
        cur.execute(FEED, params)
        for sql in SEED_RECAPTURED if captured else ():
            cur.execute(sql)
    counts = {}
    for table in TABLES:
        cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (constant names)
        counts[table] = cur.fetchone()[0]
    cur.execute("DROP FUNCTION pg_temp.syncseed_uuid7(timestamptz)")
    cur.execute("ANALYZE " + ", ".join(TABLES))
    return counts
