"""Pushes: a device's mutations, applied exactly once and in order (Replicache's lastMutationID).

Each mutation runs in its own transaction, which also stores its result and advances the
device's `last_mutation_id`: either both happen or neither. A retry of an id already done replays
the stored result (`duplicate`); an id past the next one is refused (`mutation_gap`), because
the device must not skip any. A mutation the server refuses for good (bad input, a rule) is
stored as `rejected` and still advances, so one bad mutation never blocks the device. A database
that is busy (lock timeout, deadlock, serialization failure, connection lost) changes nothing
and answers `try_again` (503): the device sends the same push again later.

Every mutation calls the catalog and orders services: the sync has no write path of its own.
See `MUTATIONS` for the names and arguments and README "Offline sync" for the conflict policy.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from catalog import services as catalog
from catalog.models import Product, Stock, Vendor
from okada.core import services as core
from okada.core.actors import Actor
from okada.core.errors import DomainError, InvalidInput, NotAllowed, NotFound, TryAgain
from okada.core.fields import json_refusal
from okada.core.texts import Text, text_of
from orders import services as orders
from orders.models import Order, OrderStatus

from . import feed
from .models import ConflictKind, Device, Mutation, MutationStatus, SyncConflict
from .services import (
    DeviceRevoked,
    MutationGap,
    conflict_open,
    device_for,
    feed_resend,
    product_fields,
    stock_value,
)

log = logging.getLogger(__name__)

DUPLICATE = "duplicate"


@dataclass
class Context:
    device: Device
    actor: Actor  # the vendor, acting through this device
    mutation_id: int
    scopes: Collection[str] | None = None  # the credential's; None: every scope (internal callers)

    @property
    def reference(self) -> str:
        return f"sync {self.device.pk}#{self.mutation_id}"[:100]

    @property
    def vendor(self) -> Vendor:
        return Vendor.all_objects.get(pk=self.device.vendor_id)


@dataclass(frozen=True)
class Mutation_:
    """A mutation as pushed: only its id is known good (`_validated`); a name, args or keys the
    server cannot read make it rejected alone (`_refusal`), recorded like any other."""

    id: int
    name: Any
    args: Any
    extra_keys: tuple[str, ...] = ()


@dataclass
class PushResult:
    last_mutation_id: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"last_mutation_id": self.last_mutation_id, "results": self.results}


def push(
    *, actor: Actor, device_id: Any, mutations: Any, scopes: Collection[str] | None = None
) -> PushResult:
    """Apply the device's mutations in order, each exactly once (see the module docstring).

    `scopes`: the credential's. Each mutation needs the scope its REST twin needs (a key with
    `sync` but not `products:write` creates no product here either): refused, it is rejected
    (`not_allowed`) and the device gets the server's row back."""
    device = device_for(actor=actor, device_id=device_id)
    batch = _validated(mutations)
    device_actor = Actor(
        role=Actor.VENDOR, user=actor.user, vendor_id=device.vendor_id, label=f"device {device.name}"[:60]
    )
    result = PushResult(last_mutation_id=device.last_mutation_id)
    for mutation in batch:
        try:
            outcome, last = _push_one(device, device_actor, mutation, scopes)
        except OperationalError as exc:
            log.warning("push of %s#%s: database busy (%s)", device.pk, mutation.id, exc)
            raise TryAgain(
                _("The server is busy: send the same push again in a moment."),
                last_mutation_id=result.last_mutation_id,
                retry_after=settings.OKADA_SYNC_RETRY_AFTER_SECONDS,
            ) from None
        result.results.append(outcome)
        result.last_mutation_id = last
    return result


