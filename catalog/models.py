"""Vendors, their members, categories, products, stock and the stock ledger."""

from __future__ import annotations

import re
import unicodedata
import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import BooleanField, F, Func, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Least, Upper
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from okada.core.fields import (
    NfcNormalized,
    PhoneField,
    any_of,
    choices_check,
    money_field,
    phone_check,
)
from okada.core.models import (
    BaseModel,
    TrackedModel,
    TrackedQuerySet,
    deleted_rows_index,
    live_unique,
    tracked_managers,
    uuid_key,
)

from .skus import refuse_unseen_characters


class City(models.TextChoices):
    DOUALA = "douala", "Douala"
    YAOUNDE = "yaounde", "Yaoundé"


# --- Vendors ------------------------------------------------------------------------------------


class VendorQuerySet(TrackedQuerySet):
    def active(self) -> VendorQuerySet:
        return self.filter(status=Vendor.Status.ACTIVE)


class VendorStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    ACTIVE = "active", _("active")
    SUSPENDED = "suspended", _("suspended")


class Vendor(TrackedModel):
    Status = VendorStatus

    name = models.CharField(_("name"), max_length=200, db_comment="Trading name shown to customers.")
    slug = models.SlugField(_("slug"), max_length=100, db_comment="URL name, unique among live vendors.")
    phone = PhoneField(_("phone"), db_comment="Contact phone, E.164 (+237...).")
    email = models.EmailField(_("email"), blank=True, default="", db_comment="Contact email.")
    city = models.CharField(_("city"), max_length=20, choices=City.choices, db_comment="douala or yaounde.")
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=Status.choices,
        default=Status.PENDING,
        db_comment="pending (onboarding), active (selling) or suspended (cannot sell).",
    )
    commission_bps = models.PositiveIntegerField(
        _("commission (basis points)"), default=1000, db_comment="Marketplace commission, 1/100 of a percent."
    )

    objects, all_objects, deleted_objects = tracked_managers(VendorQuerySet)  # type: ignore[misc]

    class Meta:
        db_table_comment = "Shops selling on the marketplace."
        verbose_name = _("vendor")
        verbose_name_plural = _("vendors")
        ordering = ["name"]
        constraints = [
            live_unique("slug", name="catalog_vendor_slug_live_uniq"),
            phone_check("phone", "catalog_vendor_phone_e164"),
            models.CheckConstraint(
                condition=Q(commission_bps__gte=0, commission_bps__lte=10000),
                name="catalog_vendor_commission_range",
            ),
            choices_check("status", VendorStatus.choices, "catalog_vendor_status_valid"),
            choices_check("city", City.choices, "catalog_vendor_city_valid"),
        ]
        indexes = [deleted_rows_index("catalog_vendor_deleted")]

    def __str__(self) -> str:
        return self.name


class MemberRole(models.TextChoices):
    OWNER = "owner", _("owner")
    MANAGER = "manager", _("manager")
    STAFF = "staff", _("staff")


class VendorMember(TrackedModel):
    Role = MemberRole

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="vendor_memberships",
        db_comment="User.",
    )
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.CASCADE,
        related_name="members",
        db_comment="Vendor.",
    )
    role = models.CharField(
        _("role"),
        max_length=16,
        choices=Role.choices,
        default=Role.STAFF,
        db_comment="owner, manager or staff.",
    )

    class Meta:
        db_table_comment = "Which users work for which vendor, and in what role."
        verbose_name = _("vendor member")
        verbose_name_plural = _("vendor members")
        constraints = [
            live_unique("user", "vendor", name="catalog_vendormember_live_uniq"),
            choices_check("role", MemberRole.choices, "catalog_vendormember_role_valid"),
        ]
        indexes = [deleted_rows_index("catalog_vendormember_deleted")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.vendor} ({self.get_role_display()})"


# --- Categories ---------------------------------------------------------------------------------


class Category(TrackedModel):
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent category"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        db_comment="Parent category; NULL for a root.",
    )
    slug = models.SlugField(_("slug"), max_length=100, db_comment="URL name, unique among live categories.")
    name_fr = models.CharField(_("name (French)"), max_length=120, db_comment="Name in French.")
    name_en = models.CharField(_("name (English)"), max_length=120, db_comment="Name in English.")
    position = models.PositiveIntegerField(
        _("position"), default=0, db_comment="Display order among siblings."
    )

    class Meta:
        db_table_comment = "Product categories (a tree), named in French and English."
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["position", "name_fr"]
        constraints = [
            live_unique("slug", name="catalog_category_slug_live_uniq"),
            models.CheckConstraint(condition=~Q(parent=F("id")), name="catalog_category_not_own_parent"),
        ]
        indexes = [deleted_rows_index("catalog_category_deleted")]

    def __str__(self) -> str:
        return self.name_fr


