"""What devices sync: the tables, their priorities, the fields sent, and the capture triggers.

Every synced table has three statement-level AFTER triggers (insert, update, delete) that copy
the ids of the rows the statement touched into the change feed (sync_change), stamped with the
writing transaction's id (`pg_current_xact_id()`). Being in the database, they see every write
path: the services, `okada_order_place()`, conditional UPDATEs of stock, bulk writes, the admin,
COPY. Statement-level with transition tables: one call per statement, not one per row, which is
what order placement (one statement writing an order, its items and their stock) pays.

The feed holds ids only: one feed row per statement, table and vendor, with the ids it changed.
A pull reads the rows as they are when it is served, so a row changed five times between two
pulls is sent once, and a deleted row is sent as deleted.

A child follows its parent: an order's items and payments are live while the order is, a
product's stock while the product is; when a parent is soft-deleted or restored, its trigger
also writes its children's ids so devices drop or get them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.services import PRODUCT_EDITABLE_FIELDS
from okada.core.api.serializers import UTC_SQL

TRIGGER_PREFIX = "okada_sync_"  # okada.demo.seed may silence these (see its _can_silence_triggers)
FEED_TABLE = "sync_change"
PRIORITIES = (0, 1, 2)


@dataclass(frozen=True)
class Child:
    entity: str  # child entity name
    table: str
    fk: str  # column of the child pointing at the parent


@dataclass(frozen=True)
class Entity:
    """A synced table as devices see it.

    `source` is the FROM clause, with the table as `r`; `vendor` the expression giving the row's
    vendor (NULL for rows every device gets); `live` whether the row exists for devices (False:
    sent as deleted); `fields` the JSON object sent (only what the device app needs);
    `download` which live rows the initial download sends (the feed still sends every change of
    every live row, as an upsert, whether the device downloaded that row or not).
    """

    code: int
    name: str
    table: str
    priority: int
    source: str
    vendor: str | None
    live: str
    fields: tuple[tuple[str, str], ...]
    download: str = "true"
    # Keyset of the initial download: the columns of `source` (`r` and its joined tables) in the
    # order pages are read; the leading one is the walked index's range after the vendor.
    keyset: tuple[str, ...] = ("r.id",)
    # Keysets of download cursors issued by earlier versions (told apart by their length), still
    # served until that download moves on: a device holding one must neither reset nor skip rows.
    former_keysets: tuple[tuple[str, ...], ...] = ()
    # For the capture trigger: how to reach the vendor from a transition-table row `r`.
    capture_join: str = ""
    capture_vendor: str | None = None
    children: tuple[Child, ...] = ()
    # Rows the initial download sends together with each row of this table (an order's items).
    carries: str | None = None
    tracked: bool = False  # has deleted_at (soft delete)

    def keyset_of(self, key: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The keyset a download key was made with (this one, or a former one), or None."""
        if key is None:
            return self.keyset
        return next((k for k in (self.keyset, *self.former_keysets) if len(k) == len(key)), None)

    @property
    def json(self) -> str:
        pairs = ", ".join(f"'{key}', {expr}" for key, expr in self.fields)
        return f"json_build_object({pairs})::text"


# What a device may set on a product (product.create, product.update): the catalog's editable
# fields, with the category by id as devices see it.
PRODUCT_FIELDS = tuple("category_id" if f == "category" else f for f in PRODUCT_EDITABLE_FIELDS)


def _f(*names: str) -> tuple[tuple[str, str], ...]:
    """Columns of `r` sent as they are; times (`*_at`) written as the REST API writes them
    (`2026-11-22T09:30:00.000000Z`), not as json_build_object would (`...+00:00`)."""
    return tuple(
        (name, UTC_SQL.format(column=f"r.{name}") if name.endswith("_at") else f"r.{name}") for name in names
    )


# A new device downloads the open conflicts and those resolved in the last this many days (how
# its recent pushes ended); every later change of any conflict still comes with the feed.
CONFLICTS_RESOLVED_DAYS = 30

ORDER_JOIN = "JOIN orders_order o ON o.id = r.order_id"
PRODUCT_JOIN = "JOIN catalog_product p ON p.id = r.product_id"