def _push_one(
    device: Device, actor: Actor, mutation: Mutation_, scopes: Collection[str] | None = None
) -> tuple[dict[str, Any], int]:
    """One mutation in one transaction with the advance of last_mutation_id; its result."""
    with transaction.atomic():
        with connection.cursor() as cur:
            # A busy row makes the device retry rather than hold a request (and a worker) open.
            cur.execute(
                "SELECT set_config('lock_timeout', %s, true)", [f"{settings.OKADA_SYNC_LOCK_TIMEOUT_MS}ms"]
            )
        locked = core.locked(Device.objects, device.pk)
        if locked.is_revoked:
            raise DeviceRevoked(_("This device was revoked: it can no longer sync."))
        last = locked.last_mutation_id
        if mutation.id <= last:
            return _replay(locked, mutation.id), last
        if mutation.id != last + 1:
            raise MutationGap(
                Text(
                    gettext_noop(
                        "Mutation %(got)d is not the next one: the server has applied up to %(last)d."
                    ),
                    got=mutation.id,
                    last=last,
                ),
                last_mutation_id=last,
            )
        context = Context(device=locked, actor=actor, mutation_id=mutation.id, scopes=scopes)
        status, code, message, conflict = _apply(context, mutation)
        stored_name, stored_args = _storable(mutation)
        Mutation.objects.create(
            device=locked,
            mutation_id=mutation.id,
            name=stored_name,
            args=stored_args,
            status=status,
            code=code,
            message=message,
            conflict=conflict,
        )
        locked.last_mutation_id = mutation.id
        locked.last_push_at = timezone.now()
        locked.save(update_fields=["last_mutation_id", "last_push_at", "updated_at"])
    return _result(mutation.id, status, code, conflict.pk if conflict else None), mutation.id


def _result(mutation_id: int, status: str, code: str, conflict_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "id": mutation_id,
        "status": str(status),
        "code": code or None,
        "conflict_id": str(conflict_id) if conflict_id else None,
    }


def _replay(device: Device, mutation_id: int) -> dict[str, Any]:
    """The stored result of a mutation already done, as `duplicate` with its code and conflict."""
    stored = Mutation.objects.filter(device=device, mutation_id=mutation_id).first()
    if stored is None:  # its record was pruned (OKADA_SYNC_MUTATION_RETENTION_DAYS): done all the same
        return _result(mutation_id, DUPLICATE, "", None)
    return _result(mutation_id, DUPLICATE, stored.code, stored.conflict_id)


def _apply(context: Context, mutation: Mutation_) -> tuple[str, str, str, SyncConflict | None]:
    refusal = _refusal(mutation)
    handler = MUTATIONS.get(mutation.name) if isinstance(mutation.name, str) else None
    try:
        if refusal is not None:
            raise refusal
        if handler is None:
            raise InvalidInput(
                Text(gettext_noop("Unknown mutation %(name)s."), name=mutation.name[:40]), field="name"
            )
        if context.scopes is not None and handler.scope not in context.scopes:
            raise NotAllowed(
                Text(gettext_noop("This credential lacks the scope %(scope)s."), scope=handler.scope),
                scope=handler.scope,
            )
        unknown = set(mutation.args) - handler.args
        if unknown:  # a typo (`reasn`) would otherwise fall back to a default, silently
            raise InvalidInput(
                Text(gettext_noop("Unknown fields: %(f)s"), f=", ".join(sorted(map(str, unknown)))),
                field="args",
            )
        with transaction.atomic():  # a refusal undoes this mutation's writes, nothing else
            conflict = handler.apply(context, mutation.args)
    except DomainError as err:
        if err.status >= 500:
            log.error("mutation %s#%s failed: %s", context.device.pk, mutation.id, err)
        if handler is not None and isinstance(mutation.args, dict):
            handler.resend(context, mutation.args)
        return MutationStatus.REJECTED, err.code, text_of(err).stored, None
    if conflict is not None:
        return MutationStatus.CONFLICT, str(conflict.kind), "", conflict
    return MutationStatus.APPLIED, "", "", None


def _validated(mutations: Any) -> list[Mutation_]:
    """The push's envelope: what cannot be recorded is refused whole (InvalidInput, a 400). A
    mutation with a good id but a name, args or keys the server cannot read is kept for `_apply`
    to reject alone: refusing the push would block the device for good (a newer app's mutation
    would be sent again and again)."""
    limit = settings.OKADA_SYNC_PUSH_MAX_MUTATIONS
    if not isinstance(mutations, list) or not mutations:
        raise InvalidInput(_("mutations must be a non-empty list."), field="mutations")
    if len(mutations) > limit:
        raise InvalidInput(
            Text(gettext_noop("At most %(n)d mutations per push."), n=limit), field="mutations"
        )
    batch = []
    for raw in mutations:
        if not isinstance(raw, dict):
            raise InvalidInput(_("Each mutation is {id, name, args}."), field="mutations")
        mid = raw.get("id")
        if not isinstance(mid, int) or isinstance(mid, bool) or not 1 <= mid <= MAX_MUTATION_ID:
            raise InvalidInput(_("Mutation ids are positive integers."), field="mutations")
        extra = tuple(sorted(str(k) for k in set(raw) - {"id", "name", "args"}))
        batch.append(Mutation_(mid, raw.get("name"), raw.get("args", {}), extra))
    if any(b.id != a.id + 1 for a, b in itertools.pairwise(batch)):
        raise InvalidInput(_("Mutation ids go up by one within a push."), field="mutations")
    return batch


