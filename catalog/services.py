"""Every write to vendors, products and stock. Stock changes are conditional UPDATEs (no read-
modify-write), each recorded as a ledger movement in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from okada.core.actors import Actor, acting_for
from okada.core.errors import (
    Conflict,
    DomainError,
    InternalError,
    InvalidInput,
    NotAllowed,
    unique_or,
    validated,
)
from okada.core.fields import normalize_cm_phone

from .models import Category, Product, Stock, StockMovement, Vendor

# --- Errors -------------------------------------------------------------------------------------


class SlugTaken(Conflict):
    code = "slug_taken"


class SkuTaken(Conflict):
    code = "sku_taken"


class VersionConflict(Conflict):
    code = "version_conflict"


class StockChanged(Conflict):
    code = "stock_changed"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class StockLedgerMismatch(InternalError):
    """The stock holds fewer reserved units than an order's items: stop before corrupting more."""

    code = "stock_ledger_mismatch"


# --- Vendors ------------------------------------------------------------------------------------


def vendor_onboard(
    *,
    name: str,
    slug: str,
    phone: str,
    city: str,
    actor: Actor,
    email: str = "",
    commission_bps: int = 1000,
) -> Vendor:
    """Register a vendor in `pending` status; it sells only once activated."""
    with transaction.atomic(), acting_for(actor, "vendor onboarded"):
        taken = SlugTaken(_("A vendor with this slug already exists."), field="slug")
        if Vendor.objects.filter(slug=slug).exists():
            raise taken
        vendor = Vendor(
            name=name,
            slug=slug,
            phone=_phone(phone),
            city=city,
            email=email,
            commission_bps=commission_bps,
        )
        validated(vendor)
        if not 0 <= vendor.commission_bps <= 10000:
            raise InvalidInput(
                _("The commission is in basis points, from 0 to 10000."), field="commission_bps"
            )
        with unique_or(taken, "catalog_vendor_slug_live_uniq"):
            vendor.save()
    return vendor


def _vendor_set_status(*, vendor: Vendor, status: str, actor: Actor, reason: str) -> Vendor:
    if actor.role != Actor.STAFF and actor.role != Actor.SYSTEM:
        raise NotAllowed(_("Only staff can change a vendor's status."))
    with transaction.atomic(), acting_for(actor, reason):
        vendor = Vendor.objects.select_for_update().get(pk=vendor.pk)
        if vendor.status != status:
            vendor.status = status
            vendor.save(update_fields=["status", "updated_at"])
    return vendor


def vendor_activate(*, vendor: Vendor, actor: Actor, reason: str = "vendor activated") -> Vendor:
    return _vendor_set_status(vendor=vendor, status=Vendor.Status.ACTIVE, actor=actor, reason=reason)


def vendor_suspend(*, vendor: Vendor, actor: Actor, reason: str = "vendor suspended") -> Vendor:
    """A suspended vendor's products stop being orderable (ProductQuerySet.orderable)."""
    return _vendor_set_status(vendor=vendor, status=Vendor.Status.SUSPENDED, actor=actor, reason=reason)


# --- Products -----------------------------------------------------------------------------------

PRODUCT_EDITABLE_FIELDS = (
    "sku",
    "name",
    "description",
    "category",
    "price_xaf",
    "compare_at_price_xaf",
    "unit",
    "is_active",
    "attributes",
)


SKU_CONSTRAINT = "catalog_product_vendor_sku_live_uniq"


def _sku_taken(sku: str) -> SkuTaken:
    return SkuTaken(_("This vendor already has a product with SKU %(sku)s.") % {"sku": sku}, field="sku")


def _phone(raw: str) -> str:
    try:
        return normalize_cm_phone(raw)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], errors={"phone": exc.messages}) from None


def _check_prices(product: Product) -> None:
    """The CHECK constraints' rules, as a clear error instead of an IntegrityError."""
    if product.price_xaf <= 0:
        raise InvalidInput(_("The price must be positive."), field="price_xaf")
    if product.compare_at_price_xaf is not None and product.compare_at_price_xaf <= product.price_xaf:
        raise InvalidInput(_("The compare-at price must be above the price."), field="compare_at_price_xaf")


