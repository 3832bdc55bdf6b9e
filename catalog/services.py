"""Every write to vendors, products and stock. Stock changes are conditional UPDATEs (no read-
modify-write), each recorded as a ledger movement in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy, gettext_noop
from django.utils.translation import gettext_lazy as _

from okada.core import actors
from okada.core import services as core
from okada.core.actors import Actor, acting_for
from okada.core.api.auth import credentials_changed
from okada.core.db import transaction_lock
from okada.core.errors import (
    Conflict,
    DomainError,
    InternalError,
    InvalidInput,
    NotAllowed,
    NotFound,
    constraints_or,
    unique_or,
    validated,
)
from okada.core.texts import Text, text_of

from .models import Category, Product, Stock, StockMovement, Vendor, VendorMember
from .skus import NORMALIZED_REASON, SKU_NFC_CONSTRAINT, normalize_sku

# The reasons this module writes into history and the ledger (stored in English, shown
# translated by okada.core.display.reason_label).
CHANGE_REASONS = (
    gettext_noop("vendor onboarded"),
    gettext_noop("vendor updated"),
    gettext_noop("vendor activated"),
    gettext_noop("vendor suspended"),
    gettext_noop("vendor deleted"),
    gettext_noop("vendor restored"),
    gettext_noop("vendor member added"),
    gettext_noop("vendor member updated"),
    gettext_noop("vendor member removed"),
    gettext_noop("vendor member restored"),
    gettext_noop("category created"),
    gettext_noop("category updated"),
    gettext_noop("category deleted"),
    gettext_noop("category restored"),
    gettext_noop("product created"),
    gettext_noop("product updated"),
    gettext_noop("product deleted"),
    gettext_noop("product restored"),
    NORMALIZED_REASON,  # migrations 0013/0014 (catalog.skus)
    gettext_noop("initial stock"),
    gettext_noop("stock count"),
    gettext_noop("restock"),
    gettext_noop("reserve"),
    gettext_noop("release"),
    gettext_noop("sale"),
    gettext_noop("return"),
    gettext_noop("adjustment"),
)

# --- Errors -------------------------------------------------------------------------------------


class SlugTaken(Conflict):
    code = "slug_taken"


class MemberTaken(Conflict):
    code = "member_taken"


class SkuTaken(Conflict):
    code = "sku_taken"


class VersionConflict(Conflict):
    code = "version_conflict"


class StockChanged(Conflict):
    code = "stock_changed"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class VendorSuspended(NotAllowed):
    """A suspended vendor's own credentials (API keys, members' tokens, sync devices) change
    neither its catalog, nor its stock, nor its sync devices; staff still do (see
    refuse_if_vendor_suspended)."""

    code = "vendor_suspended"
    default_message = _(
        "This vendor is suspended: changes to its catalog, stock and sync devices are refused until "
        "Okada operations reactivate it."
    )


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
    actor.require_if_staff("catalog.add_vendor")
    with transaction.atomic(), acting_for(actor, "vendor onboarded"):
        taken = SlugTaken(_("A vendor with this slug already exists."), field="slug")
        if Vendor.objects.filter(slug=slug).exists():
            raise taken
        vendor = Vendor(
            name=name,
            slug=slug,
            phone=core.cm_phone(phone),
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
    actor.require_if_staff("catalog.change_vendor")
    with transaction.atomic(), acting_for(actor, reason):
        vendor = core.locked(Vendor.objects, vendor.pk)
        if vendor.status != status:
            vendor.status = status
            vendor.save(update_fields=["status", "updated_at"])
    return vendor


def vendor_activate(*, vendor: Vendor, actor: Actor, reason: str = "vendor activated") -> Vendor:
    return _vendor_set_status(vendor=vendor, status=Vendor.Status.ACTIVE, actor=actor, reason=reason)


def vendor_suspend(*, vendor: Vendor, actor: Actor, reason: str = "vendor suspended") -> Vendor:
    """A suspended vendor's products stop being orderable (ProductQuerySet.orderable)."""
    return _vendor_set_status(vendor=vendor, status=Vendor.Status.SUSPENDED, actor=actor, reason=reason)


VENDOR_EDITABLE_FIELDS = ("name", "slug", "phone", "email", "city", "commission_bps")
VENDOR_SLUG_CONSTRAINT = "catalog_vendor_slug_live_uniq"


def _vendor_slug_taken() -> SlugTaken:
    return SlugTaken(_("A vendor with this slug already exists."), field="slug")


def vendor_update(*, vendor: Vendor, data: dict[str, Any], actor: Actor) -> Vendor:
    """Change a vendor's details (not its status: vendor_activate / vendor_suspend do that)."""
    core.refuse_unknown_fields(data, VENDOR_EDITABLE_FIELDS)
    actor.require_if_staff("catalog.change_vendor")
    with transaction.atomic(), acting_for(actor, "vendor updated"):
        vendor = core.locked(Vendor.objects, vendor.pk, no_key=True)  # placements go on meanwhile
        if "phone" in data:
            data = {**data, "phone": core.cm_phone(data["phone"])}
        if data.get("slug", vendor.slug) != vendor.slug and Vendor.objects.filter(slug=data["slug"]).exists():
            raise _vendor_slug_taken()
        if not core.model_fields_update(vendor, data):
            return vendor
        validated(vendor)
        with unique_or(_vendor_slug_taken(), VENDOR_SLUG_CONSTRAINT):
            vendor.save()
    return vendor