MAX_MUTATION_ID = 2**53  # what a JSON number holds exactly


def _refusal(mutation: Mutation_) -> InvalidInput | None:
    """Why the server cannot read this mutation at all (it is then rejected `invalid`), or None."""
    if mutation.extra_keys:
        return InvalidInput(Text(gettext_noop("Each mutation is {id, name, args}.")), field="mutations")
    if not isinstance(mutation.name, str) or not isinstance(mutation.args, dict):
        return InvalidInput(Text(gettext_noop("A mutation has a name and an args object.")), field="args")
    if "\x00" in mutation.name:  # PostgreSQL text cannot hold U+0000
        return InvalidInput(Text(gettext_noop("Text cannot contain NUL characters.")), field="name")
    refusal = json_refusal(mutation.args)  # no NUL (jsonb), at most MAX_JSON_DEPTH levels
    if refusal is not None:
        return InvalidInput(refusal, field="args")
    return None


def _storable(mutation: Mutation_) -> tuple[str, Any]:
    """The name and args to record: as pushed, or, when PostgreSQL cannot hold them (not a text,
    a NUL character, nested too deep), an empty name or args (the message says why)."""
    name = mutation.name.replace("\x00", "")[:40] if isinstance(mutation.name, str) else ""
    args = mutation.args if isinstance(mutation.args, dict) and json_refusal(mutation.args) is None else {}
    return name, args


# --- Arguments ----------------------------------------------------------------------------------