def product_create(
    *,
    vendor: Vendor,
    sku: str,
    name: str,
    price_xaf: int,
    actor: Actor,
    description: str = "",
    category: Category | None = None,
    compare_at_price_xaf: int | None = None,
    unit: str = "piece",
    is_active: bool = True,
    attributes: dict[str, Any] | None = None,
    initial_stock: int = 0,
) -> Product:
    """Create a product with its Stock row (and a restock movement for the initial stock)."""
    with transaction.atomic(), acting_for(actor, "product created"):
        if Product.objects.filter(vendor=vendor, sku=sku).exists():
            raise _sku_taken(sku)
        product = Product(
            vendor=vendor,
            sku=sku,
            name=name,
            price_xaf=price_xaf,
            description=description,
            category=category,
            compare_at_price_xaf=compare_at_price_xaf,
            unit=unit,
            is_active=is_active,
            attributes=attributes or {},
        )
        validated(product, exclude=["vendor"])
        _check_prices(product)
        with unique_or(_sku_taken(sku), SKU_CONSTRAINT):
            product.save()
        Stock.objects.create(product=product, vendor=vendor)
        if initial_stock:
            stock_adjust(
                product=product,
                delta=initial_stock,
                kind=StockMovement.Kind.RESTOCK,
                reason="initial stock",
                actor=actor,
            )
    return product


def product_update(
    *, product: Product, data: dict[str, Any], actor: Actor, expected_version: int | None = None
) -> Product:
    """Change editable fields; with `expected_version`, refuse if someone changed it meanwhile."""
    unknown = set(data) - set(PRODUCT_EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            _("These fields cannot be changed: %(f)s") % {"f": ", ".join(sorted(unknown))},
            errors={f: [_("This field cannot be changed.")] for f in sorted(unknown)},
        )
    with transaction.atomic(), acting_for(actor, "product updated"):
        product = Product.objects.select_for_update().get(pk=product.pk)
        if expected_version is not None and product.version != expected_version:
            raise VersionConflict(
                _("The product changed since version %(v)s (now %(now)s).")
                % {"v": expected_version, "now": product.version},
                current_version=product.version,
            )
        sku_changes = "sku" in data and data["sku"] != product.sku
        if sku_changes and Product.objects.filter(vendor_id=product.vendor_id, sku=data["sku"]).exists():
            raise _sku_taken(data["sku"])
        changed = [f for f, v in data.items() if getattr(product, f) != v]
        if not changed:
            return product
        for field in changed:
            setattr(product, field, data[field])
        product.version += 1
        validated(product, exclude=["vendor"])
        _check_prices(product)
        with unique_or(_sku_taken(product.sku), SKU_CONSTRAINT):
            product.save()
    return product


def product_soft_delete(*, product: Product, actor: Actor, reason: str = "product deleted") -> Product:
    with transaction.atomic(), acting_for(actor, reason):
        product = Product.objects.select_for_update().get(pk=product.pk)
        product.version += 1
        product.delete()
    return product


def product_restore(*, product: Product, actor: Actor, reason: str = "product restored") -> Product:
    with transaction.atomic(), acting_for(actor, reason):
        product = Product.deleted_objects.select_for_update().get(pk=product.pk)
        if Product.objects.filter(vendor_id=product.vendor_id, sku=product.sku).exists():
            raise _sku_taken(product.sku)
        product.version += 1  # saved by restore()
        with unique_or(_sku_taken(product.sku), SKU_CONSTRAINT):
            product.restore()
    return product


# --- Stock --------------------------------------------------------------------------------------


def _movement(
    *,
    product_id: uuid.UUID,
    vendor_id: uuid.UUID,
    delta: int,
    kind: str,
    reason: str,
    reference: str,
    actor: Actor,
) -> StockMovement:
    return StockMovement(
        product_id=product_id,
        vendor_id=vendor_id,
        delta=delta,
        kind=kind,
        reason=reason[:255],
        reference=reference[:100],
        actor=str(actor)[:150],
    )


ADJUST_KINDS = (StockMovement.Kind.ADJUSTMENT, StockMovement.Kind.RESTOCK, StockMovement.Kind.RETURN)


