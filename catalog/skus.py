"""SKUs are stored and compared in Unicode normal form NFC.

A SKU is the identity of a vendor's product (unique among its live products, the key of the bulk
upsert and of the sync mutations). "é" can be sent as one code point (U+00E9) or as "e" followed
by a combining accent (U+0301): they look the same, and without normalising they were two SKUs,
so an upsert sent in the other form created a second product. Every SKU the API, the admin, the
sync mutations and the services take goes through `normalize_sku`; the CHECK constraint
`catalog_product_sku_nfc` (`sku IS NFC NORMALIZED`) makes PostgreSQL refuse any other.

`normalize_stored_skus` is what migrations 0013/0014 run over rows written before: it normalises
them with PostgreSQL's own `normalize()` (the rule the constraint checks), and refuses, changing
nothing, when that would give two live products of one vendor the same SKU (also when one of
them is written while the migration runs: the same message, never a unique-violation traceback).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy, gettext_noop

SKU_NFC_CONSTRAINT = "catalog_product_sku_nfc"
# Product's unique index (vendor, sku) among live products: a product written meanwhile with the
# NFC form of a SKU being normalised makes it refuse the migration's UPDATE.
LIVE_SKU_UNIQUE = "catalog_product_vendor_sku_live_uniq"
RACE_ATTEMPTS = 3  # checks (and UPDATEs) before a refusal by LIVE_SKU_UNIQUE is let through raw
SKU_MAX_LENGTH = 64  # Product.sku's max_length (varchar(64): characters, as Python counts them)
# The history reason of a row the migration normalised (in services.CHANGE_REASONS' catalogue).
NORMALIZED_REASON = gettext_noop("SKU normalised to Unicode NFC")
NORMALIZED_BY = "system:migration"


# Control characters (tab, newline, escape), invisible format characters (zero-width space, BOM,
# bidi overrides), lone surrogates, line and paragraph separators: none is typed on purpose, and a
# SKU holding one differs, unseen, from the one a person types when searching or importing.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def refuse_unseen_characters(sku: str) -> None:
    """Product.sku's validator: a SKU made of characters one can see (spaces included)."""
    for character in sku:
        if unicodedata.category(character) in _UNSEEN_CATEGORIES:
            raise ValidationError(
                gettext_lazy(
                    "A SKU cannot hold control or invisible characters (here U+%(code)s): remove it."
                ),
                code="invalid",
                params={"code": f"{ord(character):04X}"},
            )


def normalize_sku(sku: str) -> str:
    """The SKU in Unicode normal form NFC: how it is stored, and how every lookup compares it."""
    return unicodedata.normalize("NFC", sku)


@dataclass(frozen=True)
class StoredSku:
    id: str
    vendor: str  # "slug (name)"
    sku: str

    def shown(self) -> str:
        # The forms look identical: ascii() shows which is which ('Caf\xe9', 'Cafe\u0301').
        return f"{self.sku} = {self.sku!a} (product {self.id})"


class SkuNormalizationBlocked(CommandError):
    """Normalising the stored SKUs would make two live products of one vendor share a SKU (or a
    SKU longer than the column). A CommandError: `migrate` prints it as a sentence, not a
    traceback. Nothing was changed; the operator renames one product and runs migrate again."""

    def __init__(self, collisions: list[list[StoredSku]], too_long: list[StoredSku]) -> None:
        self.collisions = collisions
        self.too_long = too_long
        lines = ["SKUs cannot be normalised to Unicode NFC (catalog_product_sku_nfc); nothing was changed."]
        for group in collisions:
            lines.append(
                f"- vendor {group[0].vendor}: these live products would all have the SKU "
                f"{normalize_sku(group[0].sku)!a}: " + "; ".join(p.shown() for p in group)
            )
        for product in too_long:
            lines.append(
                f"- vendor {product.vendor}: {product.shown()} would be longer than "
                f"{SKU_MAX_LENGTH} characters"
            )
        todo = []
        if collisions:
            todo.append(
                "rename one product of each group (admin, or PATCH /api/v1/products/<id> with "
                "another sku) so that no two live products of a vendor have SKUs that differ only "
                "in how their accents are encoded"
            )
        if too_long:
            todo.append("shorten the SKUs too long")
        lines.append(
            f"To do: {' and '.join(todo)}, then run migrate again (nothing is merged or deleted "
            "automatically)."
        )
        super().__init__("\n".join(lines))


