"""Reads of the catalog that are more than a one-liner."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext_noop

from okada.core.api.serializers import UTC_SQL
from okada.core.db import prepared_rows
from okada.core.errors import InvalidInput
from okada.core.fields import any_of
from okada.core.querysets import count_up_to
from okada.core.texts import Text

from .models import (
    ORDER_KINDS,
    SEARCH_LOOKS_FOR_SQL,
    SEARCH_ONE_VENDOR_SQL,
    SEARCH_QUERY,
    SEARCH_SQL,
    Category,
    Product,
    ProductQuerySet,
    Stock,
    StockMovement,
    Vendor,
    search_text,
)


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


# --- Products as the API shows them, written by PostgreSQL ------------------------------------------

# A product (its row joined with its stock row) as the API's compact JSON text: the bytes orjson
# writes for the same values (`to_json` escapes text as orjson does; jsonb's text is JSON already;
# times are RFC 3339 UTC with microseconds and a Z; `concat` writes other values with their output
# function, hence `::text` for the boolean, whose output is `t`). Lists send these texts as they
# come: Python neither builds a dict nor converts a value per row.
PRODUCT_JSON = f"""concat(
    '{{"id":"', catalog_product.id,
    '","vendor":"', catalog_product.vendor_id,
    '","sku":', to_json(catalog_product.sku),
    ',"name":', to_json(catalog_product.name),
    ',"description":', to_json(catalog_product.description),
    ',"category":', coalesce('"' || catalog_product.category_id::text || '"', 'null'),
    ',"price_xaf":', catalog_product.price_xaf,
    ',"compare_at_price_xaf":', coalesce(catalog_product.compare_at_price_xaf::text, 'null'),
    ',"unit":', to_json(catalog_product.unit),
    ',"is_active":', catalog_product.is_active::text,
    ',"attributes":', catalog_product.attributes,
    ',"version":', catalog_product.version,
    ',"stock":{{"product":"', catalog_product.id,
    '","on_hand":', coalesce(catalog_stock.on_hand, 0),
    ',"reserved":', coalesce(catalog_stock.reserved, 0),
    ',"available":', coalesce(catalog_stock.on_hand, 0) - coalesce(catalog_stock.reserved, 0),
    ',"version":', coalesce(catalog_stock.version, 0),
    '}},"created_at":"', {UTC_SQL.format(column="catalog_product.created_at")},
    '","updated_at":"', {UTC_SQL.format(column="catalog_product.updated_at")},
    '"}}'
)"""
PRODUCT_STOCK_JOIN = "LEFT JOIN catalog_stock ON catalog_stock.product_id = catalog_product.id"
PRODUCT_FROM = f"catalog_product {PRODUCT_STOCK_JOIN}"
PRODUCT_SORT_KEYS = ("updated_at", "created_at", "name", "sku", "price_xaf")
TIME_SORT_KEYS = ("updated_at", "created_at")


def product_json(*, pk: uuid.UUID) -> tuple[str, int] | None:
    """A live product's JSON text (as lists write it) and its version; None if there is none."""
    rows = prepared_rows(
        f"SELECT {PRODUCT_JSON}, catalog_product.version FROM {PRODUCT_FROM}"  # noqa: S608 (constant)
        " WHERE catalog_product.id = %(pk)s AND catalog_product.deleted_at IS NULL",
        {"pk": pk},
    )
    return rows[0] if rows else None


def product_page(
    *,
    vendor_id: uuid.UUID | None,
    orderable: bool = False,
    q: str = "",
    is_active: bool | None = None,
    category_id: uuid.UUID | None = None,
    updated_since: datetime | None = None,
    ordering: str = "-updated_at",
    after: tuple[Any, uuid.UUID] | None = None,
    limit: int,
) -> list[tuple[str, str, str]]:
    """The products `product_list` selects (same arguments), in `ordering` then by id the same
    way, strictly after the (sort key, id) `after`, `limit` at most: rows of (JSON text as
    `PRODUCT_JSON` writes it, sort key, id), all three as text (PostgreSQL's; a page converts
    only the keys of its first and last rows). One statement, whose text depends only on which
    filters are given: prepared once per connection, never compiled by the ORM."""
    rows = _product_page_rows(
        vendor_id=vendor_id,
        orderable=orderable,
        q=q,
        is_active=is_active,
        category_id=category_id,
        updated_since=updated_since,
        ordering=ordering,
        after=after,
        limit=limit,
    )
    if not rows and q and not search_looks_for_words(q):
        # Found nothing, read nothing (SEARCH_LOOKS_FOR_SQL): a search without a word to look
        # for, refused rather than answered with an empty page. Asked only of an empty page:
        # the others need no second round trip.
        raise InvalidInput(
            Text(
                gettext_noop(
                    "q has no word to look for: %(term)s. Products are found by the words of their "
                    "name, description or SKU."
                ),
                term=q,
            ),
            field="q",
        )
    return rows