# --- Products -----------------------------------------------------------------------------------


class ProductUnit(models.TextChoices):
    PIECE = "piece", _("piece")
    KG = "kg", _("kilogram")
    G = "g", _("gram")
    L = "l", _("litre")
    ML = "ml", _("millilitre")
    PACK = "pack", _("pack")
    BUNCH = "bunch", _("bunch")


# Full-text search conditions (ProductQuerySet.search says which and why), on `{query}`: the
# tsquery, e.g. SEARCH_QUERY (one parameter, the text).
SEARCH_QUERY = "public.okada_search_query(%s)"
SEARCH_SQL = "catalog_product.search_vector @@ {query}"
SEARCH_ONE_VENDOR_SQL = "ts_match_vq(catalog_product.search_vector, {query})"
# Whether a search looks for a word, on `{query}` as above. querytree() is the part of a tsquery
# an index can look up: '' when the text has no word ("!!!", '""'), 'T' when a product may match
# without having any word of it (only a NOT, which search_text never hands over). Written before
# the match, it is folded to false when the statement is planned (or run once, an InitPlan, in
# a prepared one): such a search finds nothing and reads no product.
SEARCH_LOOKS_FOR_SQL = "querytree({query}) NOT IN ('', 'T')"


# A word's leading "-" is not a NOT in our searches (search_text). websearch_to_tsquery reads "-"
# as NOT after the start, a space, an operator ("(", "|" ...) or a quote, in the text and in the
# text unaccented (okada_search_query reads both), where these dashes are a "-" (en and em
# dashes, the minus sign, a soft hyphen, "->" ...) and these word
# characters end in punctuation (U+02BA is '"', U+2474 is "(1)"). A dash is kept only after a
# letter or digit, inside a word ("Jean-Pierre"), where websearch reads none; U+FFE9, "<-", never.
_DASHES = "\\-\u00ad\u00b1\u02d7\u2010-\u2015\u2212\ufe31\ufe32\ufe58\ufe63\uff0d\uffeb"
_UNACCENTED_TO_PUNCTUATION = "\u02b9-\u02bd\u02c6\u02c8\u02cb\u02d0\u215f\u2474-\u249b\U0001f100-\U0001f10a"
NOT_WORD = re.compile(f"\\uffe9|(?<![^\\W_{_UNACCENTED_TO_PUNCTUATION}])[{_DASHES}]+")
# The quotes of a phrase as okada_search_query reads them: '"' and what unaccent makes '"' (“ ” ″
# 〝 ...). Dropped where a search reads a phrase's words as words (search_text's `phrases`).
QUOTE = re.compile('["\u02ba\u201c\u201d\u201f\u2033\u301d\u301e\uff02]')


class ProductQuerySet(TrackedQuerySet):
    def for_vendor(self, vendor: Vendor | uuid.UUID) -> ProductQuerySet:
        return self.filter(vendor=vendor)

    def orderable(self) -> ProductQuerySet:
        return self.filter(
            is_active=True, vendor__status=Vendor.Status.ACTIVE, vendor__deleted_at__isnull=True
        )

    def search(self, text: str, *, one_vendor: bool = False) -> ProductQuerySet:
        """Full-text search, French and English stemming, accents ignored ("creme" finds "Crème").

        `one_vendor`: the rows are already narrowed to one vendor's (a shop: a few thousand at
        most). Each of them is then tested instead of reading the GIN index: for a common word
        the index hands over tens of thousands of rows of the whole marketplace (8 ms on the
        large seed, where testing the vendor's 1000 rows takes 1 ms), and the planner
        underestimates that. `ts_match_vq()` is what the `@@` operator calls; written as a
        function call, the planner does not match it with the index.

        Only one vendor's search reads a quoted phrase as a phrase; the marketplace's reads its
        words as words, each anywhere (search_text's `phrases`). The index finds the products with
        every word of a phrase, not those with the words in its order: each is read and tested,
        161,000 of the large seed's for `"cameroun origine"` (0.2 to 0.6 s) to find none.
        """
        sql = (SEARCH_ONE_VENDOR_SQL if one_vendor else SEARCH_SQL).format(query=SEARCH_QUERY)
        # Nothing to look for (catalog.selectors.search_looks_for_words): no product, none read.
        sql = f"{SEARCH_LOOKS_FOR_SQL.format(query=SEARCH_QUERY)} AND {sql}"
        text = search_text(text, phrases=one_vendor)
        match = RawSQL(sql, (text, text), output_field=BooleanField())  # noqa: S611
        return self.filter(match)