def vendor_soft_delete(*, vendor: Vendor, actor: Actor, reason: str = "vendor deleted") -> Vendor:
    """Soft-delete a vendor; refused (in_use) while it has live products or orders. Its API keys
    stop working at once, also in the web processes that kept them (credentials_changed)."""
    actor.require_if_staff("catalog.delete_vendor")
    with transaction.atomic():
        deleted = core.soft_delete(vendor, actor=actor, reason=reason)
        credentials_changed()
    return deleted  # type: ignore[return-value]


def vendor_restore(*, vendor: Vendor, actor: Actor, reason: str = "vendor restored") -> Vendor:
    actor.require_if_staff("catalog.change_vendor")
    if Vendor.objects.filter(slug=vendor.slug).exists():
        raise _vendor_slug_taken()
    with unique_or(_vendor_slug_taken(), VENDOR_SLUG_CONSTRAINT):
        return core.restore(vendor, actor=actor, reason=reason)  # type: ignore[return-value]


# --- Vendor members -----------------------------------------------------------------------------

MEMBER_CONSTRAINT = "catalog_vendormember_live_uniq"


def _member_taken() -> Conflict:
    return MemberTaken(_("This user is already a member of this vendor."), field="user")


def vendor_member_add(*, vendor: Vendor, user: Any, role: str, actor: Actor) -> VendorMember:
    """Give a user access to a vendor (owner, manager or staff)."""
    actor.require_if_staff("catalog.add_vendormember")
    if role not in VendorMember.Role.values:
        raise InvalidInput(_("Unknown member role."), field="role")
    with transaction.atomic(), acting_for(actor, "vendor member added"):
        vendor = _live_vendor(vendor)  # a vendor soft delete in flight is waited for: see there
        if VendorMember.objects.filter(vendor=vendor, user=user).exists():
            raise _member_taken()
        member = VendorMember(vendor=vendor, user=user, role=role)
        with unique_or(_member_taken(), MEMBER_CONSTRAINT):
            member.save()
    return member


def vendor_member_update(*, member: VendorMember, role: str, actor: Actor) -> VendorMember:
    actor.require_if_staff("catalog.change_vendormember")
    if role not in VendorMember.Role.values:
        raise InvalidInput(_("Unknown member role."), field="role")
    with transaction.atomic(), acting_for(actor, "vendor member updated"):
        member = core.locked(VendorMember.objects, member.pk)
        if member.role != role:
            member.role = role
            member.save(update_fields=["role", "updated_at"])
    return member


def vendor_member_remove(
    *, member: VendorMember, actor: Actor, reason: str = "vendor member removed"
) -> VendorMember:
    actor.require_if_staff("catalog.delete_vendormember")
    return core.soft_delete(member, actor=actor, reason=reason)  # type: ignore[return-value]


def vendor_member_restore(
    *, member: VendorMember, actor: Actor, reason: str = "vendor member restored"
) -> VendorMember:
    actor.require_if_staff("catalog.change_vendormember")
    if VendorMember.objects.filter(vendor_id=member.vendor_id, user_id=member.user_id).exists():
        raise _member_taken()
    with transaction.atomic(), unique_or(_member_taken(), MEMBER_CONSTRAINT):
        _live_vendor(member.vendor_id)  # locked until the restore commits: see _live_vendor
        return core.restore(member, actor=actor, reason=reason)  # type: ignore[return-value]


# --- Categories ---------------------------------------------------------------------------------

CATEGORY_EDITABLE_FIELDS = ("parent", "slug", "name_fr", "name_en", "position")
CATEGORY_SLUG_CONSTRAINT = "catalog_category_slug_live_uniq"


def _category_slug_taken() -> SlugTaken:
    return SlugTaken(_("A category with this slug already exists."), field="slug")


def _check_parent(category: Category) -> None:
    """The parent is live, and not the category itself nor one of its descendants (no cycles)."""
    if category.parent_id is None:
        return
    # The walk first: a move under its own descendant is refused before it waits for a lock on
    # that descendant, which an edit of the descendant (holding it, waiting for this category
    # as its parent) would turn into a deadlock.
    seen = {category.pk}
    parent_id = category.parent_id
    while parent_id is not None:
        if parent_id in seen:
            raise InvalidInput(_("A category cannot be inside itself."), field="parent")
        seen.add(parent_id)
        parent_id = Category.all_objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    _live_category(category.parent_id, field="parent")  # share-locked: see _live_category


def category_create(
    *,
    slug: str,
    name_fr: str,
    name_en: str,
    actor: Actor,
    parent: Category | None = None,
    position: int = 0,
) -> Category:
    actor.require_if_staff("catalog.add_category")
    with transaction.atomic(), acting_for(actor, "category created"):
        if Category.objects.filter(slug=slug).exists():
            raise _category_slug_taken()
        category = Category(slug=slug, name_fr=name_fr, name_en=name_en, parent=parent, position=position)
        validated(category)
        _check_parent(category)
        with unique_or(_category_slug_taken(), CATEGORY_SLUG_CONSTRAINT):
            category.save()
    return category


