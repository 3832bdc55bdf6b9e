"""Every write of the sync app: devices, conflict resolution, the feed's generation and upkeep.

Pulls are in `sync.pull`, pushes (and the mutations they carry) in `sync.push`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from catalog import services as catalog
from catalog.models import Product, Stock, Vendor
from okada.core import services as core
from okada.core.actors import Actor, acting_for
from okada.core.errors import ChangedSinceOpened, Conflict, InvalidInput, NotAllowed, NotFound
from okada.core.texts import Text
from orders import services as orders
from orders.models import Order, OrderStatus

from . import feed
from .models import ConflictKind, ConflictStatus, Device, FeedState, Mutation, SyncConflict

log = logging.getLogger(__name__)

# Change reasons and ledger reasons this app (and sync.push) writes, stored in English and
# translated when shown (okada.core.display.reason_label).
CHANGE_REASONS = (
    gettext_noop("sync conflict: keep_server"),
    gettext_noop("sync conflict: apply_device"),
    gettext_noop("sync conflict: device value"),
    gettext_noop("sync conflict resolved"),
    gettext_noop("stock count (sync conflict resolved)"),
    gettext_noop("deleted on device"),
    gettext_noop("adjusted on device"),
    gettext_noop("stock count on device"),
)

# --- Errors -------------------------------------------------------------------------------------


class DeviceTaken(Conflict):
    code = "device_taken"


class DeviceRevoked(NotAllowed):
    code = "device_revoked"


class MutationGap(Conflict):
    code = "mutation_gap"


class ConflictResolved(Conflict):
    code = "conflict_resolved"


class EarlierConflictOpen(Conflict):
    """The device made an earlier change to the same row that is still an open conflict: applying
    this one first would apply them out of order (a count, then the sale made before it)."""

    code = "earlier_conflict_open"


# --- Devices ------------------------------------------------------------------------------------


def _vendor_id_of(actor: Actor) -> uuid.UUID:
    if actor.role != Actor.VENDOR or actor.vendor_id is None:
        raise NotAllowed(_("Only a vendor's credential can sync a device."))
    return uuid.UUID(str(actor.vendor_id))


def _device_id(raw: Any) -> uuid.UUID:
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except (TypeError, ValueError):
        raise InvalidInput(_("device_id must be a UUID."), field="device_id") from None


def device_register(*, actor: Actor, device_id: Any, name: str) -> tuple[Device, bool]:
    """Register a device for the actor's vendor; return it and whether it is new.

    Idempotent: registering the same device again renames it. A device of another vendor is
    refused (device_taken), a revoked one too (device_revoked): staff revoked it on purpose.
    A suspended vendor registers no new device and renames none (vendor_suspended, as its
    catalog and stock writes: catalog.refuse_if_vendor_suspended); its devices already
    registered, sent again unchanged, are answered as before (nothing written): they still pull
    and push (README "Vendor status").
    """
    vendor_id = _vendor_id_of(actor)
    device_id = _device_id(device_id)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(_("A device needs a name of at most 100 characters."), field="name")
    with transaction.atomic():
        # The vendor's share lock first (as the catalog's writes take it, before their rows):
        # a suspension committed before is seen, one in flight waited for.
        vendor = core.live_share_locked(Vendor, vendor_id)
        device = Device.objects.select_for_update().filter(pk=device_id).first()
        created = False
        if device is None:
            if device_id.int == 0:
                # The value of an id never set (a device app's bug): every device with that bug
                # would share one record and its mutation ids, and a push of one would be taken
                # for a replay of another's, its changes dropped. No new device takes it.
                raise InvalidInput(
                    _("device_id must be a UUID the device drew at random, not the nil UUID."),
                    field="device_id",
                )
            catalog.refuse_if_vendor_suspended(actor=actor, vendor_id=vendor_id, vendor=vendor)
            try:
                with transaction.atomic():
                    device = Device.objects.create(
                        id=device_id, vendor_id=vendor_id, name=name, registered_by=_user(actor)
                    )
                created = True
            except IntegrityError:  # registered at the same instant by another request: read it
                device = core.locked(Device.objects, device_id)
        if device.vendor_id != vendor_id:
            raise DeviceTaken(_("This device id is registered to another vendor."), field="device_id")
        if device.is_revoked:
            raise DeviceRevoked(_("This device was revoked: register it under a new id."))
        if device.name != name:
            catalog.refuse_if_vendor_suspended(actor=actor, vendor_id=vendor_id, vendor=vendor)
            device.name = name
            device.save(update_fields=["name", "updated_at"])
    return device, created


def _user(actor: Actor) -> Any:
    return actor.user if getattr(actor.user, "pk", None) else None


def device_for(*, actor: Actor, device_id: Any) -> Device:
    """The actor's own device, or NotFound (another vendor's device is not found either);
    a revoked device is refused."""
    vendor_id = _vendor_id_of(actor)
    device = Device.objects.filter(pk=_device_id(device_id), vendor_id=vendor_id).first()
    if device is None:
        raise NotFound(_("No such device: register it first."))
    if device.is_revoked:
        raise DeviceRevoked(_("This device was revoked: it can no longer sync."))
    return device


def device_revoke(*, device: Device, actor: Actor, reason: str = "") -> Device:
    """Revoke a device: from now on its pulls and pushes are refused (403 device_revoked)."""
    actor.require("sync.revoke_device")
    with transaction.atomic():
        device = core.locked(Device.objects, device.pk)
        if device.revoked_at is None:
            device.revoked_at = timezone.now()
            device.revoked_by = _user(actor)
            device.revoke_reason = reason[:255]
            device.save(update_fields=["revoked_at", "revoked_by", "revoke_reason", "updated_at"])
    return device


# --- The feed: resends, generation, upkeep ------------------------------------------------------


def feed_resend(*, entity: str, row_ids: list[uuid.UUID], vendor_id: uuid.UUID | None) -> None:
    """Put rows back in the feed without changing them, so devices get the server's values again.

    Used when a pushed change was rejected or conflicted: the device showed its own value
    meanwhile, and the next pull must replace it with what the server kept.
    """
    target = feed.BY_NAME[entity]
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {feed.FEED_TABLE} (id, created_at, xid, vendor_id, priority, entity, row_ids) "
            "SELECT okada_uuid7(), now(), pg_current_xact_id(), %s, %s, %s, %s::uuid[]",
            [vendor_id, target.priority, target.code, [str(i) for i in row_ids]],
        )


@dataclass(frozen=True)
class Generation:
    token: str  # what cursors carry: the stored generation and the database it lives in
    pruned: tuple[int, str] | None  # highest pruned feed position (xid, id), if any
    # The highest transaction id this server has reached (the snapshot's xmax, or this
    # transaction's own id if higher): no feed position of this server lies past it.
    reached_xid: int = 0


# `home`: the database (its oid) and the feed state's own table (its oid) the feed is numbered in.
_STATE = """
SELECT s.generation::text || ':' || d.oid::text, s.pruned_xid::text, s.pruned_id::text, s.home,
       d.oid::text || ':' || 'sync_feedstate'::regclass::oid::text,
       greatest(pg_snapshot_xmax(pg_current_snapshot()), pg_current_xact_id_if_assigned())::text
  FROM sync_feedstate s, pg_database d
 WHERE s.id = 1 AND d.datname = current_database()