ENTITIES: tuple[Entity, ...] = (
    # --- priority 0: what the counter needs first -------------------------------------------
    Entity(
        code=1,
        name="orders",
        table="orders_order",
        priority=0,
        source="orders_order r JOIN orders_customer c ON c.id = r.customer_id",
        vendor="r.vendor_id",
        live="r.deleted_at IS NULL",
        fields=(
            *_f("id", "number", "status", "channel", "payment_method", "payment_status"),
            *_f("subtotal_xaf", "delivery_fee_xaf", "total_xaf", "address", "zone_id", "note"),
            # The name given with the order (a vendor is not shown the name the marketplace
            # holds for a phone number); orders placed before it was recorded hold '' and send
            # the customer's, as Order.shown_customer_name does (orders migration 0029).
            ("customer_name", "COALESCE(NULLIF(r.customer_name, ''), c.name)"),
            ("customer_phone", "c.phone"),
            *_f("placed_at", "expires_at", "updated_at"),
        ),
        keyset=("r.updated_at", "r.id"),  # (vendor_id, updated_at) is indexed
        capture_vendor="r.vendor_id",
        children=(
            Child("order_items", "orders_orderitem", "order_id"),
            Child("payments", "orders_payment", "order_id"),
        ),
        carries="order_items",
        tracked=True,
    ),
    Entity(
        code=2,
        name="order_items",
        table="orders_orderitem",
        priority=0,
        source=f"orders_orderitem r {ORDER_JOIN}",
        vendor="o.vendor_id",
        live="o.deleted_at IS NULL",
        fields=_f(
            "id", "order_id", "product_id", "sku", "name", "unit_price_xaf", "quantity", "line_total_xaf"
        ),
        capture_join=ORDER_JOIN,
        capture_vendor="o.vendor_id",
    ),
    Entity(
        code=3,
        name="stock",
        table="catalog_stock",
        priority=0,
        source=f"catalog_stock r {PRODUCT_JOIN}",
        vendor="r.vendor_id",
        live="p.deleted_at IS NULL",
        fields=_f("id", "product_id", "on_hand", "reserved", "version", "updated_at"),
        capture_vendor="r.vendor_id",
    ),
    # --- priority 1: the catalog ------------------------------------------------------------
    Entity(
        code=4,
        name="categories",
        table="catalog_category",
        priority=1,
        source="catalog_category r",
        vendor=None,
        live="r.deleted_at IS NULL",
        fields=_f("id", "parent_id", "slug", "name_fr", "name_en", "position"),
        tracked=True,
    ),
    Entity(
        code=5,
        name="zones",
        table="orders_zone",
        priority=1,
        source="orders_zone r",
        vendor=None,
        live="r.deleted_at IS NULL",
        fields=_f("id", "city", "name", "delivery_fee_xaf"),
        tracked=True,
    ),
    Entity(
        code=6,
        name="products",
        table="catalog_product",
        priority=1,
        source="catalog_product r",
        vendor="r.vendor_id",
        live="r.deleted_at IS NULL",
        fields=_f("id", *PRODUCT_FIELDS, "version", "updated_at"),
        keyset=("r.updated_at", "r.id"),  # (vendor_id, updated_at) is indexed
        capture_vendor="r.vendor_id",
        children=(Child("stock", "catalog_stock", "product_id"),),
        tracked=True,
    ),
    # --- priority 2: the rest -----------------------------------------------------------------
    Entity(
        code=7,
        name="vendors",
        table="catalog_vendor",
        priority=2,
        source="catalog_vendor r",
        vendor="r.id",
        live="r.deleted_at IS NULL",
        fields=_f("id", "name", "slug", "status", "city", "phone", "email"),
        capture_vendor="r.id",
        tracked=True,
    ),
    Entity(
        code=8,
        name="payments",
        table="orders_payment",
        priority=2,
        source=f"orders_payment r {ORDER_JOIN}",
        vendor="o.vendor_id",
        live="o.deleted_at IS NULL",
        fields=_f(
            "id",
            "order_id",
            "provider",
            "provider_reference",
            "amount_xaf",
            "status",
            "received_xaf",  # what arrived: a success for another amount does not pay the order
            "needs_refund",
            "paid_at",
        ),
        # Payments have no vendor column: they are read through the vendor's orders, walking
        # the (vendor_id, updated_at) index of orders and each order's payments by order_id.
        # Keyed by payment id alone, a page had to join all the vendor's payments and sort them,
        # or walk every vendor's payments by id (15,000 orders: 50-110 ms a page, against ~15).
        keyset=("o.updated_at", "o.id", "r.id"),
        former_keysets=(("r.id",),),
        capture_join=ORDER_JOIN,
        capture_vendor="o.vendor_id",
    ),
    Entity(
        code=9,
        name="conflicts",
        table="sync_conflict",
        priority=2,
        source="sync_conflict r",
        vendor="r.vendor_id",
        # Conflicts are kept for good (hundreds of thousands, nearly all settled long ago): a
        # new device downloads those still open and those settled lately. Every conflict stays
        # live: a change of one the device never downloaded comes as an upsert (it was just
        # made, so it is news), never as a delete of a row the device may hold.
        live="true",
        download=f"(r.status = 'open' OR r.resolved_at >= now() - interval '{CONFLICTS_RESOLVED_DAYS} days')",
        fields=_f(
            "id",
            "device_id",
            "mutation_id",
            "kind",
            "entity",
            "row_id",
            "device_value",
            "server_value",
            "status",
            "resolved_at",
            "resolution_note",
            "created_at",
        ),
        capture_vendor="r.vendor_id",
    ),
)

