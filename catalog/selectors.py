"""Reads of the catalog that are more than a one-liner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

from okada.core.querysets import count_up_to

from .models import Category, Product, ProductQuerySet, Stock, StockMovement, Vendor


@dataclass(frozen=True)
class StockMismatch:
    product_id: uuid.UUID
    on_hand: int
    ledger_on_hand: int
    reserved: int
    ledger_reserved: int


def stock_audit(*, vendor: Vendor | None = None, using: str = DEFAULT_DB_ALIAS) -> list[StockMismatch]:
    """Products whose stock differs from the sum of their ledger movements (empty = consistent).

    `using`: another database with the same schema (a restore drill checks its restored copy).
    """
    vendor_id = vendor.pk if vendor else None
    with connections[using].cursor() as cur:
        cur.execute(
            """
            WITH ledger AS (
                SELECT product_id,
                       sum(delta) FILTER (WHERE kind = ANY(%(on_hand_kinds)s)) AS on_hand,
                       sum(delta) FILTER (WHERE kind = ANY(%(reserved_kinds)s)) AS reserved
                  FROM catalog_stockmovement
                 WHERE %(vendor)s::uuid IS NULL OR vendor_id = %(vendor)s::uuid
                 GROUP BY product_id
            )
            SELECT s.product_id, s.on_hand, coalesce(l.on_hand, 0), s.reserved, coalesce(l.reserved, 0)
              FROM catalog_stock s LEFT JOIN ledger l USING (product_id)
             WHERE (%(vendor)s::uuid IS NULL OR s.vendor_id = %(vendor)s::uuid)
               AND (s.on_hand <> coalesce(l.on_hand, 0) OR s.reserved <> coalesce(l.reserved, 0))
            """,
            {
                "on_hand_kinds": list(StockMovement.ON_HAND_KINDS),
                "reserved_kinds": list(StockMovement.RESERVED_KINDS),
                "vendor": vendor_id,
            },
        )
        return [StockMismatch(*row) for row in cur.fetchall()]


def product_list_for_vendor(*, vendor: Vendor, q: str = "", is_active: bool | None = None) -> ProductQuerySet:
    return product_list(vendor_id=vendor.pk, q=q, is_active=is_active).select_related("category")


def product_list(
    *,
    vendor_id: uuid.UUID | None,
    orderable: bool = False,
    q: str = "",
    is_active: bool | None = None,
    category_id: uuid.UUID | None = None,
    updated_since: datetime | None = None,
) -> ProductQuerySet:
    """Live products of one vendor (`vendor_id`), or with `orderable` those any customer may
    order (active, of an active vendor); filtered, with their stock (one query, no N+1)."""
    products = Product.objects.select_related("stock")
    if vendor_id is not None:
        products = products.for_vendor(vendor_id)
    if orderable:
        products = products.orderable()
    if is_active is not None:
        products = products.filter(is_active=is_active)
    if category_id is not None:
        products = products.filter(category_id=category_id)
    if updated_since is not None:
        products = products.filter(updated_at__gte=updated_since)
    if q:
        products = products.search(q, one_vendor=vendor_id is not None)
    return products


def newest_products(*, vendor: Vendor, limit: int = 10) -> list[Product]:
    """The vendor's `limit` newest live products, with stock and category.

    By creation time, which the vendor's index serves as a top-N sort of its products: ordering
    by the (time-ordered) id would walk the primary key from the newest product of any vendor,
    hundreds of thousands of rows for a vendor that added none lately.
    """
    return list(
        Product.objects.for_vendor(vendor)
        .select_related("stock", "category")
        .order_by("-created_at", "-id")[:limit]
    )


def category_list(
    *, parent_id: uuid.UUID | None = None, updated_since: datetime | None = None
) -> QuerySet[Category]:
    """Live categories (shared by every vendor)."""
    categories = Category.objects.all()
    if parent_id is not None:
        categories = categories.filter(parent_id=parent_id)
    if updated_since is not None:
        categories = categories.filter(updated_at__gte=updated_since)
    return categories


def stock_movements_for_product(*, product: Product, limit: int = 20) -> list[StockMovement]:
    """The newest ledger rows of one product (index on product, created_at)."""
    return list(StockMovement.objects.filter(product=product).order_by("-created_at")[:limit])


def low_stock(*, threshold: int, limit: int = 10) -> list[Stock]:
    """Live, active products with at most `threshold` units available, emptiest first.

    Reads the partial index on `Stock.level` (available units capped below LOW_STOCK_CAP), so
    it never scans the million stock rows.
    """
    return list(
        Stock.objects.filter(level__lte=threshold, product__deleted_at__isnull=True, product__is_active=True)
        .select_related("product", "vendor")
        .order_by("level", "id")[:limit]
    )


def low_stock_count(*, threshold: int, cap: int = 1000) -> int:
    """How many stock rows are low, counted up to `cap` (the dashboard shows "1000+")."""
    return count_up_to(Stock.objects.filter(level__lte=threshold), cap)


def stock_outs(*, limit: int = 10) -> list[Stock]:
    """Live, active products with nothing left to sell (every unit on hand is reserved)."""
    return low_stock(threshold=0, limit=limit)


def stock_out_count(*, cap: int = 1000) -> int:
    """How many live, active products are out of stock, counted up to `cap` ("1000+"); reads the
    partial index on `Stock.level`, then each of those few products by its key."""
    return count_up_to(
        Stock.objects.filter(level__lte=0, product__deleted_at__isnull=True, product__is_active=True), cap
    )
