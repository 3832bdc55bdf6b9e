"""Demo marketplaces of any size, loaded with PostgreSQL COPY (`manage.py seed_demo`).

What a seed holds (DESIGN.md section 8 sizes it): zones (Douala and Yaoundé quartiers), a
bilingual category tree, vendors with their products and stock, customers, and orders spread over
the last `months` months with their items, timeline events, payments and stock ledger. The data
obeys the same rules as data written by the services:

- every order has a `placed` event, then one `status` event per lifecycle step
  (pending -> accepted -> preparing -> ready -> out_for_delivery -> delivered [-> refunded]; or
  cancelled; or expired for unpaid mobile money); its last status event is its status;
- the ledger sums to the stock: placing reserves, cancel/expiry releases, out_for_delivery sells;
  restocks arrive before they are needed, so on_hand >= reserved >= 0 at every point in time;
- totals satisfy the CHECKs, items snapshot sku/name/price, paid orders have a payment;
- tracked rows get their simple-history `+` row (orders also a `~` row with their final state),
  reason "seed_demo".

Everything comes from one random.Random(seed): the same seed and end time give the same rows
(order numbers come from `orders_order_number_seq`, so only they depend on the database).

How it loads: rows are formatted as COPY text in this thread and streamed by a loader thread over
the same connection and transaction, so Python and PostgreSQL work at the same time; a stream is
only sent after every stream it may reference, so parents always land first. Small sets keep
every index and check foreign keys as each COPY ends. Large sets ("bulk") load the way pg_restore
does: indexes rebuilt once at the end (_indexes_rebuilt_after) and, for a superuser, foreign keys
checked set-based after the load instead of row by row (_can_silence_triggers). Either way the
rows are the same and the whole seed is one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import accumulate
from random import Random
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from tqdm import tqdm

from catalog.models import StockMovement
from okada.core.ids import RANDOM_BITS, uuid7_int
from okada.partitions.ddl import add_months, ensure_month_partitions
from sync.feed import TRIGGER_PREFIX

from . import data

HISTORY_REASON = "seed_demo"
DAY = 86400
HOUR = 3600
MINUTE = 60


@dataclass(frozen=True)
class SeedConfig:
    vendors: int = 10
    products_per_vendor: int = 50
    customers: int = 300
    orders: int = 1000
    months: int = 3
    seed: int = 2026
    now: dt.datetime | None = None  # end of the period; None = the current time


PRESETS: dict[str, SeedConfig] = {
    "small": SeedConfig(vendors=10, products_per_vendor=50, customers=300, orders=1_000, months=3),
    "medium": SeedConfig(vendors=100, products_per_vendor=1_000, customers=20_000, orders=100_000, months=12),
    "large": SeedConfig(
        vendors=1_000, products_per_vendor=1_000, customers=100_000, orders=1_000_000, months=24
    ),
}


class SeedError(Exception):
    """The seed cannot run as asked (e.g. the database already holds marketplace data)."""


@dataclass
class SeedResult:
    counts: dict[str, int]  # rows per table
    seconds: float
    copy_seconds: dict[str, float] = field(default_factory=dict)  # time in COPY, per table
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the seed

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def database_has_marketplace_data() -> bool:
    from catalog.models import Vendor
    from orders.models import Customer, Order

    return any(m.all_objects.exists() for m in (Vendor, Customer, Order))


# Tables the seed writes, parents first.
TABLES = (
    "orders_zone",
    "catalog_category",
    "catalog_vendor",
    "catalog_product",
    "orders_customer",
    "orders_order",
    "orders_orderitem",
    "orders_payment",
    "orders_orderevent",
    "catalog_stockmovement",
    "catalog_stock",
)
# The sync's change-capture triggers: safe to silence while seeding (see _can_silence_triggers).
SILENCEABLE_TRIGGERS = TRIGGER_PREFIX.replace("_", r"\_") + "%"
TRIGGER_TYPE_INSERT = 1 << 2  # pg_trigger.tgtype: fires on INSERT (PostgreSQL's trigger.h)
# The latest end of the period: its month's partition and the next one must end within year 9999.
LAST_END = dt.datetime(9999, 11, 1, tzinfo=dt.UTC)
BULK_FROM_ROWS = 200_000  # below this, bulk-load techniques cost more than they save


def seed_demo(config: SeedConfig, *, progress: bool = False, bulk: bool | None = None) -> SeedResult:
    """Build the demo data set described by `config` in one transaction; return row counts.

    `bulk` (default: for large sets) loads like pg_restore: indexes rebuilt after the load
    (_indexes_rebuilt_after) and, for a superuser, foreign-key triggers silenced with the keys
    checked set-based afterwards (_can_silence_triggers). The rows written are the same.
    """
    if database_has_marketplace_data():
        raise SeedError(
            "the database already holds vendors, customers or orders: seed an empty database "
            "(or use --if-empty to skip)"
        )
    started = time.monotonic()
    phases: dict[str, float] = {}
    end = config.now or timezone.now()
    gen = _Generator(config, int(end.timestamp()))
    if gen.launch < 0 or end >= LAST_END:
        # UUID v7 ids count milliseconds from 1970; the months' partitions end before year 10000.
        raise SeedError(
            "--now and --months must keep the demo period between 1970 and 9999: the marketplace "
            f"opens {(gen.end - gen.launch) // DAY} days before --now ({end:%Y-%m-%d}), and --now "
            f"must be before {LAST_END:%Y-%m-%d}"
        )
    first_day = dt.datetime.fromtimestamp(gen.first_ts, dt.UTC).date()
    last_day = end.astimezone(dt.UTC).date()
    with transaction.atomic():
        for table in ("catalog_stockmovement", "orders_orderevent"):
            ensure_month_partitions(table, first_day, add_months(last_day, 1))
        phases["partitions"] = time.monotonic() - started
        if bulk is None:
            bulk = config.orders * 20 + config.vendors * config.products_per_vendor * 4 >= BULK_FROM_ROWS
        tables = [*TABLES, *(HISTORY_TABLES[t] for t in TABLES if t in HISTORY_TABLES)]
        connection.ensure_connection()
        with connection.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            gen.numbers = _order_numbers(cur, config.orders)
            gen.existing_zones, gen.existing_categories = _existing_reference_rows(cur)
            silenced = bulk and _can_silence_triggers(cur)
            with _indexes_rebuilt_after(cur, tables, phases) if bulk else nullcontext():
                if silenced:
                    cur.execute("SET LOCAL session_replication_role = replica")
                else:
                    # Every deferrable constraint here is a Django foreign key (INITIALLY
                    # DEFERRED): check them as each COPY ends, not millions at COMMIT.
                    cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
                with _timed(phases, "load"), _Loader(progress=progress) as loader:
                    gen.run(loader)
                # (after a failure, rolling back undoes these SETs too)
                if silenced:
                    cur.execute("SET LOCAL session_replication_role = origin")
                else:
                    cur.execute("SET CONSTRAINTS ALL DEFERRED")  # each key's declared mode
            if silenced:
                with _timed(phases, "foreign key checks"):
                    _verify_foreign_keys(cur, tables)
            with _timed(phases, "analyze"):
                cur.execute("ANALYZE " + ", ".join(tables))
    return SeedResult(loader.counts(), time.monotonic() - started, loader.copy_seconds(), phases)


@contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    phases[name] = time.monotonic() - started


def _can_silence_triggers(cur: Any) -> bool:
    """Whether to load the way `pg_restore --disable-triggers` does.

    With session_replication_role = replica PostgreSQL fires no foreign-key trigger: one check
    per reference and row (about 15 us each, the largest single cost of the load) becomes one
    anti-join per foreign key after the load (_verify_foreign_keys), a thousand times cheaper.
    Only for a superuser (the setting needs it), and only when the schema has no trigger or rule
    of its own: replica mode would silence those too, and they may do real work. The offline
    sync's capture triggers are the exception: the seed fills an empty marketplace, so no device
    holds a cursor yet, and every seeded row reaches devices by their initial download, which
    reads the tables themselves (README "Offline sync"). Triggers that do not fire on INSERT
    (the ledgers' append-only guard: UPDATE and DELETE) do nothing in a load that only inserts.
    """
    cur.execute("SELECT current_setting('is_superuser') = 'on'")
    if not cur.fetchone()[0]:
        return False
    cur.execute(
        "SELECT (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "        WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
        "          AND t.tgname NOT LIKE %s AND t.tgtype & %s <> 0)"
        " + (SELECT count(*) FROM pg_rules WHERE schemaname = current_schema())",
        [SILENCEABLE_TRIGGERS, TRIGGER_TYPE_INSERT],
    )
    return cur.fetchone()[0] == 0


@contextmanager
def _indexes_rebuilt_after(cur: Any, tables: list[str], phases: dict[str, float]) -> Iterator[None]:
    """Drop the tables' indexes for the load, then rebuild them exactly as they were.

    Maintaining a B-tree or GIN index row by row costs this load several times more than
    building it once at the end (sorted, in parallel), which is why pg_restore and `pgbench -i`
    also build indexes last. Dropped: every index not backing a constraint, and primary
    key / unique constraints that no foreign key relies on. Rebuilt from their own definitions
    (pg_get_indexdef / pg_get_constraintdef); then every index and constraint of the tables and
    their partitions is compared with what was there before, and any difference fails the seed
    (which rolls the whole transaction back, DDL included). The tables stay locked meanwhile.
    """
    before = _schema_of(cur, tables)
    cur.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
        "obj_description(i.indexrelid, 'pg_class') FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [tables],
    )
    indexes = cur.fetchall()
    # The partitions' indexes attached to a partitioned table's, by the parent's name: those a
    # migration built one by one (okada.core.operations.add_partitioned_index) have names of
    # their own, which a plain CREATE INDEX on the parent would not give them.
    cur.execute(
        "SELECT ih.inhparent::regclass::text, c.oid::regclass::text, pg_get_indexdef(c.oid), "
        "obj_description(c.oid, 'pg_class') FROM pg_inherits ih JOIN pg_class c ON c.oid = ih.inhrelid "
        "JOIN pg_index i ON i.indexrelid = ih.inhparent "
        "WHERE i.indrelid = ANY(%s::regclass[]) ORDER BY 1, 2",
        [tables],
    )
    attached: dict[str, list[tuple[str, str, str | None]]] = {}
    for parent, name, definition, comment in cur.fetchall():
        attached.setdefault(parent, []).append((name, definition, comment))
    cur.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint k "
        "WHERE contype IN ('p', 'u') AND conrelid = ANY(%s::regclass[]) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = k.conindid)",
        [tables],
    )
    constraints = cur.fetchall()
    for table, name, _ in constraints:
        cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _, _ in indexes:
        cur.execute(f"DROP INDEX {name}")
    yield
    started = time.monotonic()
    cur.execute("SET LOCAL maintenance_work_mem = '1GB'")  # GIN builds ~30% faster than at 512MB
    for table, name, definition in constraints:
        cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition, comment in indexes:
        # A partitioned table's index reads "ON ONLY parent": the parent's alone, then each
        # partition's under its own name, attached to it (the check below confirms the names).
        cur.execute(definition)
        for child, child_definition, child_comment in attached.get(name, []):
            cur.execute(child_definition)
            cur.execute(f"ALTER INDEX {name} ATTACH PARTITION {child}")
            if child_comment is not None:
                cur.execute(f"COMMENT ON INDEX {child} IS %s", [child_comment])
        if comment is not None:
            cur.execute(f"COMMENT ON INDEX {name} IS %s", [comment])
    phases["index rebuild"] = time.monotonic() - started
    after = _schema_of(cur, tables)
    if after != before:
        changed = sorted(set(before) ^ set(after))
        raise SeedError(f"internal error: indexes not restored exactly: {changed[:5]}")


def _schema_of(cur: Any, tables: list[str]) -> list[tuple[str, ...]]:
    """Every index and constraint of the tables and of their partitions, by name and definition."""
    cur.execute(
        "WITH t AS (SELECT unnest(%s::regclass[]) AS oid "
        "           UNION SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY(%s::regclass[])) "
        "SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
        "       coalesce(obj_description(i.indexrelid, 'pg_class'), '') "
        "FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM t) "
        "UNION ALL SELECT 'constraint', conrelid::regclass::text || '.' || conname, "
        "       pg_get_constraintdef(oid), '' "
        "FROM pg_constraint WHERE conrelid IN (SELECT oid FROM t) ORDER BY 1, 2, 3",
        [tables, tables],
    )
    return [tuple(row) for row in cur.fetchall()]


def _verify_foreign_keys(cur: Any, tables: list[str]) -> None:
    """Every foreign key of the loaded tables holds (set-based: one anti-join per key)."""
    cur.execute(
        "SELECT c.conname, c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, fa.attname "
        "FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1] "
        "WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[]) ORDER BY 1",
        [tables],
    )
    for name, child, column, parent, parent_column in cur.fetchall():
        cur.execute(
            f'SELECT "{column}" FROM {child} ch WHERE "{column}" IS NOT NULL AND NOT EXISTS '  # noqa: S608
            f'(SELECT 1 FROM {parent} p WHERE p."{parent_column}" = ch."{column}") LIMIT 1'
        )
        row = cur.fetchone()
        if row is not None:
            raise SeedError(f"internal error: {child}.{column} = {row[0]} breaks foreign key {name}")


def _order_numbers(cur: Any, count: int) -> list[str]:
    """Numbers from the sequence order_place uses, so later orders never collide, made by the
    same SQL function (okada_order_number), in sequence order (a text sort is wrong past 7 digits)."""
    if not count:
        return []
    cur.execute(
        "SELECT okada_order_number(n) FROM (SELECT nextval('orders_order_number_seq') AS n"
        " FROM generate_series(1, %s)) AS s ORDER BY n",
        [count],
    )
    return [number for (number,) in cur.fetchall()]


def _existing_reference_rows(cur: Any) -> tuple[dict[tuple[str, str], tuple[str, int]], dict[str, str]]:
    """Zones and categories already there (staff may have created some) are reused, not duplicated."""
    cur.execute("SELECT city, name, id::text, delivery_fee_xaf FROM orders_zone WHERE deleted_at IS NULL")
    zones = {(city, name): (zid.replace("-", ""), fee) for city, name, zid, fee in cur.fetchall()}
    cur.execute("SELECT slug, id::text FROM catalog_category WHERE deleted_at IS NULL")
    categories = {slug: cid.replace("-", "") for slug, cid in cur.fetchall()}
    return zones, categories


# --- Loading --------------------------------------------------------------------------------------

_CHUNK_ROWS = 50_000


class _Stream:
    """Rows of one table, buffered as COPY text lines and sent in chunks."""

    def __init__(self, loader: _Loader, index: int, table: str, columns: str, total: int | None):
        self.loader, self.index, self.table, self.columns = loader, index, table, columns
        self.lines: list[str] = []
        self.count = 0
        self.seconds = 0.0  # spent in COPY (PostgreSQL's side of the work)
        self.bar = tqdm(
            total=total,
            desc=table,
            unit=" rows",
            unit_scale=True,
            position=index,
            leave=True,
            dynamic_ncols=True,
            mininterval=0.5,
            disable=not loader.progress,
        )

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= _CHUNK_ROWS:
            self.loader.flush(upto=self.index)

    def take(self) -> tuple[bytes, int]:
        lines, self.lines = self.lines, []
        self.count += len(lines)
        return "".join(lines).encode(), len(lines)


class _Loader:
    """Sends the streams' chunks with COPY from a second thread, over the same connection.

    Streams are created parents first; flushing stream k first flushes every stream before it,
    so a row is never sent before a row it references.
    """

    def __init__(self, *, progress: bool) -> None:
        self.progress = progress
        self.streams: list[_Stream] = []
        # Deep enough for the generator to run well ahead of PostgreSQL (a chunk is a few MB).
        self.queue: queue.Queue[tuple[_Stream, bytes, int] | None] = queue.Queue(maxsize=48)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._send_all, name="seed-copy", daemon=True)

    def stream(self, table: str, columns: str, total: int | None = None) -> _Stream:
        s = _Stream(self, len(self.streams), table, columns, total)
        self.streams.append(s)
        return s

    def flush(self, upto: int | None = None) -> None:
        last = len(self.streams) - 1 if upto is None else upto
        for s in self.streams[: last + 1]:
            if s.lines:
                if self.error:
                    raise self.error
                chunk, rows = s.take()
                self.queue.put((s, chunk, rows))

    def counts(self) -> dict[str, int]:
        return {s.table: s.count for s in self.streams}

    def copy_seconds(self) -> dict[str, float]:
        return {s.table: s.seconds for s in self.streams}

    def __enter__(self) -> _Loader:
        self.cursor = connection.connection.cursor()
        self.thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc is None:
                self.flush()
            self.queue.put(None)
            self.thread.join()
        finally:
            for s in self.streams:
                s.bar.close()
            self.cursor.close()
        if exc is None and self.error is not None:
            raise self.error

    def _send_all(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain, so the producer never blocks on a dead loader
            stream, chunk, rows = item
            try:
                started = time.monotonic()
                with self.cursor.copy(f"COPY {stream.table} ({stream.columns}) FROM STDIN") as copy:
                    copy.write(chunk)
                stream.seconds += time.monotonic() - started
                stream.bar.update(rows)
            except BaseException as exc:  # re-raised in the producer thread
                self.error = exc


# --- Formatting helpers ---------------------------------------------------------------------------

NULL = "\\N"
EPOCH = dt.date(1970, 1, 1)


def _esc(text: str) -> str:
    """COPY text escaping, for strings assembled from reference data."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _price(value: float) -> int:
    """Round to the nearest 25 XAF, the smallest coin in everyday use."""
    return max(25, round(value / 25) * 25)


class _Clock:
    """Formats integer UTC epoch seconds as timestamptz text, fast: one date and one time-of-day
    string are built once and reused."""

    TIMES = [f" {s // HOUR:02d}:{s // MINUTE % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

    def __init__(self) -> None:
        self.days: dict[int, str] = {}

    def __call__(self, ts: int) -> str:
        day, sec = divmod(ts, DAY)
        date = self.days.get(day)
        if date is None:
            date = self.days[day] = (EPOCH + dt.timedelta(days=day)).isoformat()
        return date + self.TIMES[sec]


# Column lists: each generator below writes its values in exactly this order (and
# tests/core/test_seed_demo.py checks these lists against the models).
TRACKED = "id, created_at, updated_at, deleted_at, deleted_by_cascade"
HISTORY = "history_date, history_change_reason, history_type, history_user_id"
COLUMNS = {
    "orders_zone": f"{TRACKED}, city, name, delivery_fee_xaf",
    "catalog_category": f"{TRACKED}, slug, name_fr, name_en, position, parent_id",
    "catalog_vendor": f"{TRACKED}, name, slug, phone, email, city, status, commission_bps",
    "catalog_product": (
        f"{TRACKED}, sku, name, description, price_xaf, compare_at_price_xaf, unit, is_active, "
        "attributes, version, category_id, vendor_id"
    ),
    "orders_customer": f"{TRACKED}, name, phone, default_address, zone_id",
    "orders_order": (
        f"{TRACKED}, number, status, channel, payment_method, payment_status, subtotal_xaf, "
        "delivery_fee_xaf, total_xaf, address, placed_at, expires_at, note, customer_name, customer_id, "
        "vendor_id, zone_id"
    ),
    "orders_orderitem": (
        "id, created_at, updated_at, sku, name, unit_price_xaf, quantity, line_total_xaf, order_id, "
        "product_id"
    ),
    "orders_payment": (
        "id, created_at, updated_at, provider, provider_reference, idempotency_key, amount_xaf, "
        "received_xaf, status, paid_at, callbacks, needs_refund, refund_flagged_at, refund_settled_at, "
        "refund_settled_by_id, order_id"
    ),
    "orders_orderevent": "id, created_at, kind, from_status, to_status, actor, data, actor_user_id, order_id",
    "catalog_stockmovement": "id, created_at, delta, kind, reason, reference, actor, product_id, vendor_id",
    "catalog_stock": "id, created_at, updated_at, on_hand, reserved, version, product_id, vendor_id",
}
HISTORY_TABLES = {
    "orders_zone": "orders_historicalzone",
    "catalog_category": "catalog_historicalcategory",
    "catalog_vendor": "catalog_historicalvendor",
    "catalog_product": "catalog_historicalproduct",
    "orders_customer": "orders_historicalcustomer",
    "orders_order": "orders_historicalorder",
}


@dataclass
class _Tracked:
    """A tracked table and its history table, written together."""

    rows: _Stream
    history: _Stream
    clock: _Clock

    def add(self, row: str, created: int) -> None:
        """`row` is the row's COPY text without the newline."""
        self.rows.add(row + "\n")
        self.history.add(f"{row}\t{self.clock(created)}\t{HISTORY_REASON}\t+\t{NULL}\n")

    def changed(self, row: str, when: int) -> None:
        self.history.add(f"{row}\t{self.clock(when)}\t{HISTORY_REASON}\t~\t{NULL}\n")


def _tracked(
    loader: _Loader, clock: _Clock, table: str, total: int | None, history_total: int | None = None
) -> _Tracked:
    rows = loader.stream(table, COLUMNS[table], total)
    history = loader.stream(HISTORY_TABLES[table], f"{COLUMNS[table]}, {HISTORY}", history_total)
    return _Tracked(rows, history, clock)


# --- Generation -----------------------------------------------------------------------------------

# The vendor's steps: (status, seconds after the previous step: min, max).
_STEPS = (
    ("accepted", 60, 900),
    ("preparing", 60, 1200),
    ("ready", 300, 2400),
    ("out_for_delivery", 120, 1800),
    ("delivered", 600, 3600),
)
_STOCK_EFFECT = {"out_for_delivery": "sale", "cancelled": "release", "expired": "release"}
_ON_HAND_KINDS = frozenset(StockMovement.ON_HAND_KINDS)
_RESERVED_KINDS = frozenset(StockMovement.RESERVED_KINDS)
_CORRECTIONS = (
    ("adjustment", -1, "casse"),
    ("adjustment", -2, "périmé"),
    ("count", -1, "inventaire"),
    ("count", 1, "inventaire"),
)
_RESTOCK_LOTS = (12, 24, 24, 36, 48, 60, 100)


class _Choice:
    """A weighted choice with precomputed cumulative weights (random.choices recomputes them)."""

    def __init__(self, values: tuple[Any, ...], weights: tuple[int, ...]) -> None:
        self.values, self.cum = values, list(accumulate(weights))

    def __call__(self, rng: Random) -> Any:
        return self.values[bisect_right(self.cum, rng.random() * self.cum[-1])]


_LINES = _Choice(tuple(range(1, 10)), (26, 24, 19, 12, 8, 5, 3, 2, 1))  # about 2.9 lines per order
_QUANTITY = _Choice(tuple(range(1, 7)), (60, 24, 9, 4, 2, 1))
_CHANNEL = _Choice(("storefront", "phone", "admin"), (80, 17, 3))
_METHOD_ONLINE = _Choice(("mtn_momo", "orange_money", "cash"), (45, 35, 20))
_METHOD_OFFLINE = _Choice(("mtn_momo", "orange_money", "cash"), (20, 15, 65))


@dataclass
class _Product:
    id: str
    sku: str
    name: str
    price: int
    created: int
    vendor: int


@dataclass
class _Ledger:
    """Per-product stock state while orders are generated (parallel lists, indexed like products)."""

    free: list[int] = field(default_factory=list)  # never overstated: releases are not given back
    on_hand: list[int] = field(default_factory=list)
    reserved: list[int] = field(default_factory=list)
    moves: list[int] = field(default_factory=list)
    last: list[int] = field(default_factory=list)


class _Generator:
    def __init__(self, config: SeedConfig, end: int) -> None:
        self.c = config
        self.rng = Random(config.seed)
        self.end = end
        self.start = end - round(config.months * 30.44 * DAY)
        self.launch = self.start - 180 * DAY  # when the marketplace's zones and categories appeared
        self.first_ts = self.start - 121 * DAY  # the oldest ledger row: vendors onboard <= 120 days before
        self.clock = _Clock()
        self.numbers: list[str] = []
        self.existing_zones: dict[tuple[str, str], tuple[str, int]] = {}
        self.existing_categories: dict[str, str] = {}
        self.deadline = settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES * MINUTE

    def uuid(self, at: int) -> str:
        """The id of a row created at `at` (epoch seconds), as 32 hex digits (PostgreSQL's uuid
        input takes them without hyphens): a UUID v7 like the ids the application makes, so the
        seeded indexes have the shape production's have; its millisecond and random bits come
        from the seeded generator."""
        bits = self.rng.getrandbits(RANDOM_BITS + 10)
        return f"{uuid7_int(at * 1000 + (bits >> RANDOM_BITS) % 1000, bits):032x}"

    def run(self, loader: _Loader) -> None:
        c, ts = self.c, self.clock
        n_products = c.vendors * c.products_per_vendor
        self.zones_t = _tracked(loader, ts, "orders_zone", None)
        self.categories_t = _tracked(loader, ts, "catalog_category", None)
        self.vendors_t = _tracked(loader, ts, "catalog_vendor", c.vendors, c.vendors)
        self.products_t = _tracked(loader, ts, "catalog_product", n_products, n_products)
        self.customers_t = _tracked(loader, ts, "orders_customer", c.customers, c.customers)
        self.orders_t = _tracked(loader, ts, "orders_order", c.orders)
        self.items = loader.stream("orders_orderitem", COLUMNS["orders_orderitem"])
        self.payments = loader.stream("orders_payment", COLUMNS["orders_payment"])
        self.events = loader.stream("orders_orderevent", COLUMNS["orders_orderevent"])
        self.movements = loader.stream("catalog_stockmovement", COLUMNS["catalog_stockmovement"])
        self.stock = loader.stream("catalog_stock", COLUMNS["catalog_stock"], n_products)

        self.phones: set[str] = set()
        self.make_zones()
        self.make_categories()
        self.make_vendors()
        self.make_products()
        self.make_customers()
        self.make_orders()
        self.make_stock()

    # --- reference data --------------------------------------------------------------------------

    def make_zones(self) -> None:
        self.zones: list[tuple[str, str, str, int]] = []  # (id, city, name, fee)
        for city, name, fee in data.ZONES:
            existing = self.existing_zones.get((city, name))
            if existing:
                self.zones.append((existing[0], city, name, existing[1]))
                continue
            at = self.launch
            zid = self.uuid(at)
            self.zones_t.add(
                f"{zid}\t{self.clock(at)}\t{self.clock(at)}\t{NULL}\tf\t{city}\t{name}\t{fee}", at
            )
            self.zones.append((zid, city, name, fee))
        self.zones_by_city = {
            city: [z for z in self.zones if z[1] == city] for city in sorted({z[1] for z in self.zones})
        }

    def make_categories(self) -> None:
        """The tree, and the sellable catalogue: every item x size x qualifier, with its leaf."""
        at = self.clock(self.launch)
        self.catalog: list[tuple[str, str, str, int, str, str, str, str]] = []
        for position, (slug, name_fr, name_en, children) in enumerate(data.CATEGORIES):
            root = self._category(slug, name_fr, name_en, position, NULL, at)
            for child_pos, (cslug, cname_fr, cname_en, items) in enumerate(children):
                leaf = self._category(cslug, cname_fr, cname_en, child_pos, root, at)
                for item_fr, item_en, unit, base, sizes in items:
                    for size_fr, size_en, size_mult in sizes:
                        for qual_fr, qual_en, qual_mult in data.QUALIFIERS:
                            fr = " ".join(p for p in (item_fr, qual_fr, size_fr) if p)
                            en = " ".join(p for p in (item_en, qual_en, size_en) if p)
                            price = _price(base * size_mult * qual_mult)
                            code = cslug.replace("-", "")[:3].upper()
                            self.catalog.append((fr, en, unit, price, leaf, cname_fr, cname_en, code))

    def _category(self, slug: str, name_fr: str, name_en: str, position: int, parent: str, at: str) -> str:
        if slug in self.existing_categories:
            return self.existing_categories[slug]
        cid = self.uuid(self.launch)
        self.categories_t.add(
            f"{cid}\t{at}\t{at}\t{NULL}\tf\t{slug}\t{_esc(name_fr)}\t{_esc(name_en)}\t{position}\t{parent}",
            self.launch,
        )
        return cid

    def phone(self) -> str:
        rng = self.rng
        while True:
            number = f"+237{rng.choice(data.MOBILE_PREFIXES)}{rng.randrange(1_000_000):06d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def make_vendors(self) -> None:
        """Cities alternate 3 Douala : 2 Yaoundé; a few vendors are pending or suspended."""
        rng, c = self.rng, self.c
        self.vendor_ids: list[str] = []
        self.vendor_slugs: list[str] = []
        self.vendor_cities: list[str] = []
        self.vendor_created: list[int] = []
        self.vendor_weights: list[float] = []  # 0 for vendors that take no orders
        slugs: set[str] = set()
        for i in range(c.vendors):
            city = "douala" if i % 5 < 3 else "yaounde"
            status = "pending" if i % 17 == 16 else "suspended" if i % 29 == 28 else "active"
            zone = rng.choice(self.zones_by_city[city])[2]
            owner = rng.choice(data.VENDOR_OWNERS).format(
                first=rng.choice(data.FIRST_NAMES), last=rng.choice(data.LAST_NAMES), zone=zone
            )
            name = f"{rng.choice(data.VENDOR_KINDS)} {owner}"
            base = slugify(name)[:80]
            slug, n = base, 1
            while slug in slugs:
                n += 1
                slug = f"{base}-{n}"
            slugs.add(slug)
            created = self.start - rng.randint(7 * DAY, 120 * DAY)
            vid = self.uuid(created)
            at = self.clock(created)
            self.vendors_t.add(
                f"{vid}\t{at}\t{at}\t{NULL}\tf\t{_esc(name)}\t{slug}\t{self.phone()}\t{slug}@example.cm\t"
                f"{city}\t{status}\t{rng.choice((800, 1000, 1000, 1200, 1500))}",
                created,
            )
            self.vendor_ids.append(vid)
            self.vendor_slugs.append(slug)
            self.vendor_cities.append(city)
            self.vendor_created.append(created)
            self.vendor_weights.append(rng.paretovariate(1.6) if status == "active" else 0.0)

    def make_products(self) -> None:
        """Each vendor sells a sample of the catalogue (repeats once it has sold out of ideas)."""
        rng, c, clock = self.rng, self.c, self.clock
        products_t, movements = self.products_t, self.movements
        self.products: list[_Product] = []
        self.ledger = ledger = _Ledger()
        catalog = self.catalog
        attributes = [
            (
                json.dumps({"origine": fr}, ensure_ascii=False),
                json.dumps({"origin": en}, ensure_ascii=False),
            )
            for fr, en in data.ORIGINS
        ]
        for v in range(c.vendors):
            vid = self.vendor_ids[v]
            actor = f"vendor:{self.vendor_slugs[v]}"
            markup = rng.uniform(0.9, 1.15)
            picks = rng.sample(range(len(catalog)), min(c.products_per_vendor, len(catalog)))
            while len(picks) < c.products_per_vendor:
                picks.append(rng.randrange(len(catalog)))
            for j, k in enumerate(picks):
                fr, en, unit, base_price, leaf, cat_fr, cat_en, code = catalog[k]
                origin = rng.randrange(len(data.ORIGINS))
                # Short descriptions: the search vector (a generated column) costs PostgreSQL
                # about 1 us per character of description when a product is inserted.
                if rng.random() < 0.75:
                    name = fr
                    description = f"{cat_fr}, origine {data.ORIGINS[origin][0]}."
                    attrs = attributes[origin][0]
                else:
                    name = en
                    description = f"{cat_en}, from {data.ORIGINS[origin][1]}."
                    attrs = attributes[origin][1]
                price = _price(base_price * markup)
                compare_at = str(_price(price * rng.uniform(1.1, 1.3)) + 25) if rng.random() < 0.1 else NULL
                sku = f"{code}-{j + 1:05d}"
                created = self.vendor_created[v] + rng.randint(MINUTE, 3 * DAY)
                pid = self.uuid(created)
                at = clock(created)
                active = "t" if rng.random() < 0.97 else "f"
                products_t.add(
                    f"{pid}\t{at}\t{at}\t{NULL}\tf\t{sku}\t{_esc(name)}\t{_esc(description)}\t{price}\t"
                    f"{compare_at}\t{unit}\t{active}\t{attrs}\t1\t{leaf}\t{vid}",
                    created,
                )
                self.products.append(_Product(pid, sku, _esc(name), price, created, v))
                initial = rng.randint(10, 120)
                movements.add(
                    f"{self.uuid(created)}\t{at}\t{initial}\trestock\tinitial stock\t\t{actor}\t"
                    f"{pid}\t{vid}\n"
                )
                ledger.free.append(initial)
                ledger.on_hand.append(initial)
                ledger.reserved.append(0)
                ledger.moves.append(1)
                ledger.last.append(created)

    def make_customers(self) -> None:
        """Cities 3 Douala : 2 Yaoundé; the first 30% of each city joined before the period."""
        rng, c, clock = self.rng, self.c, self.clock
        # (joined, id, address, zone id, zone name, fee, name): address and name COPY-escaped.
        self.customers: dict[str, list[tuple[int, str, str, str, str, int, str]]] = {}
        by_city: dict[str, list[int]] = {}
        for i in range(c.customers):
            by_city.setdefault("douala" if i % 5 < 3 else "yaounde", []).append(i)
        period = self.end - HOUR - self.start
        for city, members in by_city.items():
            early = max(1, int(len(members) * 0.3))
            joined = sorted(
                self.start - rng.randint(HOUR, 60 * DAY) if n < early else self.start + rng.randrange(period)
                for n in range(len(members))
            )
            rows = []
            for created in joined:
                cid = self.uuid(created)
                zid, _, zone_name, fee = rng.choice(self.zones_by_city[city])
                name = f"{rng.choice(data.FIRST_NAMES)} {rng.choice(data.LAST_NAMES)}"
                address = _esc(f"{rng.choice(data.LANDMARKS)}, {zone_name}")
                at = clock(created)
                self.customers_t.add(
                    f"{cid}\t{at}\t{at}\t{NULL}\tf\t{_esc(name)}\t{self.phone()}\t{address}\t{zid}", created
                )
                rows.append((created, cid, address, zid, zone_name, fee, _esc(name)))
            self.customers[city] = rows

    # --- orders ----------------------------------------------------------------------------------

    def placements(self) -> list[int]:
        """When orders were placed: growing over the period, busiest at lunch and after work,
        and a burst in the last four hours so that the newest orders are still open."""
        rng, n = self.rng, self.c.orders
        recent = min(max(10, n // 100), n // 4)
        hours = list(accumulate(data.LOCAL_HOUR_WEIGHTS))
        days = max(1, (self.end - 4 * HOUR - self.start) // DAY)
        times = []
        for _ in range(n - recent):
            # density grows linearly from 1 to 3 over the period: inverse of F(x) = (x + x^2) / 2
            x = ((1 + 8 * rng.random()) ** 0.5 - 1) / 2
            day = self.start - self.start % DAY + int(x * days) * DAY
            local_hour = bisect_right(hours, rng.random() * hours[-1])
            ts = day + (local_hour - 1) * HOUR + rng.randrange(HOUR)  # Douala is UTC+1
            times.append(min(max(ts, self.start), self.end - 4 * HOUR))
        times.extend(self.end - rng.randint(MINUTE, 4 * HOUR) for _ in range(recent))
        times.sort()
        return times

    def make_orders(self) -> None:
        c = self.c
        if not c.orders:
            return
        pool = [
            v
            for v in range(c.vendors)
            if self.vendor_weights[v] > 0 and self.customers.get(self.vendor_cities[v])
        ]
        if not pool or not c.products_per_vendor:
            raise SeedError("orders need an active vendor with products and a customer in its city")
        cum = list(accumulate(self.vendor_weights[v] for v in pool))
        joined = {city: [row[0] for row in rows] for city, rows in self.customers.items()}
        for number, placed in zip(self.numbers, self.placements(), strict=True):
            v = pool[bisect_right(cum, self.rng.random() * cum[-1])]
            customers = self.customers[self.vendor_cities[v]]
            k = bisect_right(joined[self.vendor_cities[v]], placed)
            customer = customers[self.rng.randrange(k) if k else 0]
            self.order(number, placed, v, customer)

    def order(
        self, number: str, placed: int, v: int, customer: tuple[int, str, str, str, str, int, str]
    ) -> None:
        rng, clock, ledger, products = self.rng, self.clock, self.ledger, self.products
        ppv = self.c.products_per_vendor
        vid, vendor_actor = self.vendor_ids[v], f"vendor:{self.vendor_slugs[v]}"
        oid, at = self.uuid(placed), clock(placed)

        # Lines: popular products more often (a skewed pick), one line per product.
        n_lines = min(_LINES(rng), ppv)
        lines: dict[int, int] = {}
        while len(lines) < n_lines:
            p = v * ppv + int(ppv * rng.random() ** 2.5)
            if p not in lines:
                lines[p] = _QUANTITY(rng)
        subtotal = sum(products[p].price * qty for p, qty in lines.items())

        # The order keeps the name it was placed with (Order.customer_name): the customer's.
        _, cid, address, zid, zone_name, fee, name = customer
        if rng.random() < 0.1:  # delivered elsewhere this time
            zid, _, zone_name, fee = rng.choice(self.zones_by_city[self.vendor_cities[v]])
            address = _esc(f"{rng.choice(data.LANDMARKS)}, {zone_name}")
        total = subtotal + fee
        channel = _CHANNEL(rng)
        method = (_METHOD_ONLINE if channel == "storefront" else _METHOD_OFFLINE)(rng)
        placer = {"storefront": "storefront", "phone": vendor_actor, "admin": "staff:ops"}[channel]
        note = rng.choice(data.ORDER_NOTES) if rng.random() < 0.15 else ""
        expires = clock(placed + self.deadline) if method != "cash" else NULL
        steps, paid_at = self.lifecycle(placed, method, vendor_actor)
        status = steps[-1][0] if steps else "pending"
        payment_status = "unpaid" if paid_at is None else "refunded" if status == "refunded" else "paid"

        # The order as it is now, and its history: `+` as placed, `~` as it is now.
        updated = max(placed, steps[-1][1] if steps else placed, paid_at or placed)
        tail = f"{subtotal}\t{fee}\t{total}\t{address}\t{at}\t{expires}\t{note}\t{name}\t{cid}\t{vid}\t{zid}"
        as_placed = f"{oid}\t{at}\t{at}\t{NULL}\tf\t{number}\tpending\t{channel}\t{method}\tunpaid\t{tail}"
        if updated == placed:
            self.orders_t.add(as_placed, placed)
        else:
            as_now = (
                f"{oid}\t{at}\t{clock(updated)}\t{NULL}\tf\t{number}\t{status}\t{channel}\t{method}\t"
                f"{payment_status}\t{tail}"
            )
            self.orders_t.rows.add(as_now + "\n")
            self.orders_t.history.add(f"{as_placed}\t{at}\t{HISTORY_REASON}\t+\t{NULL}\n")
            self.orders_t.changed(as_now, updated)

        # Items, and the reservation made at placement (restocking first when the shelf is short).
        for p, qty in lines.items():
            prod = products[p]
            if ledger.free[p] < qty:
                self.restock(p, vid, placed, qty, vendor_actor)
            ledger.free[p] -= qty
            self.items.add(
                f"{self.uuid(placed)}\t{at}\t{at}\t{prod.sku}\t{prod.name}\t{prod.price}\t{qty}\t"
                f"{prod.price * qty}\t{oid}\t{prod.id}\n"
            )
            self.movement(p, vid, placed, qty, "reserve", number, placer)
        if paid_at is not None:
            self.payment(oid, number, method, total, paid_at)

        events = self.events
        events.add(
            f"{self.uuid(placed)}\t{at}\tplaced\t\tpending\t{placer}\t"
            f'{{"channel": "{channel}", "total_xaf": {total}}}\t{NULL}\t{oid}\n'
        )
        previous = "pending"
        for to, when, actor, step_note in steps:
            if to in _STOCK_EFFECT:
                kind = _STOCK_EFFECT[to]
                for p, qty in lines.items():
                    self.movement(p, vid, when, -qty, kind, number, actor)
            payload = f'{{"note": "{step_note}"}}' if step_note else "{}"
            events.add(
                f"{self.uuid(when)}\t{clock(when)}\tstatus\t{previous}\t{to}\t{actor}\t{payload}\t{NULL}\t{oid}\n"
            )
            previous = to

    def lifecycle(
        self, placed: int, method: str, vendor_actor: str
    ) -> tuple[list[tuple[str, int, str, str]], int | None]:
        """The order's story: [(status, when, actor, note)] and when it was paid, cut at `end`
        (whatever has not happened yet is left out, so the newest orders are still open)."""
        rng = self.rng
        steps: list[tuple[str, int, str, str]] = []
        paid_at: int | None = None
        mobile = method != "cash"
        r = rng.random()
        if mobile and r < 0.07:  # never paid: the expiry job releases it (it runs every 5 minutes)
            when = placed + self.deadline + rng.randint(0, 5 * MINUTE)
            steps.append(("expired", when, "system:expire_unpaid_orders", "unpaid past deadline"))
        elif mobile and r < 0.13:  # never paid: the customer gives up
            when = placed + rng.randint(MINUTE, 20 * MINUTE)
            steps.append(("cancelled", when, "storefront", "client injoignable"))
        else:
            t = placed
            if mobile:
                paid_at = t = placed + rng.randint(30, 10 * MINUTE)
            cancel_after = rng.randrange(3) if not mobile and r < 0.08 else None
            for i, (status, lo, hi) in enumerate(_STEPS):
                t += rng.randint(lo, hi)
                if cancel_after is not None and i == cancel_after + 1:
                    steps.append(("cancelled", t, vendor_actor, "rupture chez le fournisseur"))
                    break
                steps.append((status, t, vendor_actor, ""))
            if steps[-1][0] == "delivered":
                if not mobile:
                    paid_at = steps[-1][1] - rng.randint(5, MINUTE)  # cash, at the door
                elif rng.random() < 0.007:
                    when = steps[-1][1] + rng.randint(DAY, 3 * DAY)
                    steps.append(("refunded", when, "staff:ops", "produit avarié"))
        end = self.end
        return [s for s in steps if s[1] < end], paid_at if paid_at is not None and paid_at < end else None

    def restock(self, p: int, vid: str, before: int, needed: int, actor: str) -> None:
        """A supplier delivery some time before `before`; now and then a breakage or a count after."""
        rng, ledger = self.rng, self.ledger
        lot = needed + rng.choice(_RESTOCK_LOTS)
        when = max(before - rng.randint(15 * MINUTE, 6 * HOUR), self.products[p].created + MINUTE)
        self.movement(
            p, vid, when, lot, "restock", f"BL-{rng.randrange(10**6):06d}", actor, "livraison fournisseur"
        )
        ledger.free[p] += lot
        if rng.random() < 0.05:
            later = when + rng.randint(HOUR, 2 * DAY)
            if later < self.end:
                kind, delta, why = rng.choice(_CORRECTIONS)
                self.movement(p, vid, later, delta, kind, "", actor, why)
                ledger.free[p] += min(delta, 0)  # a gain is not counted on: `free` never overstates

    def payment(self, oid: str, number: str, method: str, amount: int, paid_at: int) -> None:
        rng, at = self.rng, self.clock(paid_at)
        digits = number[3:]
        if method == "mtn_momo":
            reference, actor = f"{rng.randrange(10**4):04d}{digits}", "system:callback:mtn_momo"
            callbacks = f'[{{"status": "SUCCESSFUL", "financialTransactionId": "{reference}"}}]'
        elif method == "orange_money":
            reference, actor = f"MP{rng.randrange(10**6):06d}.{digits}", "system:callback:orange_money"
            callbacks = f'[{{"status": "SUCCESS", "txnid": "{reference}"}}]'
        else:
            # Recorded by operations staff: vendors may not record money received.
            reference, actor, callbacks = f"CASH-{digits}", "staff:ops", "[]"
        pid = self.uuid(paid_at)
        self.payments.add(
            f"{pid}\t{at}\t{at}\t{method}\t{reference}\t\t{amount}\t{amount}\tsucceeded\t{at}\t"
            f"{callbacks}\tf\t{NULL}\t{NULL}\t{NULL}\t{oid}\n"
        )
        self.events.add(
            f"{self.uuid(paid_at)}\t{at}\tpayment\t\t\t{actor}\t"
            f'{{"payment_id": "{pid}", "provider": "{method}", "reference": "{reference}", '
            f'"status": "succeeded", "amount_xaf": {amount}}}'
            f"\t{NULL}\t{oid}\n"
        )

    def movement(
        self, p: int, vid: str, when: int, delta: int, kind: str, reference: str, actor: str, reason: str = ""
    ) -> None:
        """One ledger row, and its effect on the product's running stock (as StockMovement says)."""
        ledger = self.ledger
        if kind in _ON_HAND_KINDS:
            ledger.on_hand[p] += delta
        if kind in _RESERVED_KINDS:
            ledger.reserved[p] += delta
        ledger.moves[p] += 1
        if when > ledger.last[p]:
            ledger.last[p] = when
        self.movements.add(
            f"{self.uuid(when)}\t{self.clock(when)}\t{delta}\t{kind}\t{reason or kind}\t{reference}\t"
            f"{actor}\t{self.products[p].id}\t{vid}\n"
        )

    def make_stock(self) -> None:
        """Stock rows last: their quantities are what the ledger added up to."""
        ledger, clock = self.ledger, self.clock
        for p, prod in enumerate(self.products):
            on_hand, reserved = ledger.on_hand[p], ledger.reserved[p]
            if not 0 <= reserved <= on_hand:  # the generator's own invariant; never expected
                raise SeedError(f"internal error: stock of {prod.sku} would be {on_hand}/{reserved}")
            self.stock.add(
                f"{self.uuid(prod.created)}\t{clock(prod.created)}\t{clock(ledger.last[p])}\t{on_hand}\t{reserved}\t"
                f"{ledger.moves[p] + 1}\t{prod.id}\t{self.vendor_ids[prod.vendor]}\n"
            )