def stock_adjust(
    *,
    product: Product,
    delta: int,
    reason: str,
    actor: Actor,
    reference: str = "",
    kind: str = StockMovement.Kind.ADJUSTMENT,
) -> Stock:
    """Add or remove units on hand. Commutative: concurrent adjustments all apply.

    Refused (InsufficientStock) when it would take on_hand below zero or below what open orders
    have reserved; the check and the change are one conditional UPDATE.
    """
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise InvalidInput(_("delta must be a non-zero integer."), field="delta")
    if kind not in ADJUST_KINDS:
        raise InvalidInput(_("Unknown adjustment kind."), field="kind")
    if kind in (StockMovement.Kind.RESTOCK, StockMovement.Kind.RETURN) and delta < 0:
        raise InvalidInput(_("A restock or return adds units: delta must be positive."), field="delta")
    with transaction.atomic():
        updated = Stock.objects.filter(product_id=product.pk, on_hand__gte=F("reserved") - delta).update(
            on_hand=F("on_hand") + delta, version=F("version") + 1, updated_at=timezone.now()
        )
        stock = Stock.objects.get(product_id=product.pk)
        if not updated:
            raise InsufficientStock(
                _("Cannot remove %(n)d units: %(on_hand)d on hand, %(reserved)d reserved.")
                % {"n": -delta, "on_hand": stock.on_hand, "reserved": stock.reserved},
                on_hand=stock.on_hand,
                reserved=stock.reserved,
            )
        _movement(
            product_id=product.pk,
            vendor_id=stock.vendor_id,
            delta=delta,
            kind=kind,
            reason=reason,
            reference=reference,
            actor=actor,
        ).save()
    return stock


def stock_count(
    *, product: Product, on_hand: int, expected_on_hand: int, actor: Actor, reason: str = "stock count"
) -> Stock:
    """Set the counted quantity, compare-and-set: refused if on_hand is no longer `expected_on_hand`."""
    if on_hand < 0:
        raise InvalidInput(_("on_hand cannot be negative."), field="on_hand")
    with transaction.atomic():
        stock = Stock.objects.select_for_update().get(product_id=product.pk)
        if stock.on_hand != expected_on_hand:
            raise StockChanged(
                _("Stock changed: %(now)d on hand, not %(expected)d. Count again.")
                % {"now": stock.on_hand, "expected": expected_on_hand},
                on_hand=stock.on_hand,
            )
        if on_hand < stock.reserved:
            raise InsufficientStock(
                _("%(reserved)d units are reserved by open orders: the count cannot be lower.")
                % {"reserved": stock.reserved},
                reserved=stock.reserved,
            )
        delta = on_hand - stock.on_hand
        stock.on_hand = on_hand
        stock.version += 1
        stock.save(update_fields=["on_hand", "version", "updated_at"])
        _movement(
            product_id=product.pk,
            vendor_id=stock.vendor_id,
            delta=delta,
            kind=StockMovement.Kind.COUNT,
            reason=reason,
            reference="",
            actor=actor,
        ).save()
    return stock


@dataclass(frozen=True)
class Line:
    product_id: uuid.UUID
    vendor_id: uuid.UUID
    quantity: int


def stock_release(*, lines: Sequence[Line], reference: str, actor: Actor) -> None:
    """Give back reserved units (cancelled or expired order)."""
    _apply_to_reserved(lines, release=True)
    _record(lines, StockMovement.Kind.RELEASE, -1, reference, actor)


def stock_sell(*, lines: Sequence[Line], reference: str, actor: Actor) -> None:
    """Turn reservations into sales: the goods leave the shop (out for delivery)."""
    _apply_to_reserved(lines, release=False)
    _record(lines, StockMovement.Kind.SALE, -1, reference, actor)


def _apply_to_reserved(lines: Sequence[Line], *, release: bool) -> None:
    now = timezone.now()
    for line in sorted(lines, key=lambda li: li.product_id):
        changes: dict[str, Any] = {"reserved": F("reserved") - line.quantity, "version": F("version") + 1}
        if not release:
            changes["on_hand"] = F("on_hand") - line.quantity
        updated = Stock.objects.filter(product_id=line.product_id, reserved__gte=line.quantity).update(
            updated_at=now, **changes
        )
        if not updated:  # the ledger and the stock disagree: stop rather than corrupt further
            raise StockLedgerMismatch(
                f"stock of {line.product_id} holds fewer reserved units than {line.quantity}",
                product_id=str(line.product_id),
            )


def _record(lines: Iterable[Line], kind: str, sign: int, reference: str, actor: Actor) -> None:
    StockMovement.objects.bulk_create(
        [
            _movement(
                product_id=li.product_id,
                vendor_id=li.vendor_id,
                delta=sign * li.quantity,
                kind=kind,
                reason=kind,
                reference=reference,
                actor=actor,
            )
            for li in lines
        ]
    )