def search_text(text: str, *, phrases: bool = True) -> str:
    """A search as SEARCH_QUERY reads it (the products', the orders' by name): NFC, as SKUs are
    stored (catalog.skus), since their `simple` part of the index is matched as typed; and every
    word is one to look for, a leading "-" dropped (NOT_WORD). websearch's NOT gave wrong results:
    okada_search_query ORs the French, English and unstemmed (simple) readings of the text, and
    the vector holds no unstemmed word but a SKU's, so `-fromage` (`!'fromag'` or ... or
    `!'fromage'`) matched every product, those with "fromage" too, and `riz -brisé` every rice;
    and a NOT of a word the other words imply (`riz -riz`) tested every product of the
    marketplace, finding none (1 s on the large seed).

    `phrases=False`: quotes are dropped (QUOTE), a quoted phrase's words looked for as the other
    words, each anywhere: the text is read as if typed without its quotes."""
    text = NOT_WORD.sub(" ", unicodedata.normalize("NFC", text))
    return text if phrases else QUOTE.sub(" ", text)


# The orderings of the storefront's product list (catalog.apis.PRODUCT_ORDERINGS) and the
# suffix of each one's index; the rows they hold, those ProductQuerySet.orderable() may return.
STOREFRONT_SORT_INDEXES = (
    ("updated_at", "upd"),
    ("created_at", "created"),
    ("name", "name"),
    ("sku", "sku"),
    ("price_xaf", "price"),
)
ORDERABLE_ROWS = Q(deleted_at__isnull=True, is_active=True)