"""


def generation_current() -> Generation:
    """The database's sync generation. The token also names the database (its oid), so a copy
    restored into another database has another token even before `generation_rotate` runs.

    A restore is recognised whatever way it was made, and the feed started afresh (`_feed_adopt`:
    a new generation, so every device downloads again, once):
    - the feed state records where it lives (`home`: the database's oid and its own table's oid);
      a restore re-creates the table (pg_restore, --clean in place too), so it is found elsewhere.
      pg_upgrade keeps both oids: not a restore.
    - feed positions are transaction ids, which number one server's transactions only: a copy
      restored on another server (a fresh cluster, where a database and a table may get the oids
      the originals had) holds a pruned position this server has not reached, and devices hold
      cursors past it (sync.pull resets those)."""
    with connection.cursor() as cur:
        for _attempt in range(3):
            cur.execute(_STATE)
            row = cur.fetchone()
            if row is None:
                # The row is made by migration; if it was truncated away, a new generation starts.
                cur.execute(
                    "INSERT INTO sync_feedstate (id, generation, updated_at) "
                    "VALUES (1, gen_random_uuid(), now()) ON CONFLICT (id) DO NOTHING"
                )
                continue
            if not _numbered_elsewhere(row):
                if row[3] is None:  # before `home` was recorded (sync migration 0011)
                    cur.execute("UPDATE sync_feedstate SET home = %s WHERE id = 1 AND home IS NULL", [row[4]])
                break
            _feed_adopt(row[4])
    if row is None:  # pragma: no cover - inserted just above
        raise RuntimeError("sync_feedstate has no row")
    token = uuid.uuid5(uuid.NAMESPACE_OID, row[0]).hex[:16]
    pruned = (int(row[1]), row[2]) if row[1] is not None else None
    return Generation(token=token, pruned=pruned, reached_xid=int(row[5]))


def _numbered_elsewhere(row: Any) -> bool:
    """Whether the feed state (a row of _STATE) came with a restore: its recorded home is another,
    or its pruned position is one this server has not reached yet."""
    _token, pruned_xid, _pruned_id, home, here, reached_xid = row
    moved = home is not None and home != here
    return moved or (pruned_xid is not None and int(pruned_xid) > int(reached_xid))


def _feed_adopt(here: str) -> None:
    """Start the feed afresh in a database restored from a backup (generation_current).

    Emptying the feed loses nothing a device needs: the new generation makes every device drop
    its copy and download the tables again, from a horizon taken after this commits, by when
    every transaction whose feed rows this removes has committed (TRUNCATE waits for them)."""
    with transaction.atomic(), connection.cursor() as cur:
        # The feed first, then its state: the order a month's retirement takes them in (it detaches,
        # then feed_partition_detached records the pruned position), else each waits for the other.
        cur.execute(f"LOCK TABLE {feed.FEED_TABLE} IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"{_STATE} FOR UPDATE OF s")
        row = cur.fetchone()
        if row is None or not _numbered_elsewhere(row):
            return  # another pull did it meanwhile
        cur.execute(f"TRUNCATE {feed.FEED_TABLE}")
        cur.execute(
            "UPDATE sync_feedstate SET generation = gen_random_uuid(), pruned_xid = NULL, "
            "pruned_id = NULL, home = %s, updated_at = now() WHERE id = 1",
            [here],
        )
    log.warning(
        "sync feed state restored from a backup (home %s, now %s): feed started afresh, devices "
        "will download again",
        row[3],
        here,
    )


def generation_rotate(*, reason: str = "") -> uuid.UUID:
    """Start a new sync generation: every device's next pull answers `reset: true`.

    The restore hook: call it (or `manage.py sync_new_generation`) on a database restored from
    a backup, whose data is older than what devices already hold.
    """
    generation = uuid.uuid4()
    with transaction.atomic():
        FeedState.objects.update_or_create(pk=1, defaults={"generation": generation})
    log.warning("sync generation rotated to %s (%s): devices will download again", generation, reason)
    return generation


def push_results_prune(*, now: dt.datetime | None = None) -> int:
    """Delete stored push results older than OKADA_SYNC_MUTATION_RETENTION_DAYS.

    A retry of a pruned mutation still answers `duplicate` (the device's last_mutation_id
    remembers it), without its code.
    """
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.OKADA_SYNC_MUTATION_RETENTION_DAYS)
    deleted, _ = Mutation.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def feed_partition_detached(cursor: Any, table: str, partition: str) -> None:
    """The change feed's `on_detach` hook (sync/partitions.py): a month of the feed is leaving.

    Called in the transaction that detaches it, so devices never see the feed without those
    rows before FeedState says they are gone: a cursor at or below the highest position they
    held is answered `reset` from then on.
    """
    _record_pruned(cursor, f'"{partition}"')


def _record_pruned(cur: Any, source: str) -> None:
    """Raise FeedState's pruned position to the highest (xid, id) leaving with `source`."""
    cur.execute(f"SELECT xid::text, id::text FROM {source} ORDER BY xid DESC, id DESC LIMIT 1")
    top = cur.fetchone()
    if top is None:
        return
    cur.execute(
        "UPDATE sync_feedstate SET pruned_xid = %s::xid8, pruned_id = %s::uuid, updated_at = now() "
        "WHERE id = 1 AND (pruned_xid IS NULL OR (pruned_xid, pruned_id) < (%s::xid8, %s::uuid))",
        [top[0], top[1], top[0], top[1]],
    )