def category_update(*, category: Category, data: dict[str, Any], actor: Actor) -> Category:
    core.refuse_unknown_fields(data, CATEGORY_EDITABLE_FIELDS)
    actor.require_if_staff("catalog.change_category")
    with transaction.atomic(), acting_for(actor, "category updated"):
        if "parent" in data:
            category_tree_lock()
        category = core.locked(Category.objects, category.pk)
        if (
            data.get("slug", category.slug) != category.slug
            and Category.objects.filter(slug=data["slug"]).exists()
        ):
            raise _category_slug_taken()
        if not core.model_fields_update(category, data):
            return category
        validated(category)
        _check_parent(category)
        with unique_or(_category_slug_taken(), CATEGORY_SLUG_CONSTRAINT):
            category.save()
    return category


def category_tree_lock() -> None:
    """Moves in the category tree, one at a time (until the transaction ends).

    `_check_parent` walks the committed tree: two moves at once (A under B, B under A) would each
    pass it and together make a loop; each also locks its row and the other's (the parent's
    foreign key), so they deadlock instead. Queued on this lock, taken before any row lock, the
    second walks the tree the first left. Moves are rare staff edits: one lock for the tree.
    A caller that locks a category row before calling category_update (the admin's change form)
    takes this lock first, or two saves deadlock (catalog.admin CategoryAdmin).
    """
    transaction_lock("catalog.category_tree")


def category_soft_delete(*, category: Category, actor: Actor, reason: str = "category deleted") -> Category:
    """Refused (in_use) while live products or sub-categories are in it."""
    actor.require_if_staff("catalog.delete_category")
    return core.soft_delete(category, actor=actor, reason=reason)  # type: ignore[return-value]


def category_restore(*, category: Category, actor: Actor, reason: str = "category restored") -> Category:
    """Refused (invalid, on `parent`) when its parent is deleted, also by a delete in flight:
    the parent is share-locked until the restore commits (see _live_category)."""
    actor.require_if_staff("catalog.change_category")
    if Category.objects.filter(slug=category.slug).exists():
        raise _category_slug_taken()
    with transaction.atomic(), unique_or(_category_slug_taken(), CATEGORY_SLUG_CONSTRAINT):
        if category.parent_id is not None:
            _live_category(category.parent_id, field="parent")
        return core.restore(category, actor=actor, reason=reason)  # type: ignore[return-value]


def _live(model: Any, obj: Any, field: str) -> Any:
    """The live row `obj` (or its id) of `model`; InvalidInput on `field` when deleted or unknown.

    Forms only offer live rows, but a forged POST or an API call may name a deleted one.
    """
    pk = getattr(obj, "pk", obj)
    found = model.objects.filter(pk=pk).first()
    if found is None:
        raise _missing(model, field)
    return found


def _missing(model: Any, field: str) -> InvalidInput:
    """`_live`'s refusal of a deleted or unknown row of `model`."""
    return InvalidInput(
        Text(gettext_noop("%(what)s does not exist or was deleted."), what=Text.of(model._meta.verbose_name)),
        field=field,
    )


def _live_category(category: Category | uuid.UUID, field: str = "category") -> Category:
    """`_live` for a product's category (or a category's parent), share-locked until the
    transaction ends (core.live_share_locked says why): a category soft delete in flight is
    waited for (and the category refused here), a later one finds the new row (in_use)."""
    found = core.live_share_locked(Category, category, strength="SHARE")
    return found if found is not None else _live(Category, category, field)  # raises


def _live_vendor(vendor: Vendor | uuid.UUID) -> Vendor:
    """`_live` for a product's (or a member's) vendor, key-share-locked until the transaction
    ends (core.live_share_locked says why): vendor_soft_delete (FOR UPDATE, then its live
    products; its members go with it) and a product or member created or restored for the
    vendor then wait for each other; concurrent creates and placements do not."""
    found = core.live_share_locked(Vendor, vendor)
    return found if found is not None else _live(Vendor, vendor, "vendor")  # raises


def refuse_if_vendor_suspended(*, actor: Actor, vendor_id: uuid.UUID, vendor: Vendor | None = None) -> None:
    """VendorSuspended when a vendor actor changes the catalog or stock of a suspended vendor.

    Staff and the system are not bound (they moderate a suspended vendor's catalog); a pending
    vendor still builds its catalog; order moves are not catalog changes (orders.services: a
    suspended vendor still serves or cancels the orders it has). Call it inside the write's
    transaction, before the write: it reads the status under a share lock of the vendor row
    (core.live_share_locked), held until the write commits, and vendor_suspend locks the row FOR
    UPDATE, so a suspension committed before is always seen (one in flight is waited for, then
    seen) and one that comes later waits for the write. `vendor`: the row when the caller has
    just locked it so (`_live_vendor`).
    """
    if actor.role != Actor.VENDOR:
        return
    if vendor is None:
        vendor = core.live_share_locked(Vendor, vendor_id)
    if vendor is not None and vendor.status == Vendor.Status.SUSPENDED:
        raise VendorSuspended()


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
PRODUCT_PKEY = "catalog_product_pkey"


def _sku_taken(sku: str) -> SkuTaken:
    return SkuTaken(
        Text(gettext_noop("This vendor already has a product with SKU %(sku)s."), sku=sku), field="sku"
    )


def _sku_not_nfc() -> InvalidInput:
    """The CHECK catalog_product_sku_nfc refused a SKU `normalize_sku` gave: only when Python's
    Unicode tables are older than PostgreSQL's (a character Python does not know yet)."""
    return InvalidInput(
        _("This SKU uses characters that cannot be stored in Unicode normal form: change them."), field="sku"
    )