def _product_page_rows(
    *,
    vendor_id: uuid.UUID | None,
    orderable: bool,
    q: str,
    is_active: bool | None,
    category_id: uuid.UUID | None,
    updated_since: datetime | None,
    ordering: str,
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> list[tuple[str, str, str]]:
    if orderable and is_active is False:
        # Orderable products are active ones: none is inactive. Asked of PostgreSQL, it read
        # every product of the marketplace to find that out (about 170 ms on a million).
        return []
    shape = {
        "vendor": vendor_id is not None,
        "orderable": orderable,
        "search": bool(q),
        "is_active": is_active is not None,
        "category": category_id is not None,
        "updated_since": updated_since is not None,
        "ordering": ordering,
        "after": after is not None,
    }
    sql = _product_page_sql(**shape, plan="walk" if q and vendor_id is None else "")
    params = {
        "vendor": vendor_id,
        "active": Vendor.Status.ACTIVE.value,
        # As ProductQuerySet.search: SKUs are NFC; a phrase is one only in one vendor's search
        "q": search_text(q, phrases=vendor_id is not None),
        "is_active": is_active,
        "category": category_id,
        "updated_since": updated_since,
        "after_key": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    if q and vendor_id is None:
        # A search of the whole marketplace, in two steps (SEARCH_WALK), each planned for its text
        # (the tsquery folded to a constant: 18 to 34 ms on the medium seed, against 35 to 64 ms
        # with a prepared statement's query): not prepared.
        params["walk"] = SEARCH_WALK
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            if len(rows) < limit:  # a full page was not among the first products in order
                cursor.execute(_product_page_sql(**shape, plan="matches"), params)
                rows = cursor.fetchall()
            return rows
    return prepared_rows(sql, params)


def search_looks_for_words(text: str) -> bool:
    """Whether a search has a word to look for (SEARCH_LOOKS_FOR_SQL): False for text without
    one ("!!!", "-"), which finds nothing (ProductQuerySet.search, product_page);
    the API refuses it, the admin says why its list is empty."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {SEARCH_LOOKS_FOR_SQL.format(query=SEARCH_QUERY)}", (search_text(text),))
        return bool(cursor.fetchone()[0])


def product_search_first_keys(products: ProductQuerySet, text: str, *, rows: int) -> list[uuid.UUID]:
    """The keys of the first `rows` of `products` newest first (by key) that the marketplace's
    search of `text` finds (ProductQuerySet.search: quotes read as words), in that order; the
    admin's product list (across vendors) then reads its page among them by key.

    In the storefront's two steps (SEARCH_WALK): the first SEARCH_WALK products newest first are
    tested; without `rows` matches among them, the matches are read from the full-text index and
    sorted by a copy of the key. Asked for its matches newest first, PostgreSQL chose by its guess
    of how many products match, which words common but never together throw far out (`bio
    premium`: every product of the large seed tested to find none, 0.35 s)."""
    query = SEARCH_QUERY
    match = f"{SEARCH_LOOKS_FOR_SQL.format(query=query)} AND {SEARCH_SQL.format(query=query)}"
    words = search_text(text, phrases=False)
    walk, walk_params = (
        products.order_by("-pk").values("id", "search_vector")[:SEARCH_WALK].query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT catalog_product.id FROM ({walk}) AS catalog_product"  # noqa: S608 (the ORM's)
            f" WHERE {match} ORDER BY catalog_product.id DESC LIMIT %s",
            (*walk_params, words, words, rows),
        )
        found = [row[0] for row in cursor.fetchall()]
    if len(found) == rows:
        return found
    by_copy = Cast("pk", output_field=TextField()).desc()  # no index gives it: the matches, sorted
    return list(products.search(text).order_by(by_copy).values_list("pk", flat=True)[:rows])


# The storefront's search (no vendor to narrow to) first tests the products in the page's order,
# this many at most: a full page among them is the page, found at once for a word many products
# have. Else the matches are read from the full-text index first, then sorted: quick for a word
# few products have, and for one whose products all come late in that order ("riz" by SKU).
# PostgreSQL chose between the two by its guess of how many products match, which words that
# are common but never together ("bio premium"), a word repeated or words found together ("riz
# brisé") throw far out: it tested every product of the marketplace to find none (0.8 to 1.4 s on
# the large seed), or joined 50,000 matches before sorting them (0.3 to 0.5 s). The walk of
# 10,000 takes 15 to 20 ms there; the sorted matches of a word 50,000 products have, 75 to 150 ms
# (a word found in the walk when PostgreSQL's own walk went a little further, "riz" by price, pays
# that: 15 ms before). See docs/performance.md.
SEARCH_WALK = 10_000


@cache
def _product_page_sql(
    *,
    vendor: bool,
    orderable: bool,
    search: bool,
    is_active: bool,
    category: bool,
    updated_since: bool,
    ordering: str,
    after: bool,
    plan: str = "",
) -> str:
    """`product_page`'s statement for one shape of request (a few dozen in all). `plan`, for a
    search without a vendor (SEARCH_WALK): "walk", the page among the first `%(walk)s` products
    in its order; "matches", the page of the search's matches sorted."""
    key = ordering.lstrip("-")
    if key not in PRODUCT_SORT_KEYS:
        raise ValueError(f"not a product ordering: {ordering}")
    if plan not in ("", "walk", "matches") or (plan and (vendor or not search)):
        raise ValueError(f"not a plan of this search: {plan}")
    direction, op = ("DESC", "<") if ordering.startswith("-") else ("ASC", ">")
    tables = PRODUCT_FROM
    vendors = ""
    where = ["catalog_product.deleted_at IS NULL"]
    if vendor:
        where.append("catalog_product.vendor_id = %(vendor)s")
    if orderable:  # as ProductQuerySet.orderable()
        vendors = " JOIN catalog_vendor ON catalog_vendor.id = catalog_product.vendor_id"
        tables += vendors
        where += [
            "catalog_product.is_active",
            "catalog_vendor.status = %(active)s",
            "catalog_vendor.deleted_at IS NULL",
        ]
    if is_active:
        where.append("catalog_product.is_active = %(is_active)s")
    if category:
        where.append("catalog_product.category_id = %(category)s")
    if updated_since:
        where.append("catalog_product.updated_at >= %(updated_since)s")
    if search and vendor:  # as ProductQuerySet.search(), the tsquery made once (an InitPlan):
        # a prepared statement's generic plan would otherwise make it again for every row it tests
        query = "(SELECT public.okada_search_query(%(q)s))"
        where.append(SEARCH_LOOKS_FOR_SQL.format(query=query))
        where.append(SEARCH_ONE_VENDOR_SQL.format(query=query))
    matching = []
    if search and not vendor:  # planned for its text, as the ORM's statements are (see product_page)
        query = SEARCH_QUERY.replace("%s", "%(q)s")
        matching = [SEARCH_LOOKS_FOR_SQL.format(query=query), SEARCH_SQL.format(query=query)]
    if after:  # the keyset condition, which the (vendor, updated_at) index serves
        where.append(f"(catalog_product.{key}, catalog_product.id) {op} (%(after_key)s, %(after_id)s)")
    # The sort key as text for the cursors: a time in one fixed format (`::text` would follow the
    # server's DateStyle, which the cursor's parser need not read).
    key_text = (
        UTC_SQL.format(column=f"catalog_product.{key}")
        if key in TIME_SORT_KEYS
        else f"catalog_product.{key}::text"
    )
    order = f" ORDER BY catalog_product.{key} {direction}, catalog_product.id {direction}"
    select = f"SELECT {PRODUCT_JSON}, {key_text}, catalog_product.id::text"
    if plan == "walk":
        # The first products in order (no search), then those of them that match, the page's
        # `limit` at most: each subquery named catalog_product, as PRODUCT_JSON reads it. The
        # stock is joined to the page only, whatever PostgreSQL guesses of the matches.
        first = f"SELECT catalog_product.* FROM catalog_product{vendors} WHERE {' AND '.join(where)}"  # noqa: S608
        page = (
            f"SELECT * FROM ({first}{order} LIMIT %(walk)s) AS catalog_product"  # noqa: S608
            f" WHERE {' AND '.join(matching)}{order}"
        )
    elif plan == "matches":
        # Sorted by a copy of the key, which no index gives in order: PostgreSQL gathers the
        # matches (from the full-text index) and sorts them, never testing products in order.
        copies = {"updated_at": "+ interval '0'", "created_at": "+ interval '0'", "price_xaf": "+ 0"}
        copy = copies.get(key, "|| ''")
        sorted_by = f" ORDER BY (catalog_product.{key} {copy}) {direction}, catalog_product.id {direction}"
        page = (
            f"SELECT catalog_product.* FROM catalog_product{vendors}"  # noqa: S608
            f" WHERE {' AND '.join(where + matching)}{sorted_by}"
        )
    else:
        return f"{select} FROM {tables} WHERE {' AND '.join(where + matching)}{order} LIMIT %(limit)s"
    return f"{select} FROM ({page} LIMIT %(limit)s) AS catalog_product {PRODUCT_STOCK_JOIN}{order}"


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


# How a search term names movements written elsewhere, as a filter of StockMovement (None: it names
# none): the orders app registers one (orders.apps), the catalog importing no orders code.
MovementReferenceFinder = Callable[[str], Q | None]
movement_reference_finders: list[MovementReferenceFinder] = []


def movement_search(term: str) -> Q:
    """The movements a reference names, as the admin's search finds them, each way through an
    index (a substring of the reference would read every partition: seconds):
    - those staff write (restock, adjustment, count, return: not an order's kind) whose reference
      starts with `term`, any case (a delivery note, a count sheet: the partial index
      catalog_stockmove_manual_ref);
    - those an order wrote, when `term` is its number (`OK-0001234`, `1234`): a registered finder
      says which, by the order's products and time (the (product, created_at) index). Their
      reference is the order's number: an index of it would cost every order placed."""
    term = term.strip()
    if not term:
        return Q()
    found = ~Q(any_of("kind", ORDER_KINDS)) & ~Q(reference="") & Q(reference__istartswith=term)
    for finder in movement_reference_finders:
        named = finder(term)
        if named is not None:
            found |= named
    return found


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