# --- Conflicts ----------------------------------------------------------------------------------

KEEP_SERVER = "keep_server"
APPLY_DEVICE = "apply_device"


def conflict_open(
    *,
    device: Device,
    mutation_id: int,
    kind: str,
    entity: str,
    row_id: uuid.UUID,
    device_value: dict[str, Any],
    server_value: dict[str, Any],
    base_version: int | None = None,
) -> SyncConflict:
    """Record a clash for staff; devices get the row as the server kept it on their next pull."""
    conflict = SyncConflict.objects.create(
        vendor_id=device.vendor_id,
        device=device,
        mutation_id=mutation_id,
        kind=kind,
        entity=entity,
        row_id=row_id,
        base_version=base_version,
        device_value=device_value,
        server_value=server_value,
    )
    feed_resend(entity=entity, row_ids=[row_id], vendor_id=device.vendor_id)
    return conflict


def conflict_resolve(
    *,
    conflict: SyncConflict,
    resolution: str,
    actor: Actor,
    note: str = "",
    opened_at: str | None = None,
) -> SyncConflict:
    """Staff decide: keep the server's value, or apply the device's (through the services).

    Applying the device's value may itself be refused (e.g. the stock still cannot go that
    low): the error is raised and the conflict stays open. Devices see the outcome (the row and
    the conflict) on their next pull.

    Nothing a user saved is lost: applying is refused (changed_since_opened, the conflict stays
    open) when the row changed after `opened_at` (the `updated_at` the row had, ISO 8601, when
    staff opened the conflict's page, which shows its current value) or, without it (the list's
    action), when the row changed after the conflict was recorded, whatever its kind (the
    version or status recorded in `server_value`, see RECORDED_MARKS), except for a stock
    adjustment (a delta adds to what is there, so it undoes nothing: staff restock, then apply).
    The row is checked under its lock, so a change in flight is waited for and then seen.
    A device's changes to one row are applied in the order it made them: applying is refused
    (earlier_conflict_open) while an earlier conflict of the same device on the same row is open
    (a suspended vendor's sale, then its count of what was left: the count applied first, then
    the sale, would take the sale twice). Keeping the server's value loses nothing: always allowed.
    """
    actor.require("sync.resolve_syncconflict")
    if resolution not in (KEEP_SERVER, APPLY_DEVICE):
        raise InvalidInput(_("Resolve with keep_server or apply_device."), field="resolution")
    with transaction.atomic(), acting_for(actor, f"sync conflict: {resolution}"):
        conflict = core.locked(SyncConflict.objects, conflict.pk)
        if conflict.status != ConflictStatus.OPEN:
            raise ConflictResolved(_("This conflict was already resolved."))
        if resolution == APPLY_DEVICE:
            _refuse_if_earlier_open(conflict)
            _refuse_if_changed(conflict, opened_at)
            _apply_device_value(conflict, actor)
            conflict.status = ConflictStatus.APPLIED_DEVICE
        else:
            feed_resend(entity=conflict.entity, row_ids=[conflict.row_id], vendor_id=conflict.vendor_id)
            conflict.status = ConflictStatus.KEPT_SERVER
        conflict.resolved_by = _user(actor)
        conflict.resolved_at = timezone.now()
        conflict.resolution_note = note
        conflict.save(update_fields=["status", "resolved_by", "resolved_at", "resolution_note", "updated_at"])
    return conflict