def _check_prices(product: Product) -> None:
    """The CHECK constraints' rules, as a clear error instead of an IntegrityError."""
    if product.price_xaf <= 0:
        raise InvalidInput(_("The price must be positive."), field="price_xaf")
    if product.compare_at_price_xaf is not None and product.compare_at_price_xaf <= product.price_xaf:
        raise InvalidInput(_("The compare-at price must be above the price."), field="compare_at_price_xaf")


# The checks of a new product and of a change, one function each for product_create /
# product_update and the bulk upsert (product_upsert_many): a rule added to one path is the other's.


def _refuse_incomplete(fields: dict[str, Any]) -> None:
    """An upsert item for a SKU the vendor does not have yet: a new product needs a name and a price
    (product_create's required arguments)."""
    missing = [f for f in ("name", "price_xaf") if f not in fields]
    if missing:
        raise InvalidInput(
            _("A new product needs a name and a price."),
            errors={f: [_("This field is required for a new product.")] for f in missing},
        )


def _product_to_insert(
    vendor: Vendor, sku: str, fields: dict[str, Any], initial_stock: Any, *, validate_unique: bool = True
) -> Product:
    """A new product's checks, and its row to insert. `vendor` and a category in `fields`: live
    rows the caller has share-locked (_live_vendor, _live_category), not checked again; `sku` in
    NFC; `initial_stock` checked here, before any row is written."""
    product = Product(vendor=vendor, sku=sku, **{**fields, "attributes": fields.get("attributes") or {}})
    validated(product, exclude=["vendor", "category"], validate_unique=validate_unique)
    _check_prices(product)
    if initial_stock:  # _stock_adjust's refusals of the restock product_create then makes
        _check_adjustment(initial_stock, StockMovement.Kind.RESTOCK)
        if initial_stock > MAX_ON_HAND:
            raise _too_much_stock()
    return product


def _changed_fields(product: Product, data: dict[str, Any]) -> list[str]:
    """The fields of `data` whose value `product` does not have (a category compared by its id)."""
    return [
        f
        for f, v in data.items()
        if (product.category_id != getattr(v, "pk", v) if f == "category" else getattr(product, f) != v)
    ]


def _apply_changes(product: Product, data: dict[str, Any]) -> bool:
    """Set on the locked `product` the fields of `data` that differ, move its version on and check
    the result; False (nothing set) when none differs. A category in `data`: a live row the
    caller has share-locked (_live_category), not checked again. The caller saves."""
    changed = _changed_fields(product, data)
    if not changed:
        return False
    for field in changed:
        setattr(product, field, data[field])
    product.version += 1
    validated(product, exclude=["vendor", "category"])
    _check_prices(product)
    return True


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
    id: uuid.UUID | None = None,
) -> Product:
    """Create a product with its Stock row (and a restock movement for the initial stock).

    The SKU is stored in Unicode NFC (catalog.skus), whatever form it comes in. `id` lets an
    offline device choose the id of a product it created, so its later changes to that product
    (stock, price) refer to it before the server has seen it.
    """
    actor.require_if_staff("catalog.add_product")
    sku = normalize_sku(sku)
    with transaction.atomic(), acting_for(actor, "product created"):
        vendor = _live_vendor(vendor)
        refuse_if_vendor_suspended(actor=actor, vendor_id=vendor.pk, vendor=vendor)
        if category is not None:
            category = _live_category(category)
        if Product.objects.filter(vendor=vendor, sku=sku).exists():
            raise _sku_taken(sku)
        fields = {
            "name": name,
            "price_xaf": price_xaf,
            "description": description,
            "category": category,
            "compare_at_price_xaf": compare_at_price_xaf,
            "unit": unit,
            "is_active": is_active,
            "attributes": attributes,
        }
        if id is not None:
            fields["id"] = id
        product = _product_to_insert(vendor, sku, fields, initial_stock)
        # A device's id may already be taken by a create in flight (one app restored onto two
        # phones replays its queue from both): the primary key says so, as clearly as the SKU.
        id_taken = InvalidInput(_("A product with this id already exists."), field="id")
        with constraints_or(
            {SKU_CONSTRAINT: _sku_taken(sku), PRODUCT_PKEY: id_taken, SKU_NFC_CONSTRAINT: _sku_not_nfc()}
        ):
            product.save(force_insert=True)
        Stock.objects.create(product=product, vendor=vendor)
        if initial_stock:
            _stock_adjust(
                product=product,
                delta=initial_stock,
                kind=StockMovement.Kind.RESTOCK,
                reason="initial stock",
                reference="",
                actor=actor,
            )
    return product


def product_update(
    *, product: Product, data: dict[str, Any], actor: Actor, expected_version: int | None = None
) -> Product:
    """Change editable fields; with `expected_version`, refuse if someone changed it meanwhile.
    A new SKU is stored in Unicode NFC (catalog.skus): the same SKU in another form is no change."""
    core.refuse_unknown_fields(data, PRODUCT_EDITABLE_FIELDS)
    if isinstance(data.get("sku"), str):
        data = {**data, "sku": normalize_sku(data["sku"])}
    actor.require_if_staff("catalog.change_product")
    with transaction.atomic(), acting_for(actor, "product updated"):
        refuse_if_vendor_suspended(actor=actor, vendor_id=product.vendor_id)
        if data.get("category") is not None:
            data = {**data, "category": _live_category(data["category"])}
        product = core.locked(Product.objects, product.pk, no_key=True)  # placements go on
        _check_version(product, expected_version)
        sku_changes = "sku" in data and data["sku"] != product.sku
        if sku_changes and Product.objects.filter(vendor_id=product.vendor_id, sku=data["sku"]).exists():
            raise _sku_taken(data["sku"])
        if not _apply_changes(product, data):
            return product
        with constraints_or({SKU_CONSTRAINT: _sku_taken(product.sku), SKU_NFC_CONSTRAINT: _sku_not_nfc()}):
            product.save()
    return product