# --- Bulk upsert (API: POST /products/bulk) -----------------------------------------------------

BULK_MAX_ITEMS = 500


@dataclass
class UpsertResult:
    """What happened to one item: created, updated, unchanged or failed (with the error)."""

    index: int
    sku: str
    status: str
    product: Product | None = None
    error: DomainError | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "sku": self.sku, "status": self.status}
        if self.product is not None:
            body.update(id=str(self.product.pk), version=self.product.version)
        if self.error is not None:
            body.update(code=self.error.code, detail=self.error.message, errors=self.error.errors)
        return body


class BulkRejected(InvalidInput):
    """An all-or-nothing bulk upsert in which an item failed: nothing was applied."""

    code = "bulk_rejected"
    default_message = gettext_lazy("An item failed, so no item was applied (all-or-nothing).")


def product_upsert_many(
    *, vendor: Vendor, items: Sequence[dict[str, Any]], actor: Actor, atomic: bool
) -> list[UpsertResult]:
    """Create or update the vendor's products by SKU, each through product_create/product_update.

    `items` hold editable fields (PRODUCT_EDITABLE_FIELDS, `sku` required) and, for new products
    only, `initial_stock`. An existing product (a live one of this vendor with the SKU) gets the
    fields given and keeps the others. With `atomic`, one failed item rolls back every item and
    raises BulkRejected (its `results` say which failed and why); otherwise each item is applied
    or refused on its own and the results say which.
    """
    if len(items) > BULK_MAX_ITEMS:
        raise InvalidInput(_("At most %(n)d items per request.") % {"n": BULK_MAX_ITEMS}, field="items")
    if actor.role == Actor.VENDOR and actor.vendor_id != vendor.pk:
        raise NotAllowed(_("You may not change this vendor's products."))
    with transaction.atomic():
        skus = [item["sku"] for item in items]
        existing = {p.sku: p for p in Product.objects.filter(vendor=vendor, sku__in=skus)}
        seen: set[str] = set()
        results = []
        for index, item in enumerate(items):
            results.append(_upsert_one(index, item, vendor=vendor, existing=existing, seen=seen, actor=actor))
        failed = [r for r in results if r.error is not None]
        if atomic and failed:
            transaction.set_rollback(True)
            first = failed[0]
            errors = {
                f"items.{r.index}.{field}": messages
                for r in failed
                for field, messages in (r.error.errors if r.error else {}).items()
            }
            detail = _("Item %(i)d (%(sku)s): %(msg)s") % {
                "i": first.index,
                "sku": first.sku,
                "msg": first.error,
            }
            outcome = [
                r.as_dict() if r.error else {"index": r.index, "sku": r.sku, "status": "rolled_back"}
                for r in results
            ]
            raise BulkRejected(detail, errors=errors, results=outcome)
    return results


def _upsert_one(
    index: int,
    item: dict[str, Any],
    *,
    vendor: Vendor,
    existing: dict[str, Product],
    seen: set[str],
    actor: Actor,
) -> UpsertResult:
    sku = item["sku"]
    if sku in seen:
        error = InvalidInput(_("This SKU appears twice in the request."), field="sku")
        return UpsertResult(index, sku, "failed", error=error)
    seen.add(sku)
    fields = {k: v for k, v in item.items() if k in PRODUCT_EDITABLE_FIELDS and k != "sku"}
    try:
        with transaction.atomic():  # a savepoint: a failed item leaves the others applied
            current = existing.get(sku)
            if current is None:
                missing = [f for f in ("name", "price_xaf") if f not in fields]
                if missing:
                    raise InvalidInput(
                        _("A new product needs a name and a price."),
                        errors={f: [_("This field is required for a new product.")] for f in missing},
                    )
                product = product_create(
                    vendor=vendor, sku=sku, actor=actor, initial_stock=item.get("initial_stock", 0), **fields
                )
                return UpsertResult(index, sku, "created", product=product)
            product = product_update(product=current, data=fields, actor=actor)
            status = "updated" if product.version != current.version else "unchanged"
            return UpsertResult(index, sku, status, product=product)
    except DomainError as exc:
        return UpsertResult(index, sku, "failed", error=exc)