PRODUCT_KINDS = (ConflictKind.PRICE, ConflictKind.DELETE_VS_UPDATE)
STOCK_KINDS = (ConflictKind.STALE_COUNT, ConflictKind.IMPOSSIBLE_STOCK, ConflictKind.VENDOR_SUSPENDED)


def _refuse_if_earlier_open(conflict: SyncConflict) -> None:
    """EarlierConflictOpen when the device's earlier change to this row is still an open conflict
    (see conflict_resolve). Read as committed, without waiting: while the earlier one's
    resolution is in flight it is still open, so this one is refused, never applied before it."""
    earlier = (
        SyncConflict.objects.filter(
            device_id=conflict.device_id,
            entity=conflict.entity,
            row_id=conflict.row_id,
            mutation_id__lt=conflict.mutation_id,
            status=ConflictStatus.OPEN,
        )
        .order_by("mutation_id")
        .first()
    )
    if earlier is not None:
        raise EarlierConflictOpen(
            Text(
                gettext_noop(
                    "Resolve first the earlier conflict this device recorded on this row (change "
                    "%(n)s, %(kind)s): its changes are applied in the order it made them."
                ),
                n=earlier.mutation_id,
                kind=Text.of(ConflictKind(earlier.kind).label),
            )
        )


def stock_value(stock: Stock) -> dict[str, Any]:
    """A stock row as a conflict records it (`server_value`) and the admin shows it now."""
    return {"on_hand": stock.on_hand, "reserved": stock.reserved, "version": stock.version}