def _check_version(product: Product, expected_version: int | None) -> None:
    """VersionConflict unless the (locked) product is at `expected_version` (None: any)."""
    if expected_version is not None and product.version != expected_version:
        raise VersionConflict(
            Text(
                gettext_noop("The product changed since version %(v)s (now %(now)s)."),
                v=expected_version,
                now=product.version,
            ),
            current_version=product.version,
        )


def product_soft_delete(
    *, product: Product, actor: Actor, reason: str = "product deleted", expected_version: int | None = None
) -> Product:
    """Soft-delete a product; its version moves on (offline devices see the delete as a change).
    With `expected_version`, refuse if someone changed it meanwhile."""
    actor.require_if_staff("catalog.delete_product")
    with transaction.atomic(), acting_for(actor, reason):
        refuse_if_vendor_suspended(actor=actor, vendor_id=product.vendor_id)
        product = core.locked(Product.objects, product.pk)
        _check_version(product, expected_version)
        product.version += 1
        product.delete()
    return product


def product_restore(*, product: Product, actor: Actor, reason: str = "product restored") -> Product:
    """Bring back a deleted product (its vendor and its category must be live, its SKU free),
    version moved on. Both are share-locked until the restore commits (see _live_vendor,
    _live_category): a delete of either in flight is waited for (and the restore refused), a
    later one finds the product (in_use)."""
    actor.require_if_staff("catalog.change_product")
    with transaction.atomic(), acting_for(actor, reason):
        product = core.locked(Product.deleted_objects, product.pk, gone=core.not_deleted(Product))
        vendor = _live_vendor(product.vendor_id)
        refuse_if_vendor_suspended(actor=actor, vendor_id=vendor.pk, vendor=vendor)
        if product.category_id is not None:
            _live_category(product.category_id)
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


MAX_ON_HAND = 2**31 - 1  # Stock.on_hand is an integer column
# What a client may send, over REST or a device's sync push (one cap for both): units counted or
# created at once, and units added or removed by one adjustment.
MAX_STOCK = 100_000_000
MAX_DELTA = 10_000_000


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
    have reserved; the check and the change are one conditional UPDATE. Staff need
    `catalog.adjust_stock`; a suspended vendor's own actors are refused (VendorSuspended).
    """
    actor.require_if_staff("catalog.adjust_stock")
    with transaction.atomic():
        refuse_if_vendor_suspended(actor=actor, vendor_id=product.vendor_id)
        refuse_if_product_deleted(product)
        return _stock_adjust(
            product=product, delta=delta, reason=reason, actor=actor, reference=reference, kind=kind
        )


def refuse_if_product_deleted(product: Product) -> None:
    """A soft-deleted product's stock takes no adjustment or count (as a deleted order takes no
    note): restore the product first. The API and the admin reach live products only; an
    offline device's push and a sync conflict applied later may name one deleted meanwhile.
    Orders still release and sell what they reserved (stock_release, stock_sell)."""
    if Product.deleted_objects.filter(pk=product.pk).exists():
        raise NotFound(_("This product is deleted: restore it before changing its stock."))


def _check_adjustment(delta: Any, kind: str) -> None:
    """An adjustment's own rules, before the stock it applies to is read."""
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise InvalidInput(_("delta must be a non-zero integer."), field="delta")
    if kind not in ADJUST_KINDS:
        raise InvalidInput(_("Unknown adjustment kind."), field="kind")
    if kind in (StockMovement.Kind.RESTOCK, StockMovement.Kind.RETURN) and delta < 0:
        raise InvalidInput(_("A restock or return adds units: delta must be positive."), field="delta")


def _too_much_stock() -> InvalidInput:
    return InvalidInput(
        Text(gettext_noop("The stock cannot hold more than %(n)d units."), n=MAX_ON_HAND), field="delta"
    )