def normalize_stored_skus(connection: Any) -> int:
    """Normalise every stored SKU that is not NFC (live and deleted products), each change a new
    version with a history row; the number of products changed.

    Raises SkuNormalizationBlocked, having changed nothing, when two live products of one vendor
    would end with the same SKU (their unique index would refuse it; which one is the real one
    is the vendor's call, not ours) or a SKU would outgrow its column. One read of the table
    (no index answers "not NFC"); the writes touch only the rows that change.

    A live product written with the NFC form of one of these SKUs after the check and before the
    UPDATE (the app keeps running during the migration) makes the unique index refuse the UPDATE.
    The UPDATE runs in a savepoint: refused, it is undone and the check runs again, which now sees
    that product (READ COMMITTED: each statement reads what committed before it) and stops with
    the same message. Not a table lock held from the check on: SHARE on catalog_product for the
    whole scan would stop every product write of the site meanwhile, for a race that costs only
    running migrate again.
    """
    with connection.cursor() as cursor:
        attempt = 0
        while True:
            attempt += 1
            ids = _check(cursor)
            if not ids:
                return 0
            try:
                with transaction.atomic(using=connection.alias):
                    _rewrite(connection, cursor, ids)
            except IntegrityError as exc:
                constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
                if constraint != LIVE_SKU_UNIQUE or attempt == RACE_ATTEMPTS:
                    raise
                continue  # checked again: the product written meanwhile is named, or it is gone
            return len(ids)


def _check(cursor: Any) -> list[str]:
    """The ids of the products whose SKU is not NFC; SkuNormalizationBlocked if normalising them
    would give two live products of a vendor one SKU, or a SKU longer than the column."""
    cursor.execute(
        "SELECT p.id::text, p.vendor_id::text, v.slug || ' (' || v.name || ')', p.sku, "
        "normalize(p.sku, NFC), p.deleted_at IS NULL "
        "FROM catalog_product p JOIN catalog_vendor v ON v.id = p.vendor_id "
        "WHERE p.sku IS NOT NFC NORMALIZED ORDER BY v.slug, p.sku, p.id"
    )
    rows = cursor.fetchall()
    if not rows:
        return []
    too_long = [StoredSku(r[0], r[2], r[3]) for r in rows if len(r[4]) > SKU_MAX_LENGTH]
    groups: dict[tuple[str, str], list[StoredSku]] = {}
    for pk, vendor_id, vendor, sku, nfc, live in rows:
        if live:
            groups.setdefault((vendor_id, nfc), []).append(StoredSku(pk, vendor, sku))
    # A live product whose SKU is already the NFC form of one of them (NFC already: not read
    # above). The unique index (vendor_id, sku) WHERE deleted_at IS NULL finds each.
    cursor.execute(
        "SELECT p.id::text, p.vendor_id::text, v.slug || ' (' || v.name || ')', p.sku "
        "FROM unnest(%s::uuid[], %s::text[]) AS k(vendor_id, sku) "
        "JOIN catalog_product p ON p.vendor_id = k.vendor_id AND p.sku = k.sku AND p.deleted_at IS NULL "
        "JOIN catalog_vendor v ON v.id = p.vendor_id ORDER BY p.id",
        [[vendor_id for vendor_id, _ in groups], [nfc for _, nfc in groups]],
    )
    for pk, vendor_id, vendor, sku in cursor.fetchall():
        groups[(vendor_id, sku)].insert(0, StoredSku(pk, vendor, sku))
    collisions = [group for group in groups.values() if len(group) > 1]
    if collisions or too_long:
        raise SkuNormalizationBlocked(collisions, too_long)
    return [r[0] for r in rows]


def _rewrite(connection: Any, cursor: Any, ids: list[str]) -> None:
    """UPDATE the rows to their NFC SKU, new version (devices and ETags see a change), with the
    history row every write of a tracked model has. The history columns are read from the
    database, so this runs against the schema of the migration that calls it."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns h "
        "WHERE h.table_schema = current_schema() AND h.table_name = 'catalog_historicalproduct' "
        "AND h.column_name !~ '^history_' AND EXISTS (SELECT FROM information_schema.columns p "
        "WHERE p.table_schema = h.table_schema AND p.table_name = 'catalog_product' "
        "AND p.column_name = h.column_name) ORDER BY h.ordinal_position"
    )
    columns = ", ".join(connection.ops.quote_name(name) for (name,) in cursor.fetchall())
    cursor.execute(
        "WITH changed AS ("  # noqa: S608 (column names read from the catalog, quoted)
        " UPDATE catalog_product SET sku = normalize(sku, NFC), version = version + 1, updated_at = now()"
        " WHERE id = ANY(%s::uuid[]) AND sku IS NOT NFC NORMALIZED RETURNING *)"
        f" INSERT INTO catalog_historicalproduct ({columns}, history_date, history_change_reason,"
        " history_type, history_user_id)"
        f" SELECT {columns}, now(), %s, '~', NULL FROM changed",
        [ids, f"{NORMALIZED_REASON} [{NORMALIZED_BY}]"],
    )
