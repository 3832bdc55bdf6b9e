"""Pulls: pages of changes for one device, per priority, that never miss a committed change.

A device holds one cursor per priority (0 orders/items/stock, 1 products/categories/zones,
2 the rest). A null cursor starts the initial download: the priority's tables are read directly
(keyset pages over the vendor's live rows; of its sync conflicts only the open and recently
resolved ones, `feed.Entity.download`), after noting the snapshot horizon H0; then the
cursor moves on to the change feed from H0. Changes made while the download runs were written by
transactions whose id is at least H0, so the feed brings them afterwards.

The feed is read in (xid, id, ord) order and only below the horizon
`pg_snapshot_xmin(pg_current_snapshot())`: every transaction below it has ended, so no change can
appear later behind a cursor. A transaction that began before a pull and commits after it is
above that pull's horizon, and arrives with the next one. Each page serves the rows as they are
now (a row changed five times goes once; a deleted or gone row goes as `deleted`).

Cursors are signed (django.core.signing); they carry the database's sync generation. A cursor of
another generation (the database was restored from a backup), one older than the retained feed,
one past the transaction ids this server has numbered (a copy restored on another server), or
one whose signature does not verify, is answered with `reset: true`: the device drops its copy
and downloads again with null cursors.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from okada.core.actors import Actor
from okada.core.errors import InvalidInput
from okada.core.texts import Text

from . import feed
from .feed import Entity
from .models import Device
from .services import Generation, device_for, generation_current

SALT = "okada.sync.cursor"
ZERO = "00000000-0000-0000-0000-000000000000"
DELETED_BYTES = 40  # a quoted UUID and its comma


# --- Cursors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a device is in one priority: downloading table `table` after `key` (with the feed
    to follow from `xid`), or reading the feed after (xid, id, ord)."""

    download: bool
    xid: int
    id: str = ZERO
    ord: int = 0
    table: int = 0
    key: tuple[str, ...] | None = None


def encode(cursor: Cursor, *, generation: str, vendor_id: uuid.UUID, priority: int) -> str:
    body: dict[str, Any] = {"g": generation, "v": vendor_id.hex, "p": priority, "x": cursor.xid}
    if cursor.download:
        body.update(d=1, t=cursor.table, k=cursor.key)
    else:
        body.update(i=cursor.id, o=cursor.ord)
    return signing.dumps(body, key=_key(), salt=SALT, compress=True)


class StaleCursor(Exception):
    """The cursor cannot be served: the device must download again."""