BY_NAME = {e.name: e for e in ENTITIES}
BY_CODE = {e.code: e for e in ENTITIES}
BY_TABLE = {e.table: e for e in ENTITIES}
BY_PRIORITY = {p: tuple(e for e in ENTITIES if e.priority == p) for p in PRIORITIES}
# What the initial download of each priority walks, in this order (carried rows come with their
# parents and are not walked on their own).
CARRIED = {e.carries for e in ENTITIES if e.carries}
DOWNLOAD = {p: tuple(e for e in BY_PRIORITY[p] if e.name not in CARRIED) for p in PRIORITIES}


# --- Capture triggers (installed by migration 0002; `capture_sql()` is their whole definition) ---

# One feed row per statement, table and vendor holds the ids of all the rows that statement
# changed (in chunks of this many): placing an order writes three feed rows (order, items,
# stock), not one per row, and a bulk write of a million rows a thousand.
CHUNK = 1000

_INSERT_FEED = f"""INSERT INTO {FEED_TABLE} (id, created_at, xid, vendor_id, priority, entity, row_ids)
        SELECT okada_uuid7(), now(), pg_current_xact_id(), g.vendor_id, {{priority}}, {{code}},
               g.ids[i:i + {CHUNK - 1}]
          FROM (SELECT {{vendor}} AS vendor_id, array_agg({{row}}) AS ids
                  FROM {{source}}{{where}}
                 GROUP BY 1) AS g,
               generate_series(1, cardinality(g.ids), {CHUNK}) AS i;"""


def _capture_rows(entity: Entity, rows: str) -> str:
    vendor = entity.capture_vendor or "NULL::uuid"
    # Rows whose vendor cannot be found (an item whose order is gone) would reach nobody.
    where = f" WHERE {vendor} IS NOT NULL" if entity.capture_join else ""
    return _INSERT_FEED.format(
        vendor=vendor,
        priority=entity.priority,
        code=entity.code,
        row="r.id",
        source=f"{rows} r {entity.capture_join}".rstrip(),
        where=where,
    )


def _capture_children(entity: Entity) -> str:
    """On a soft delete or restore of parents, their children's ids too."""
    parts = []
    for child in entity.children:
        target = BY_NAME[child.entity]
        parts.append(
            _INSERT_FEED.format(
                vendor="n.vendor_id",
                priority=target.priority,
                code=target.code,
                row="c.id",
                source=(
                    f"new_rows n JOIN old_rows o ON o.id = n.id JOIN {child.table} c ON c.{child.fk} = n.id"
                ),
                where=" WHERE (n.deleted_at IS NULL) <> (o.deleted_at IS NULL)",
            )
        )
    return "\n        ".join(parts)


def function_name(entity: Entity) -> str:
    return f"{TRIGGER_PREFIX}capture_{entity.name}"


def capture_sql(entity: Entity) -> str:
    """The trigger function and the three triggers of one synced table."""
    fn = function_name(entity)
    children = _capture_children(entity)
    on_update = f"\n        IF TG_OP = 'UPDATE' THEN\n        {children}\n        END IF;" if children else ""
    # The old rows of an update are only needed to see a parent's soft delete or restore; not
    # keeping them spares every stock update (order placement) a second transition table.
    update_rows = "OLD TABLE AS old_rows NEW TABLE AS new_rows" if children else "NEW TABLE AS new_rows"
    return f"""
CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        {_capture_rows(entity, "old_rows")}
    ELSE
        {_capture_rows(entity, "new_rows")}{on_update}
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION {fn}() IS 'Offline sync: records the ids of changed {entity.table} rows in {FEED_TABLE}.';
CREATE TRIGGER {TRIGGER_PREFIX}insert AFTER INSERT ON {entity.table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
CREATE TRIGGER {TRIGGER_PREFIX}update AFTER UPDATE ON {entity.table}
    REFERENCING {update_rows} FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
CREATE TRIGGER {TRIGGER_PREFIX}delete AFTER DELETE ON {entity.table}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
"""


def drop_capture_sql(entity: Entity) -> str:
    return "\n".join(
        [
            *(
                f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{op} ON {entity.table};"
                for op in ("insert", "update", "delete")
            ),
            f"DROP FUNCTION IF EXISTS {function_name(entity)}();",
        ]
    )