class Product(TrackedModel):
    # Indexed with the key (catalog_product_vendor_newest), not on its own.
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.PROTECT,
        related_name="products",
        db_index=False,
        db_comment="Seller.",
    )
    sku = models.CharField(
        _("SKU"),
        max_length=64,
        validators=[refuse_unseen_characters],
        db_comment="Vendor's stock-keeping unit; unique per vendor.",
    )
    name = models.CharField(_("name"), max_length=200, db_comment="Product name (French or English).")
    description = models.TextField(_("description"), blank=True, default="", db_comment="Long description.")
    category = models.ForeignKey(
        Category,
        verbose_name=_("category"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="products",
        db_comment="Category; NULL when not yet classified.",
    )
    price_xaf = money_field(_("price (XAF)"), "Selling price")
    compare_at_price_xaf = money_field(
        _("compare-at price (XAF)"), "Former price shown struck through", null=True, blank=True
    )
    unit = models.CharField(
        _("unit"),
        max_length=8,
        choices=ProductUnit.choices,
        default=ProductUnit.PIECE,
        db_comment="Selling unit.",
    )
    is_active = models.BooleanField(
        _("active"), default=True, db_comment="False hides it from the storefront."
    )
    attributes = models.JSONField(
        _("attributes"), default=dict, blank=True, db_comment="Free-form attributes."
    )
    version = models.PositiveIntegerField(
        _("version"),
        default=1,
        editable=False,
        db_comment="Incremented on every change: base version for offline edits.",
    )
    search_vector = models.GeneratedField(
        expression=Func(
            F("name"),
            F("description"),
            F("sku"),
            function="okada_product_search_vector",
            output_field=SearchVectorField(),
        ),
        output_field=SearchVectorField(),
        db_persist=True,
        db_comment="Full-text vector over name, description and SKU (French + English, unaccented).",
    )

    objects, all_objects, deleted_objects = tracked_managers(ProductQuerySet)  # type: ignore[misc]

    class Meta:
        db_table_comment = "What vendors sell, with price in XAF and a full-text search vector."
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["name"]
        constraints = [
            live_unique("vendor", "sku", name="catalog_product_vendor_sku_live_uniq"),
            models.CheckConstraint(condition=Q(price_xaf__gt=0), name="catalog_product_price_positive"),
            models.CheckConstraint(
                condition=Q(compare_at_price_xaf__isnull=True) | Q(compare_at_price_xaf__gt=F("price_xaf")),
                name="catalog_product_compare_at_above_price",
            ),
            models.CheckConstraint(condition=~Q(sku=""), name="catalog_product_sku_not_empty"),
            # One SKU, one spelling: "é" is never also "e" + U+0301 (catalog.skus).
            models.CheckConstraint(condition=NfcNormalized("sku"), name="catalog_product_sku_nfc"),
            choices_check("unit", ProductUnit.choices, "catalog_product_unit_valid"),
        ]
        indexes = [
            deleted_rows_index("catalog_product_deleted"),
            GinIndex(fields=["search_vector"], name="catalog_product_search_gin"),
            models.Index(fields=["vendor", "updated_at"], name="catalog_product_vendor_upd"),
            models.Index(fields=["vendor", "is_active"], name="catalog_product_vendor_active"),
            # The storefront's list of the whole marketplace (no `vendor`) in each ordering: a
            # million rows otherwise sorted per page. Orderable products only (live, active).
            *(
                models.Index(fields=[key, "id"], condition=ORDERABLE_ROWS, name=f"catalog_product_shop_{s}")
                for key, s in STOREFRONT_SORT_INDEXES
            ),
            # One vendor's products newest first (the admin's list of a vendor): on the vendor's
            # index alone, PostgreSQL walks the whole primary key back to an old vendor's rows.
            models.Index(fields=["vendor", "id"], name="catalog_product_vendor_newest"),
            # The admin's stock search: a word anywhere in a SKU (`icontains`), which no b-tree
            # serves (migration 0019).
            GinIndex(OpClass(Upper("sku"), name="gin_trgm_ops"), name="catalog_product_sku_trgm"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


# --- Stock --------------------------------------------------------------------------------------

# `Stock.level` counts available units up to this; OKADA_LOW_STOCK_THRESHOLD must stay below it.
LOW_STOCK_CAP = 20


class Stock(BaseModel):
    product = models.OneToOneField(
        Product,
        verbose_name=_("product"),
        on_delete=models.CASCADE,
        related_name="stock",
        db_comment="Product.",
    )
    # Indexed with the key (catalog_stock_vendor_newest), not on its own.
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.CASCADE,
        related_name="stocks",
        db_index=False,
        db_comment="Product's vendor (denormalised).",
    )
    on_hand = models.IntegerField(_("on hand"), default=0, db_comment="Units physically in the shop.")
    reserved = models.IntegerField(
        _("reserved"), default=0, db_comment="Units promised to open orders (part of on_hand)."
    )
    version = models.PositiveIntegerField(_("version"), default=1, db_comment="Incremented on every change.")
    # Available units capped at LOW_STOCK_CAP: only low rows change it, so the stock updates of
    # order placement stay HOT (an index on on_hand - reserved would make every one of them write
    # all the table's indexes). Indexed where low, for the dashboard (migration 0007).
    level = models.GeneratedField(
        expression=Least(F("on_hand") - F("reserved"), Value(LOW_STOCK_CAP)),
        output_field=models.IntegerField(),
        db_persist=True,
        verbose_name=_("available (capped)"),
        db_comment="least(on_hand - reserved, 20): available units, capped; indexed below the cap.",
    )

    class Meta:
        db_table_comment = "Current stock per product; the ledger (catalog_stockmovement) sums to it."
        verbose_name = _("stock")
        verbose_name_plural = pgettext_lazy("plural", "stock")  # French: "stocks"
        permissions = [
            ("adjust_stock", _("Can adjust stock (add or remove units, with a reason)")),
            ("count_stock", _("Can record a stock count")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="catalog_stock_on_hand_nonneg"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="catalog_stock_reserved_nonneg"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="catalog_stock_reserved_le_on_hand"
            ),
        ]
        indexes = [
            models.Index(fields=["level"], name="catalog_stock_low", condition=Q(level__lt=LOW_STOCK_CAP)),
            # One vendor's stock newest first (the admin's list of a vendor), in place of the
            # vendor's own index: no index more for order placement, whose updates stay HOT
            # (neither column changes).
            models.Index(fields=["vendor", "id"], name="catalog_stock_vendor_newest"),
        ]

    def __str__(self) -> str:
        return gettext("%(product)s: %(on_hand)d on hand, %(reserved)d reserved") % {
            "product": self.product.name,
            "on_hand": self.on_hand,
            "reserved": self.reserved,
        }

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class MovementKind(models.TextChoices):
    RESTOCK = "restock", _("restock")
    RESERVE = "reserve", _("reserve")
    RELEASE = "release", _("release")
    SALE = "sale", _("sale")
    ADJUSTMENT = "adjustment", _("adjustment")
    COUNT = "count", _("count")
    RETURN = "return", _("return")


# The kinds no order writes: staff, vendors and devices do (stock_adjust, stock_count, a product
# created with stock). Placement writes `reserve`, an order's moves `release` and `sale`: an index
# of these kinds alone takes no entry from the order path. Its predicate is written with `any_of`
# (one array constant: cheap to prepare for each insert, and read back by PostgreSQL as written,
# which `IN` is not: seed_demo rebuilds indexes from their definitions and compares).
MANUAL_KINDS = ("restock", "adjustment", "count", "return")
ORDER_KINDS = ("reserve", "release", "sale")


class StockMovement(models.Model):
    """Append-only ledger, range-partitioned by month on created_at (migration 0001).

    Effect of `delta` by kind: restock/adjustment/count/return change on_hand; reserve/release
    change reserved; sale lowers both on_hand and reserved (a reservation becomes a sale).
    """

    Kind = MovementKind

    ON_HAND_KINDS = ("restock", "adjustment", "count", "return", "sale")
    RESERVED_KINDS = ("reserve", "release", "sale")

    # Django sees `id` as the key; the table's real primary key is (id, created_at), which
    # PostgreSQL requires of a partitioned table.
    id = uuid_key("Movement id (UUID v7, time-ordered).")
    created_at = models.DateTimeField(
        _("created at"), default=timezone.now, db_comment="When it happened (UTC); partition key."
    )
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        db_comment="Product (indexed with created_at).",
    )
    # No index of its own: the ledger is read by product (and time); an index by vendor would
    # cost each line of every order placed for the admin's vendor filter alone, which scans
    # the newest movements instead.
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        db_comment="Vendor.",
    )
    delta = models.IntegerField(_("change"), db_comment="Signed change in units (see kind).")
    kind = models.CharField(
        _("kind"), max_length=16, choices=Kind.choices, db_comment="What moved the stock."
    )
    reason = models.CharField(
        _("reason"), max_length=255, blank=True, default="", db_comment="Why (free text)."
    )
    reference = models.CharField(
        _("reference"),
        max_length=100,
        blank=True,
        default="",
        db_comment="Order number, delivery note, count sheet...",
    )
    actor = models.CharField(
        _("by"), max_length=150, blank=True, default="", db_comment="Who: user, device or system."
    )

    class Meta:
        db_table_comment = "Stock ledger, append-only, partitioned by month: it sums to catalog_stock."
        verbose_name = _("stock movement")
        verbose_name_plural = _("stock movements")
        indexes = [
            models.Index(fields=["product", "created_at"], name="catalog_stockmove_prod_ts"),
            # The admin's list filtered by one of these kinds, newest first: without it the list
            # walked the primary key back through the orders' movements (most of the ledger).
            models.Index(
                fields=["kind", "id"],
                name="catalog_stockmove_manual_kind",
                condition=Q(any_of("kind", MANUAL_KINDS)),
            ),
            # The admin's search: the start of a delivery note's or count sheet's reference, any
            # case. An order's movements are found by its products instead (catalog.selectors).
            models.Index(
                OpClass(Upper("reference"), name="text_pattern_ops"),
                name="catalog_stockmove_manual_ref",
                # "Not an order's" rather than "a manual kind": a search then never matches the
                # kind filter's index (whose predicate it would imply), which holds every
                # restock of a product's creation, referenced or not.
                condition=~Q(any_of("kind", ORDER_KINDS)) & ~Q(reference=""),
            ),
        ]
        constraints = [
            choices_check("kind", MovementKind.choices, "catalog_stockmovement_kind_valid"),
            # The sign each kind may carry (a count may be zero: it confirms the stock).
            models.CheckConstraint(
                condition=Q(any_of("kind", ["restock", "reserve", "return"]), delta__gt=0)
                | Q(any_of("kind", ["release", "sale"]), delta__lt=0)
                | (Q(kind="adjustment") & ~Q(delta=0))
                | Q(kind="count"),
                name="catalog_stockmovement_delta_sign",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.delta:+d} {self.product.name}"