def decode(token: str, *, generation: Generation, vendor_id: uuid.UUID, priority: int) -> Cursor:
    try:
        body = signing.loads(token, key=_key(), salt=SALT)
        if body["g"] != generation.token or body["v"] != vendor_id.hex:
            raise StaleCursor("another generation or vendor")
        # Another priority's cursor (a device that mixed them up) is no position in this one's
        # tables or feed: a download key of another table's columns, or feed changes skipped.
        # Cursors issued before they named their priority have no "p": their key is checked.
        if body.get("p", priority) != priority:
            raise StaleCursor("another priority")
        if body.get("d"):
            cursor = Cursor(True, int(body["x"]), table=int(body["t"]), key=_key_tuple(body["k"]))
            _check_download_key(cursor, priority)
        else:
            cursor = Cursor(False, int(body["x"]), str(uuid.UUID(body["i"])), int(body["o"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise StaleCursor(str(exc)) from None
    if cursor.xid > generation.reached_xid:
        # A position this server never numbered: the database is a copy restored on another
        # server, which numbered its transactions further (changes made here would lie behind it).
        raise StaleCursor("a position this server never reached")
    if generation.pruned is not None:
        # Changes up to the pruned position are gone: a cursor below it would miss some.
        pruned_xid, pruned_id = generation.pruned
        if (cursor.xid, uuid.UUID(cursor.id)) <= (pruned_xid, uuid.UUID(pruned_id)):
            raise StaleCursor("older than the retained feed")
    return cursor


def _check_download_key(cursor: Cursor, priority: int) -> None:
    """The download key names a row of the priority's table `table` by its keyset's columns."""
    tables = feed.DOWNLOAD[priority]
    if cursor.key is not None and not (
        0 <= cursor.table < len(tables) and tables[cursor.table].keyset_of(cursor.key) is not None
    ):
        raise StaleCursor("not a position in this priority's tables")


def _key_tuple(raw: Any) -> tuple[str, ...] | None:
    return None if raw is None else tuple(str(v) for v in raw)


def _key() -> str:
    return settings.OKADA_SYNC_CURSOR_KEY or settings.SECRET_KEY


# --- Pages --------------------------------------------------------------------------------------


@dataclass
class Page:
    """What one pull answers. Rows are kept as the JSON text PostgreSQL built, and joined as is."""

    rows_cap: int
    bytes_cap: int
    upserted: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, str | None] = field(default_factory=dict)
    has_more: dict[str, bool] = field(default_factory=dict)
    last_mutation_id: int = 0
    reset: bool = False
    rows: int = 0
    bytes: int = 0
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def fits(self, rows: int, size: int) -> bool:
        """Room for `rows` more rows of `size` bytes? A page always takes its first rows."""
        if self.rows == 0:
            return True
        return self.rows + rows <= self.rows_cap and self.bytes + size <= self.bytes_cap

    @property
    def full(self) -> bool:
        return self.rows >= self.rows_cap or self.bytes >= self.bytes_cap

    def add(self, entity: str, row_id: str, row: str | None) -> None:
        """Add an upserted row (its JSON) or, with row None, a deleted id; once per row."""
        if (entity, row_id) in self._seen:
            return
        self._seen.add((entity, row_id))
        self.rows += 1
        if row is None:
            self.deleted.setdefault(entity, []).append(row_id)
            self.bytes += DELETED_BYTES
        else:
            self.upserted.setdefault(entity, []).append(row)
            self.bytes += len(row) + 1

    def seen(self, entity: str, row_id: str) -> bool:
        return (entity, row_id) in self._seen

    def as_json(self) -> str:
        """The response body (DESIGN.md section 5), without parsing the rows again."""
        tables = []
        for name in [e.name for e in feed.ENTITIES]:
            up, gone = self.upserted.get(name), self.deleted.get(name)
            if up or gone:
                tables.append(
                    f'"{name}":{{"upserted":[{",".join(up or [])}],"deleted":{json.dumps(gone or [])}}}'
                )
        rest = json.dumps(
            {
                "cursors": self.cursors,
                "has_more": self.has_more,
                "last_mutation_id": self.last_mutation_id,
                "reset": self.reset,
            },
            separators=(",", ":"),
        )
        return '{"changes":{' + ",".join(tables) + "}," + rest[1:]

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.as_json())


def pull(*, actor: Actor, device_id: Any, cursors: Any, limit: Any = None) -> Page:
    """One page of changes for the device (see the module docstring)."""
    device = device_for(actor=actor, device_id=device_id)
    raw_cursors = _validated_cursors(cursors)
    rows_cap = _validated_limit(limit)
    # The horizon first, before this pull writes anything (its own transaction id would hold it).
    horizon = _horizon()
    generation = generation_current()
    page = Page(rows_cap=rows_cap, bytes_cap=settings.OKADA_SYNC_PAGE_MAX_BYTES)
    vendor_id = uuid.UUID(str(device.vendor_id))
    try:
        positions = {
            p: (
                decode(raw, generation=generation, vendor_id=vendor_id, priority=p)
                if raw
                else Cursor(True, horizon)
            )
            for p, raw in raw_cursors.items()
        }
    except StaleCursor:
        page.reset = True
        page.cursors = {str(p): None for p in feed.PRIORITIES}
        page.has_more = {str(p): True for p in feed.PRIORITIES}
    else:
        for priority in feed.PRIORITIES:
            reader = _Reader(page, vendor_id, priority, horizon)
            cursor, more = reader.serve(positions[priority])
            page.cursors[str(priority)] = encode(
                cursor, generation=generation.token, vendor_id=vendor_id, priority=priority
            )
            page.has_more[str(priority)] = more
    page.last_mutation_id = device.last_mutation_id
    Device.objects.filter(pk=device.pk).update(last_pull_at=timezone.now())
    return page


def _validated_cursors(cursors: Any) -> dict[int, str | None]:
    if cursors is None:
        cursors = {}
    if not isinstance(cursors, dict) or set(map(str, cursors)) - {str(p) for p in feed.PRIORITIES}:
        raise InvalidInput(_('cursors is an object with the keys "0", "1" and "2".'), field="cursors")
    out: dict[int, str | None] = {}
    for p in feed.PRIORITIES:
        value = cursors.get(str(p))
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            raise InvalidInput(_("A cursor is a string given by the server, or null."), field="cursors")
        out[p] = value or None
    return out


def _validated_limit(limit: Any) -> int:
    cap = settings.OKADA_SYNC_PAGE_MAX_ROWS
    if limit is None:
        return settings.OKADA_SYNC_PAGE_ROWS
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= cap:
        raise InvalidInput(
            Text(gettext_noop("limit is an integer from 1 to %(max)d."), max=cap), field="limit"
        )
    return limit


def _horizon() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        return int(cur.fetchone()[0])


# --- Reading one priority -----------------------------------------------------------------------


class _Reader:
    def __init__(self, page: Page, vendor_id: uuid.UUID, priority: int, horizon: int) -> None:
        self.page = page
        self.vendor_id = vendor_id
        self.priority = priority
        self.horizon = horizon

    def serve(self, cursor: Cursor) -> tuple[Cursor, bool]:
        """Fill the page from `cursor`; the cursor after what was served, and whether more is ready."""
        if cursor.download:
            cursor = self._download(cursor)
            if cursor.download:
                return cursor, True
        return self._feed(cursor)

    # --- the initial download: the tables themselves ---------------------------------------

    def _download(self, cursor: Cursor) -> Cursor:
        tables = feed.DOWNLOAD[self.priority]
        table, key = cursor.table, cursor.key
        while table < len(tables):
            if self.page.full:
                return Cursor(True, cursor.xid, table=table, key=key)
            entity = tables[table]
            room = max(1, self.page.rows_cap - self.page.rows)
            # A parent comes with its carried rows (an order with its items, three on average).
            batch = max(1, room // 4) if entity.carries else room
            rows = self._download_rows(entity, key, batch)
            carried = self._carried(entity, [row_id for _k, row_id, _r in rows])
            for row_key, row_id, row in rows:
                children = carried.get(row_id, [])
                if not self.page.fits(1 + len(children), len(row) + sum(len(c) for _i, c in children)):
                    return Cursor(True, cursor.xid, table=table, key=key)
                self.page.add(entity.name, row_id, row)
                for child_id, child in children:
                    self.page.add(entity.carries or "", child_id, child)
                key = row_key
            if len(rows) < batch:
                table, key = table + 1, None
        return Cursor(False, cursor.xid)  # done: the feed from the download's horizon on

    def _scope(self, entity: Entity) -> str:
        return "true" if entity.vendor is None else f"{entity.vendor} = %(vendor)s"

    def _download_rows(self, entity: Entity, key: tuple[str, ...] | None, limit: int) -> list[Any]:
        # A key of a former keyset (a cursor issued before it changed) goes on in that order.
        keyset = entity.keyset_of(key) or entity.keyset
        columns = ", ".join(keyset)
        after = ""
        params: dict[str, Any] = {"vendor": self.vendor_id, "limit": limit}
        if key is not None:
            casts = {"updated_at": "timestamptz", "id": "uuid"}
            marks = [f"%(k{i})s::{casts[c.rpartition('.')[2]]}" for i, c in enumerate(keyset)]
            # The leading column's bound on its own too: a row comparison over columns of two
            # tables (payments keyed by their order) is no index condition, this bound is.
            after = f" AND ({columns}) > ({', '.join(marks)}) AND {keyset[0]} >= {marks[0]}"
            params.update({f"k{i}": v for i, v in enumerate(key)})
        keys = ", ".join(f"{c}::text" for c in keyset)
        sql = (
            f"SELECT ARRAY[{keys}], r.id::text, {entity.json} FROM {entity.source} "
            f"WHERE {self._scope(entity)} AND {entity.live} AND {entity.download}{after} "
            f"ORDER BY {columns} LIMIT %(limit)s"
        )
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return [(tuple(k), row_id, row) for k, row_id, row in cur.fetchall()]

    def _carried(self, entity: Entity, parent_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """The rows carried with these parents (an order's items), by parent id."""
        if entity.carries is None or not parent_ids:
            return {}
        child = feed.BY_NAME[entity.carries]
        fk = next(c.fk for c in entity.children if c.entity == child.name)
        carried: dict[str, list[tuple[str, str]]] = {}
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT r.{fk}::text, r.id::text, {child.json} FROM {child.source} "
                f"WHERE r.{fk} = ANY(%s::uuid[]) ORDER BY r.{fk}, r.id",
                [parent_ids],
            )
            for parent, row_id, row in cur.fetchall():
                carried.setdefault(parent, []).append((row_id, row))
        return carried

    # --- the change feed -------------------------------------------------------------------

    def _feed(self, cursor: Cursor) -> tuple[Cursor, bool]:
        while not self.page.full:
            want = self.page.rows_cap - self.page.rows + 1
            entries = self._entries(cursor, want)
            rows = self._rows(entries)
            for xid, change_id, ord_, code, row_id in entries:
                entity = feed.BY_CODE[code].name
                if not self.page.seen(entity, row_id):
                    row = rows.get((code, row_id))
                    size = len(row) + 1 if row is not None else DELETED_BYTES
                    if not self.page.fits(1, size):
                        return cursor, True
                    self.page.add(entity, row_id, row)
                cursor = Cursor(False, xid, change_id, ord_)
            if len(entries) < want:
                return cursor, False  # caught up with the horizon
        return cursor, self._more_after(cursor)

    def _branches(self) -> list[str]:
        """The vendor's feed rows, and the shared ones (vendor NULL) when this priority has any."""
        branches = ["c.vendor_id = %(vendor)s"]
        if any(e.vendor is None for e in feed.BY_PRIORITY[self.priority]):
            branches.append("c.vendor_id IS NULL")
        return branches

    def _entries(self, cursor: Cursor, limit: int) -> list[tuple[int, str, int, int, str]]:
        # Each branch walks the pull index (vendor_id, priority, xid, id) from the cursor on;
        # UNION ALL of the sorted branches is merged, not sorted again.
        parts = [
            "(SELECT c.xid AS xid, c.id AS id, u.ord AS ord, c.entity AS entity, u.row_id AS row_id "
            f"FROM {feed.FEED_TABLE} c "
            "CROSS JOIN LATERAL unnest(c.row_ids) WITH ORDINALITY AS u(row_id, ord) "
            f"WHERE {branch} AND c.priority = %(priority)s AND c.xid < %(horizon)s::xid8 "
            "AND (c.xid, c.id) >= (%(xid)s::xid8, %(id)s::uuid) "
            "AND (c.xid, c.id, u.ord) > (%(xid)s::xid8, %(id)s::uuid, %(ord)s) "
            "ORDER BY c.xid, c.id, u.ord LIMIT %(limit)s)"
            for branch in self._branches()
        ]
        sql = (
            "SELECT f.xid::text, f.id::text, f.ord, f.entity, f.row_id::text FROM ("
            + " UNION ALL ".join(parts)
            + ") f ORDER BY f.xid, f.id, f.ord LIMIT %(limit)s"
        )
        params: dict[str, Any] = {
            "vendor": self.vendor_id,
            "priority": self.priority,
            "horizon": str(self.horizon),
            "xid": str(cursor.xid),
            "id": cursor.id,
            "ord": cursor.ord,
            "limit": limit,
        }
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return [(int(x), i, o, e, r) for x, i, o, e, r in cur.fetchall()]

    def _rows(self, entries: Iterable[tuple[int, str, int, int, str]]) -> dict[tuple[int, str], str | None]:
        """The current rows of the entries (absent or not live: None, sent as deleted)."""
        wanted: dict[int, set[str]] = {}
        for _x, _i, _o, code, row_id in entries:
            wanted.setdefault(code, set()).add(row_id)
        rows: dict[tuple[int, str], str | None] = {}
        with connection.cursor() as cur:
            for code, ids in wanted.items():
                entity = feed.BY_CODE[code]
                cur.execute(
                    f"SELECT r.id::text, {entity.json} FROM {entity.source} "
                    f"WHERE {self._scope(entity)} AND {entity.live} AND r.id = ANY(%(ids)s::uuid[])",
                    {"vendor": self.vendor_id, "ids": sorted(ids)},
                )
                rows.update({(code, row_id): row for row_id, row in cur.fetchall()})
        return rows

    def _more_after(self, cursor: Cursor) -> bool:
        return bool(self._entries(cursor, 1))