def conflict_row(conflict: SyncConflict, *, lock: bool = False) -> Product | Stock | Order | None:
    """The row a conflict is about as it is now (a deleted product too), or None if gone."""
    if conflict.kind in PRODUCT_KINDS:
        rows: Any = Product.all_objects
    elif conflict.entity == "stock":
        rows = Stock.objects
    else:
        rows = Order.objects
    rows = rows.filter(pk=conflict.row_id)
    return (rows.select_for_update() if lock else rows).first()


def _refuse_if_changed(conflict: SyncConflict, opened_at: str | None) -> None:
    """ChangedSinceOpened when applying the device's value would undo a change staff have not
    seen (see conflict_resolve). The row stays locked until the resolution commits."""
    row = conflict_row(conflict, lock=True)
    if row is None:
        return  # gone: _apply_device_value says so
    if opened_at is not None:
        if row.updated_at.isoformat() != opened_at:
            raise ChangedSinceOpened(
                Text(
                    gettext_noop(
                        "What this conflict is about (%(what)s) was changed at %(when)s, after you "
                        "opened this page: the device value was not applied, so that change is not "
                        "lost. Look at the current value on this page, then choose again."
                    ),
                    what=Text.of(row._meta.verbose_name),
                    when=formats.date_format(timezone.localtime(row.updated_at), "DATETIME_FORMAT"),
                )
            )
        return
    if "delta" in conflict.device_value:
        return  # an adjustment adds to the units there now (e.g. after a restock): it undoes nothing
    marks = STOCK_MARKS if conflict.entity == "stock" else RECORDED_MARKS
    recorded = {mark: conflict.server_value[mark] for mark in marks if mark in conflict.server_value}
    current = {mark: getattr(row, mark) for mark in recorded}
    if current != recorded:
        raise ChangedSinceOpened(
            Text(
                gettext_noop(
                    "What this conflict is about (%(what)s) changed after this conflict was recorded "
                    "(then %(then)s, now %(now)s): the device value was not applied, so that change is "
                    "not lost. Open the conflict, look at the current value, then choose again."
                ),
                what=Text.of(row._meta.verbose_name),
                then=_mark_text(recorded),
                now=_mark_text(current),
            )
        )