def _stock_adjust(
    *, product: Product, delta: int, reason: str, actor: Actor, reference: str, kind: str
) -> Stock:
    _check_adjustment(delta, kind)
    fits = Q(on_hand__gte=F("reserved") - delta)
    if delta > 0:  # past the column's range the UPDATE would fail (a DataError, a 500)
        fits &= Q(on_hand__lte=MAX_ON_HAND - delta)
    with transaction.atomic():
        updated = Stock.objects.filter(fits, product_id=product.pk).update(
            on_hand=F("on_hand") + delta, version=F("version") + 1, updated_at=timezone.now()
        )
        stock = Stock.objects.filter(product_id=product.pk).first()
        if stock is None:  # the product was deleted for good since the caller read it
            raise NotFound(_("The product no longer exists."))
        if not updated and delta > 0 and stock.on_hand > MAX_ON_HAND - delta:
            raise _too_much_stock()
        if not updated:
            raise InsufficientStock(
                Text(
                    gettext_noop("Cannot remove %(n)d units: %(on_hand)d on hand, %(reserved)d reserved."),
                    n=-delta,
                    on_hand=stock.on_hand,
                    reserved=stock.reserved,
                ),
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
    """Set the counted quantity, compare-and-set: refused if on_hand is no longer `expected_on_hand`.

    Staff need `catalog.count_stock`."""
    actor.require_if_staff("catalog.count_stock")
    if on_hand < 0:
        raise InvalidInput(_("on_hand cannot be negative."), field="on_hand")
    with transaction.atomic():
        refuse_if_vendor_suspended(actor=actor, vendor_id=product.vendor_id)
        stock = core.locked(Stock.objects, product.pk, by="product_id")
        refuse_if_product_deleted(product)
        if stock.on_hand != expected_on_hand:
            raise StockChanged(
                Text(
                    gettext_noop("Stock changed: %(now)d on hand, not %(expected)d. Count again."),
                    now=stock.on_hand,
                    expected=expected_on_hand,
                ),
                on_hand=stock.on_hand,
            )
        if on_hand < stock.reserved:
            raise InsufficientStock(
                Text(
                    gettext_noop(
                        "%(reserved)d units are reserved by open orders: the count cannot be lower."
                    ),
                    reserved=stock.reserved,
                ),
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


def stock_lock_for_hard_delete(*, product_ids: Sequence[uuid.UUID]) -> None:
    """Lock the stock rows of products about to be deleted for good, before the products
    themselves (okada.core.admin TrackedAdmin.lock_before_hard_delete), in product-id order.

    A placement locks the stock rows first (okada_order_place(), in that order) and its order
    items' foreign keys key-share-lock the products at commit; a delete that locked the products
    first and then deleted their stock would wait for such a placement while it waits for the
    delete: a deadlock, one of the two failed. Taken first, the stock row makes the delete wait
    for the placement to commit (and then find its order: refused), or a later placement wait
    for the delete (and then find no product: product_unavailable)."""
    list(
        Stock.objects.filter(product_id__in=product_ids)
        .order_by("product_id")
        .select_for_update()
        .values_list("pk", flat=True)
    )


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
    """Create or update the vendor's products by SKU, set-based: what product_create and
    product_update do for each item, in a number of statements that does not grow with the items.

    `items` hold editable fields (PRODUCT_EDITABLE_FIELDS, `sku` required) and, for new products
    only, `initial_stock`. An existing product (a live one of this vendor with the SKU) gets the
    fields given and keeps the others. With `atomic`, one failed item rolls back every item and
    raises BulkRejected (its `results` say which failed and why); otherwise each item is applied
    or refused on its own and the results say which. A suspended vendor's own actors are refused
    the whole request (VendorSuspended), in both modes: not an item's fault, nothing to report
    per item.

    Each item gets the checks, the answer, the rows and the history rows the single-item services
    would give it (tests/catalog/test_bulk_upsert.py compares them): every check is made in
    Python before anything is written, so a refused item writes nothing and the others are
    written together (`_write_items`). Two bulk upserts of one vendor run one after the other
    (`_bulk_upsert_lock`): a later request waits for the earlier, and a SKU the earlier one
    created meanwhile is updated, not refused; so is a SKU a single create committed meanwhile
    (the insert skips it, then the update takes it). A product renamed meanwhile no longer has
    the item's SKU: the item makes a new product, as if the rename had come first. SKUs are
    matched and stored in Unicode NFC (catalog.skus): "e" + U+0301 finds the product stored as
    "é", and the two in one request are the same SKU twice.
    """
    if len(items) > BULK_MAX_ITEMS:
        raise InvalidInput(
            Text(gettext_noop("At most %(n)d items per request."), n=BULK_MAX_ITEMS), field="items"
        )
    if actor.role == Actor.VENDOR and actor.vendor_id != vendor.pk:
        raise NotAllowed(_("You may not change this vendor's products."))
    items = [{**item, "sku": normalize_sku(item["sku"])} for item in items]
    with transaction.atomic():
        # The whole request, not each item: the suspension is the caller's, not an item's fault.
        refuse_if_vendor_suspended(actor=actor, vendor_id=vendor.pk)
        results = _upsert_items(vendor, items, actor)
        failed = [r for r in results if r.error is not None]
        if atomic and failed:
            transaction.set_rollback(True)
            first = failed[0]
            errors = {
                f"items.{r.index}.{field}": messages
                for r in failed
                for field, messages in (r.error.errors if r.error else {}).items()
            }
            detail = Text(
                gettext_noop("Item %(i)d (%(sku)s): %(msg)s"),
                i=first.index,
                sku=first.sku,
                msg=text_of(first.error) if first.error else "",
            )
            outcome = [
                r.as_dict() if r.error else {"index": r.index, "sku": r.sku, "status": "rolled_back"}
                for r in results
            ]
            raise BulkRejected(detail, errors=errors, results=outcome)
    return results


@dataclass
class _Item:
    """An item of a bulk upsert to write: its fields, and the product it updates (if any)."""

    index: int
    sku: str
    item: dict[str, Any]
    fields: dict[str, Any]
    current: Product | None = None


def _upsert_items(vendor: Vendor, items: list[dict[str, Any]], actor: Actor) -> list[UpsertResult]:
    skus = [item["sku"] for item in items]
    existing = {p.sku: p for p in Product.objects.filter(vendor=vendor, sku__in=skus)}
    results: dict[int, UpsertResult] = {}
    writes: list[_Item] = []
    seen: set[str] = set()
    # sorted() is stable: of one SKU given twice, the first in the request still wins.
    for index, item in sorted(enumerate(items), key=lambda pair: pair[1]["sku"]):
        sku = item["sku"]
        if sku in seen:
            error = InvalidInput(_("This SKU appears twice in the request."), field="sku")
            results[index] = UpsertResult(index, sku, "failed", error=error)
            continue
        seen.add(sku)
        fields = {k: v for k, v in item.items() if k in PRODUCT_EDITABLE_FIELDS and k != "sku"}
        current = existing.get(sku)
        if current is not None and not _changed_fields(current, fields):
            # Nothing to write (a catalog sent again, nightly): no lock or query. `existing` is
            # this request's read: a change committed since is as if it came after.
            try:
                actor.require_if_staff("catalog.change_product")  # as product_update would ask
            except DomainError as exc:
                results[index] = UpsertResult(index, sku, "failed", error=exc)
            else:
                results[index] = UpsertResult(index, sku, "unchanged", product=current)
            continue
        writes.append(_Item(index, sku, item, fields, current))
    if writes:
        _bulk_upsert_lock(vendor)
        try:
            with transaction.atomic():  # a savepoint, for the fallback below
                results.update(_write_items(vendor, writes, actor))
        except IntegrityError:
            # A constraint the checks do not foresee refused a statement (a SKU whose characters
            # Python's Unicode tables, older than PostgreSQL's, cannot normalise): each item
            # then goes through the single-item services, which name the item refused.
            for write in writes:
                results[write.index] = _upsert_one(write, vendor=vendor, existing=existing, actor=actor)
    return [results[index] for index in range(len(items))]


def _bulk_upsert_lock(vendor: Vendor) -> None:
    """One bulk upsert with writes at a time per vendor, until the transaction ends.

    A bulk upsert locks the products it updates, then inserts the new ones, then locks those
    another request created meanwhile. Two of them at once could each hold what the other waits
    for (a row one locked, a SKU the other inserted), a deadlock; one after the other they never
    do. Single-item writes lock one product each and need no turn. Unchanged items take none.
    """
    transaction_lock(f"catalog.product_bulk:{vendor.pk}")


def _write_items(vendor: Vendor, writes: list[_Item], actor: Actor) -> dict[int, UpsertResult]:
    """Check each item as product_create / product_update would, then write those that pass:
    one statement per table for all of them (products, stock, ledger, history)."""
    results: dict[int, UpsertResult] = {}
    categories = core.live_share_locked_many(
        Category,
        (w.fields["category"] for w in writes if w.fields.get("category") is not None),
        strength="SHARE",  # as _live_category
    )
    # FOR NO KEY UPDATE, as product_update: placements of these products (their items' foreign
    # keys key-share-lock them) neither wait for this request nor deadlock with it.
    locked = {
        p.pk: p
        for p in Product.objects.select_for_update(no_key=True)
        .filter(pk__in=[w.current.pk for w in writes if w.current is not None])
        .order_by("sku")
    }
    for write in writes:
        row = locked.get(write.current.pk) if write.current is not None else None
        if row is not None and row.sku != write.sku:
            # Renamed since this request read it: as if the rename came first (this request
            # writes after it), the SKU is no longer that product's, so the item is a new
            # product, or updates the product that took the SKU meanwhile.
            write.current = None
    updates = [w for w in writes if w.current is not None]
    creates = [w for w in writes if w.current is None]
    if creates:
        for write in _create_products(vendor, creates, categories, actor, results):
            updates.append(write)  # a SKU another request created meanwhile: updated
            if write.current is not None:  # locked by _create_products
                locked[write.current.pk] = write.current
    changed: list[Product] = []
    for write in updates:
        try:
            product = _updated_product(write, categories, locked, actor)
        except DomainError as exc:
            results[write.index] = UpsertResult(write.index, write.sku, "failed", error=exc)
            continue
        if product is None:  # as the other request or a change since left it
            current = locked[write.current.pk] if write.current is not None else None
            results[write.index] = UpsertResult(write.index, write.sku, "unchanged", product=current)
            continue
        changed.append(product)
        results[write.index] = UpsertResult(write.index, write.sku, "updated", product=product)
    if changed:
        now = timezone.now()
        for product in changed:
            product.updated_at = now  # as save() would (auto_now)
        core.update_rows(Product, changed, [*UPSERT_COLUMNS, "version", "updated_at"])
        with acting_for(actor, "product updated"):
            _history(changed, update=True)
    return results


# The columns an upsert writes: the editable fields but the SKU (the key it is matched by).
UPSERT_COLUMNS = [name for name in PRODUCT_EDITABLE_FIELDS if name != "sku"]


def _history(products: list[Product], *, update: bool) -> None:
    """The history rows product.save() would write (same user, reason and fields), in one INSERT."""
    Product.history.bulk_history_create(
        products, update=update, default_change_reason=actors.current().reason or None
    )


def _category_of(fields: dict[str, Any], categories: dict[Any, Category]) -> Category | None:
    """The item's category as _live_category gives it (share-locked), or its refusal."""
    category = fields.get("category")
    if category is None:
        return None
    found = categories.get(getattr(category, "pk", category))
    if found is None:
        raise _missing(Category, "category")
    return found


def _updated_product(
    write: _Item, categories: dict[Any, Category], locked: dict[Any, Product], actor: Actor
) -> Product | None:
    """product_update's checks and changes on the locked product; None when nothing changes."""
    actor.require_if_staff("catalog.change_product")
    data = dict(write.fields)
    if data.get("category") is not None:
        data["category"] = _category_of(data, categories)
    product = locked.get(write.current.pk) if write.current is not None else None
    if product is None:
        raise core.gone_meanwhile(Product)
    return product if _apply_changes(product, data) else None


def _new_product(
    vendor: Vendor,
    write: _Item,
    categories: dict[Any, Category],
    vendor_error: DomainError | None,
    actor: Actor,
) -> Product:
    """product_create's checks, in its order, and the product it would insert."""
    _refuse_incomplete(write.fields)
    actor.require_if_staff("catalog.add_product")
    if vendor_error is not None:
        raise vendor_error
    fields = {**write.fields, "category": _category_of(write.fields, categories)}
    # No unique check: the id is a new one (its default), and the insert skips a SKU taken.
    return _product_to_insert(
        vendor, write.sku, fields, write.item.get("initial_stock", 0), validate_unique=False
    )


def _create_products(
    vendor: Vendor,
    creates: list[_Item],
    categories: dict[Any, Category],
    actor: Actor,
    results: dict[int, UpsertResult],
) -> list[_Item]:
    """Insert the new products that pass product_create's checks (failed ones go to `results`),
    with their stock, ledger and history; return the items whose SKU another request created
    since this one read (their `current` set, locked), to update instead."""
    vendor_error: DomainError | None = None
    try:
        live_vendor = _live_vendor(vendor)
    except DomainError as exc:
        vendor_error, live_vendor = exc, vendor
    new: dict[str, tuple[_Item, Product]] = {}
    for write in creates:
        try:
            new[write.sku] = (write, _new_product(live_vendor, write, categories, vendor_error, actor))
        except DomainError as exc:
            results[write.index] = UpsertResult(write.index, write.sku, "failed", error=exc)
    if not new:
        return []
    # A SKU created meanwhile by another request (committed: the insert waits for it on the
    # unique index) is skipped here, not an error: this request then updates it.
    Product.objects.bulk_create([product for _write, product in new.values()], ignore_conflicts=True)
    rows = (
        Product.objects.select_for_update(no_key=True)
        .filter(vendor=vendor, sku__in=list(new))
        .order_by("sku")
    )
    found = {row.sku: row for row in rows}
    created: list[Product] = []
    taken: list[_Item] = []
    for sku, (write, product) in new.items():
        row = found.get(sku)
        if row is None:  # created and deleted again meanwhile: as product_create's refusal
            results[write.index] = UpsertResult(write.index, sku, "failed", error=_sku_taken(sku))
        elif row.pk == product.pk:
            created.append(row)
            results[write.index] = UpsertResult(write.index, sku, "created", product=row)
        else:
            write.current = row
            taken.append(write)
    initial = {row.pk: new[row.sku][0].item.get("initial_stock", 0) for row in created}
    # product_create's Stock row, and _stock_adjust's restock of the initial stock (version 2).
    Stock.objects.bulk_create(
        [
            Stock(
                product=row, vendor=live_vendor, on_hand=initial[row.pk], version=2 if initial[row.pk] else 1
            )
            for row in created
        ]
    )
    StockMovement.objects.bulk_create(
        [
            _movement(
                product_id=row.pk,
                vendor_id=vendor.pk,
                delta=initial[row.pk],
                kind=StockMovement.Kind.RESTOCK,
                reason="initial stock",
                reference="",
                actor=actor,
            )
            for row in created
            if initial[row.pk]
        ]
    )
    with acting_for(actor, "product created"):
        _history(created, update=False)
    return taken


def _upsert_one(write: _Item, *, vendor: Vendor, existing: dict[str, Product], actor: Actor) -> UpsertResult:
    """One item through product_create / product_update, in a savepoint: what _upsert_items
    falls back to when a set-based statement is refused (its items: each SKU once, new or with a
    change; the rest were answered before)."""
    index, sku, fields = write.index, write.sku, write.fields
    current = existing.get(sku)
    try:
        with transaction.atomic():  # a savepoint: a failed item leaves the others applied
            if current is not None:
                # Renamed since this request read it: the SKU is no longer its (as _write_items
                # decides). A deleted one stays, for product_update to refuse.
                current = (
                    Product.all_objects.select_for_update(no_key=True).filter(pk=current.pk, sku=sku).first()
                )
            if current is None:
                _refuse_incomplete(fields)
                try:
                    product = product_create(
                        vendor=vendor,
                        sku=sku,
                        actor=actor,
                        initial_stock=write.item.get("initial_stock", 0),
                        **fields,
                    )
                    return UpsertResult(index, sku, "created", product=product)
                except SkuTaken:
                    # Another request created the SKU since this one looked (this insert waited
                    # for its commit on the unique index): an upsert updates it.
                    current = Product.objects.filter(vendor=vendor, sku=sku).first()
                    if current is None:
                        raise
            product = product_update(product=current, data=fields, actor=actor)
            status = "updated" if product.version != current.version else "unchanged"
            return UpsertResult(index, sku, status, product=product)
    except DomainError as exc:
        return UpsertResult(index, sku, "failed", error=exc)