def _uuid(args: dict[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(args[key]))
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(Text(gettext_noop("%(key)s must be a UUID."), key=key), field=key) from None


MAX_VERSION = 2**31 - 1


def _int(
    args: dict[str, Any],
    key: str,
    *,
    required: bool = True,
    minimum: int = -catalog.MAX_STOCK,
    maximum: int = catalog.MAX_STOCK,
) -> Any:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidInput(
            Text(
                gettext_noop("%(key)s must be an integer from %(min)d to %(max)d."),
                key=key,
                min=minimum,
                max=maximum,
            ),
            field=key,
        )
    return value


def _text(
    args: dict[str, Any], key: str, *, default: str | None = None, max_length: int = 255, strip: bool = False
) -> str:
    value = args.get(key, default)
    if strip and isinstance(value, str):
        value = value.strip()  # as a REST CharField reads it
    if not isinstance(value, str) or (default is None and not value) or len(value) > max_length:
        raise InvalidInput(
            Text(gettext_noop("%(key)s must be a text of at most %(n)d characters."), key=key, n=max_length),
            field=key,
        )
    return value


def _status(args: dict[str, Any], key: str) -> str:
    """An order status. Any other text (a typo, a status of an app newer than the server) is bad
    input, as over REST: rejected `invalid`, not a move refused by the lifecycle nor, when the
    order moved meanwhile, a stale_transition conflict staff could never apply."""
    value = _text(args, key, max_length=20)
    if value not in OrderStatus.values:
        raise InvalidInput(Text(gettext_noop("Unknown order status: %(status)s"), status=value), field=key)
    return value


def _product(context: Context, args: dict[str, Any], *, lock: bool = False) -> Product:
    products = Product.all_objects.filter(pk=_uuid(args, "product_id"), vendor_id=context.device.vendor_id)
    product = (products.select_for_update() if lock else products).first()
    if product is None:
        raise NotFound(Text(gettext_noop("No such product.")))
    return product


def _stock_of(context: Context, args: dict[str, Any]) -> list[uuid.UUID]:
    try:
        product_id = uuid.UUID(str(args["product_id"]))
    except (KeyError, TypeError, ValueError):
        return []
    return list(
        Stock.objects.filter(product_id=product_id, vendor_id=context.device.vendor_id).values_list(
            "pk", flat=True
        )
    )


def _row(key: str) -> Callable[[Context, dict[str, Any]], list[uuid.UUID]]:
    def rows(context: Context, args: dict[str, Any]) -> list[uuid.UUID]:
        try:
            return [uuid.UUID(str(args[key]))]
        except (KeyError, TypeError, ValueError):
            return []

    return rows


# --- The mutations ------------------------------------------------------------------------------


def _refuse_if_suspended(context: Context) -> None:
    """A suspended vendor's device changes none of its products: a product mutation is rejected
    (`vendor_suspended`) before anything else, so a stale price it sends is not recorded as a
    conflict for staff either (a catalog change is the vendor's intent, refused until Okada
    reactivates it). The services check it too (catalog.services.refuse_if_vendor_suspended); the
    vendor's share lock taken here is held until the mutation commits. Order moves are still
    applied; stock mutations are kept for staff (`_suspended`)."""
    catalog.refuse_if_vendor_suspended(actor=context.actor, vendor_id=context.device.vendor_id)


def _suspended(context: Context) -> bool:
    """Whether the device's vendor is suspended, read as `_refuse_if_suspended` reads it (under
    the vendor's share lock, held until the mutation commits, taken before the stock's lock).

    A stock mutation records what happened on the shelf while the device was offline (a sale at
    the counter, a delivery, a count): refused, it would be lost, and once the vendor is active
    again the server would hold units the shelf does not (online customers oversold). So the
    device's change, once its arguments are good, is kept as a conflict `vendor_suspended` for
    staff, who may write for a suspended vendor: they apply it or discard it."""
    try:
        catalog.refuse_if_vendor_suspended(actor=context.actor, vendor_id=context.device.vendor_id)
    except catalog.VendorSuspended:
        return True
    return False


def stock_adjust(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{product_id, delta, reason?}: add or remove units (a sale at the counter, a delivery).

    Commutative: adjustments from several devices all apply, in any order. One that would take
    the stock below zero, or below what open orders reserved, is not applied: a conflict
    (impossible_stock) for staff. A suspended vendor's is not applied either: a conflict
    (vendor_suspended) for staff (`_suspended`); whether the units still allow it is checked
    when staff apply it.
    """
    suspended = _suspended(context)
    product = _product(context, args)
    delta = _int(args, "delta", minimum=-catalog.MAX_DELTA, maximum=catalog.MAX_DELTA)  # as REST
    reason = _reason(args)
    device_value = {"product_id": str(product.pk), "delta": delta, "reason": reason}
    if suspended:
        catalog.refuse_if_product_deleted(product)  # as when applied: restore it first
        if delta == 0:
            raise InvalidInput(Text(gettext_noop("delta must be a non-zero integer.")), field="delta")
        return _stock_conflict(context, product, ConflictKind.VENDOR_SUSPENDED, device_value)
    try:
        with transaction.atomic():
            catalog.stock_adjust(
                product=product, delta=delta, reason=reason, actor=context.actor, reference=context.reference
            )
    except catalog.InsufficientStock:
        return _stock_conflict(context, product, ConflictKind.IMPOSSIBLE_STOCK, device_value)
    return None


DEVICE_REASON = "adjusted on device"  # translated when shown (sync.services.CHANGE_REASONS)


def _reason(args: dict[str, Any]) -> str:
    """stock.adjust's `reason`, trimmed as REST trims it: DEVICE_REASON when the device sends
    none or a blank one, never a blank movement reason in the ledger. Not refused, as REST
    refuses a blank one: the units moved on the shelf already, and an app that sends "" for
    "no reason typed" would lose every such adjustment (a rejected mutation is never applied)."""
    return _text(args, "reason", default=DEVICE_REASON, strip=True) or DEVICE_REASON


def _stock_conflict(
    context: Context,
    product: Product,
    kind: str,
    device_value: dict[str, Any],
    *,
    stock: Stock | None = None,
    base_version: int | None = None,
) -> SyncConflict:
    stock = stock or Stock.objects.get(product_id=product.pk)
    return conflict_open(
        device=context.device,
        mutation_id=context.mutation_id,
        kind=kind,
        entity="stock",
        row_id=stock.pk,
        device_value=device_value,
        server_value=stock_value(stock),
        base_version=base_version,
    )


def stock_count(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{product_id, on_hand, base_version, base_on_hand?}: the units counted on the shelf.

    Applied when the stock is still the one the device read (same version), or when only
    reservations moved since (same on_hand as `base_on_hand`: reserved units are still on the
    shelf). Otherwise units arrived or left meanwhile and the count may be stale: a conflict
    (stale_count). A count below the units reserved by open orders: a conflict (impossible_stock).
    A suspended vendor's count that would have been applied: a conflict (vendor_suspended) for
    staff (`_suspended`); a stale one stays stale_count, so it is never applied from the
    conflicts list over units the device never saw.
    """
    suspended = _suspended(context)
    product = _product(context, args)
    catalog.refuse_if_product_deleted(product)  # before a stale count becomes a conflict for staff
    on_hand = _int(args, "on_hand", minimum=0)
    base_version = _int(args, "base_version", minimum=0, maximum=MAX_VERSION)
    base_on_hand = _int(args, "base_on_hand", required=False, minimum=0)
    stock = core.locked(Stock.objects, product.pk, by="product_id")
    device_value = {"product_id": str(product.pk), "on_hand": on_hand, "base_on_hand": base_on_hand}
    kind = None
    if stock.version != base_version and (base_on_hand is None or base_on_hand != stock.on_hand):
        kind = ConflictKind.STALE_COUNT
    elif on_hand < stock.reserved:
        kind = ConflictKind.IMPOSSIBLE_STOCK
    elif suspended:
        kind = ConflictKind.VENDOR_SUSPENDED
    if kind is not None:
        return _stock_conflict(context, product, kind, device_value, stock=stock, base_version=base_version)
    catalog.stock_count(
        product=product,
        on_hand=on_hand,
        expected_on_hand=stock.on_hand,
        actor=context.actor,
        reason="stock count on device",
    )
    return None


PRODUCT_FIELDS = feed.PRODUCT_FIELDS
PRICE_FIELDS = ("price_xaf", "compare_at_price_xaf")


def product_create(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{id, sku, name, price_xaf, description?, category_id?, compare_at_price_xaf?, unit?,
    is_active?, attributes?, initial_stock?}: a new product, with the id the device gave it."""
    _refuse_if_suspended(context)
    product_id = _uuid(args, "id")
    if Product.all_objects.filter(pk=product_id).exists():
        raise InvalidInput(Text(gettext_noop("A product with this id already exists.")), field="id")
    fields = product_fields({k: v for k, v in args.items() if k in PRODUCT_FIELDS})
    for required in ("sku", "name", "price_xaf"):
        if required not in fields:
            raise InvalidInput(Text(gettext_noop("This field is required.")), field=required)
    catalog.product_create(
        id=product_id,
        vendor=context.vendor,
        actor=context.actor,
        initial_stock=_int(args, "initial_stock", required=False, minimum=0) or 0,
        **fields,
    )
    return None


def product_update(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{product_id, base_version, fields: {...changed fields}}.

    Per field: descriptive fields (name, description, category, unit, active, attributes, sku)
    are last-writer-wins field by field, so only the fields the device changed are written. The
    price fields, when the product's price changed on the server since `base_version`, are not
    applied but stored as a conflict (price) for staff. A product deleted meanwhile stays
    deleted (the delete wins) and the update is stored as a conflict (delete_vs_update).
    """
    _refuse_if_suspended(context)
    product = _product(context, args, lock=True)
    base_version = _int(args, "base_version", minimum=0, maximum=MAX_VERSION)
    raw = args.get("fields")
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(Text(gettext_noop("fields must name at least one changed field.")), field="fields")
    data = product_fields(raw)  # refuses unknown fields before anything is written
    if product.deleted_at is not None:
        return conflict_open(
            device=context.device,
            mutation_id=context.mutation_id,
            kind=ConflictKind.DELETE_VS_UPDATE,
            entity="products",
            row_id=product.pk,
            device_value={"fields": raw},
            server_value={"deleted_at": product.deleted_at.isoformat(), "version": product.version},
            base_version=base_version,
        )
    conflicting: tuple[str, ...] = ()
    price_moves = [f for f in PRICE_FIELDS if f in data and data[f] != getattr(product, f)]
    if price_moves and base_version != product.version and _price_changed_since(product, base_version):
        conflicting = tuple(f for f in PRICE_FIELDS if f in data)  # the two prices go together
    apply = {k: v for k, v in data.items() if k not in conflicting}
    if apply:
        product = catalog.product_update(product=product, data=apply, actor=context.actor)
    if not conflicting:
        return None
    return conflict_open(
        device=context.device,
        mutation_id=context.mutation_id,
        kind=ConflictKind.PRICE,
        entity="products",
        row_id=product.pk,
        device_value={"fields": {f: raw[f] for f in conflicting}},
        server_value={"fields": {f: getattr(product, f) for f in PRICE_FIELDS}, "version": product.version},
        base_version=base_version,
    )


def _price_changed_since(product: Product, version: int) -> bool:
    """Whether the prices differ from those of `version` (from the product's history); unknown
    versions count as changed."""
    base = product.history.filter(version=version).order_by("-history_date").first()
    if base is None:
        return True
    return any(getattr(base, f) != getattr(product, f) for f in PRICE_FIELDS)


def product_delete(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{product_id, base_version?}: soft-delete. The delete wins over any change made meanwhile.
    `base_version` is not used, but read as every argument is: one that is no version (`"x"`,
    `1.5`, an object) makes the mutation invalid, as in every other mutation."""
    _int(args, "base_version", required=False, minimum=0, maximum=MAX_VERSION)
    _refuse_if_suspended(context)
    product = _product(context, args, lock=True)
    if product.deleted_at is None:
        catalog.product_soft_delete(product=product, actor=context.actor, reason="deleted on device")
    return None


def order_transition(context: Context, args: dict[str, Any]) -> SyncConflict | None:
    """{order_id, to, base_status, note?}: move the order (accept, prepare, ready...).

    `base_status` is the order's base version: the status the device saw. If the order has
    moved since (staff or another device moved it), the move is not made: a conflict
    (stale_transition), unless it is already where the device wanted it.
    """
    order_id = _uuid(args, "order_id")
    to = _status(args, "to")
    base_status = _status(args, "base_status")
    note = _text(args, "note", default="", max_length=1000)
    order = Order.objects.select_for_update().filter(pk=order_id, vendor_id=context.device.vendor_id).first()
    if order is None:
        raise NotFound(Text(gettext_noop("No such order.")))
    if order.status == to:
        return None  # already there: nothing to do
    if order.status != base_status:
        return conflict_open(
            device=context.device,
            mutation_id=context.mutation_id,
            kind=ConflictKind.STALE_TRANSITION,
            entity="orders",
            row_id=order.pk,
            device_value={"to": to, "base_status": base_status, "note": note},
            server_value={"status": order.status},
        )
    orders.order_transition(order=order, to=to, actor=context.actor, note=note)
    return None


@dataclass(frozen=True)
class Handler:
    apply: Callable[[Context, dict[str, Any]], SyncConflict | None]
    entity: str  # the synced table whose row(s) it changes
    rows: Callable[[Context, dict[str, Any]], list[uuid.UUID]]
    scope: str  # the credential scope it needs, as its REST endpoint
    args: frozenset[str]  # the keys its args may hold: any other rejects it (as REST's 400)

    def resend(self, context: Context, args: dict[str, Any]) -> None:
        """After a refusal: the device's own copy showed its change; send it the server's row."""
        rows = self.rows(context, args)
        if rows:
            feed_resend(entity=self.entity, row_ids=rows, vendor_id=context.device.vendor_id)


MUTATIONS: dict[str, Handler] = {
    "stock.adjust": Handler(
        stock_adjust, "stock", _stock_of, "stock:write", frozenset({"product_id", "delta", "reason"})
    ),
    "stock.count": Handler(
        stock_count,
        "stock",
        _stock_of,
        "stock:write",
        frozenset({"product_id", "on_hand", "base_version", "base_on_hand"}),
    ),
    "product.create": Handler(
        product_create,
        "products",
        _row("id"),
        "products:write",
        frozenset({"id", "initial_stock", *PRODUCT_FIELDS}),
    ),
    "product.update": Handler(
        product_update,
        "products",
        _row("product_id"),
        "products:write",
        frozenset({"product_id", "base_version", "fields"}),
    ),
    "product.delete": Handler(
        product_delete,
        "products",
        _row("product_id"),
        "products:write",
        frozenset({"product_id", "base_version"}),
    ),
    "order.transition": Handler(
        order_transition,
        "orders",
        _row("order_id"),
        "orders:write",
        frozenset({"order_id", "to", "base_status", "note"}),
    ),
}