# What a conflict records of its row (push.py, in `server_value`) that moves whenever the row
# changes: a product's or a stock's version (every change, a reservation too, moves it on), an
# order's status (it never comes back to one it left; an order has no version).
RECORDED_MARKS = ("version", "status")
# A stock count sets the units on hand: only a change of them (a restock, a count, a sale) would be
# undone; reservations made since move the version but not what the count replaces.
STOCK_MARKS = ("on_hand",)


def _mark_text(marks: dict[str, Any]) -> Text | str:
    if "version" in marks:
        return Text(gettext_noop("version %(n)s"), n=marks["version"])
    if "on_hand" in marks:
        return Text(gettext_noop("%(n)s on hand"), n=marks["on_hand"])
    status = str(marks.get("status"))
    label = dict(OrderStatus.choices).get(status)
    return Text.of(label) if label is not None else status


def _apply_device_value(conflict: SyncConflict, actor: Actor) -> None:
    value = conflict.device_value
    kind = conflict.kind
    if kind in (ConflictKind.PRICE, ConflictKind.DELETE_VS_UPDATE):
        product = Product.all_objects.filter(pk=conflict.row_id).first()
        if product is None:
            raise NotFound(_("The product no longer exists."))
        if product.deleted_at is not None:
            product = catalog.product_restore(
                product=product, actor=actor, reason="sync conflict: device value"
            )
        data = value.get("fields", {})
        if data:
            catalog.product_update(product=product, data=product_fields(data), actor=actor)
    elif kind in STOCK_KINDS:
        stock = Stock.objects.select_related("product").filter(pk=conflict.row_id).first()
        if stock is None:  # its product was deleted for good since the conflict
            raise NotFound(_("The product no longer exists."))
        if "on_hand" in value:  # a count (stale, below the reservations, or a suspended vendor's)
            catalog.stock_count(
                product=stock.product,
                on_hand=value["on_hand"],
                expected_on_hand=stock.on_hand,
                actor=actor,
                reason="stock count (sync conflict resolved)",
            )
        else:  # an adjustment that could not be made (or was a suspended vendor's)
            catalog.stock_adjust(
                product=stock.product,
                delta=value["delta"],
                reason=value.get("reason") or "sync conflict resolved",
                actor=actor,
            )
    elif kind == ConflictKind.STALE_TRANSITION:
        order = Order.objects.filter(pk=conflict.row_id).first()
        if order is None:
            raise NotFound(_("The order no longer exists."))
        orders.order_transition(order=order, to=value["to"], actor=actor, note=value.get("note", ""))
    else:  # pragma: no cover - the CHECK constraint lists the kinds
        raise InvalidInput(_("Unknown conflict kind."))


def product_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A device's product fields as product_update takes them (`category_id` -> `category`).

    Checked by the REST API's rules for the same fields (catalog.apis.ProductFieldsIn: types,
    bounds, null, an object for `attributes`): a device sets what an integration may. Unchecked,
    a null description or attributes reached a NOT NULL column (an IntegrityError, a 500 on
    every retry of the push, so the device could never sync again) and other values the API
    refuses were stored."""
    from catalog.apis import ProductFieldsIn
    from okada.core.api.serializers import validated_or_texts

    fields = dict(data)
    if "category_id" in fields:
        fields["category"] = fields.pop("category_id")
    unknown = set(fields) - set(catalog.PRODUCT_EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            Text(gettext_noop("These fields cannot be changed: %(f)s"), f=", ".join(sorted(unknown))),
            errors={f: [_("This field cannot be changed.")] for f in sorted(unknown)},
        )
    # A refusal is stored with the mutation (Mutation.message): its msgids, not the device's words.
    valid, refused = validated_or_texts(ProductFieldsIn, fields, partial=True)
    if not refused:
        return valid
    errors = {("category_id" if name == "category" else name): texts for name, texts in refused.items()}
    name, texts = next(iter(errors.items()))
    raise InvalidInput(Text(FIELD_REFUSED, field=name, message=texts[0]), errors=errors)


# "name: Ensure this field has no more than 200 characters." (the French puts a space before ":")
FIELD_REFUSED = gettext_noop("%(field)s: %(message)s")
