"""Customers, delivery zones, orders with their items, timeline events and payments."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import BooleanField, F, Func, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from catalog.models import SEARCH_QUERY, City, Product, Vendor, search_text
from okada.core.fields import PhoneField, any_of, choices_check, money_field, phone_check
from okada.core.models import (
    BaseModel,
    TrackedModel,
    TrackedQuerySet,
    deleted_rows_index,
    live_unique,
    tracked_managers,
    uuid_key,
)


def name_search_vector(field: str) -> Func:
    """The full-text vector of a person's name, made as a product name's is (French and English
    stemming, accents ignored: okada_name_search_vector() in orders migration 0035), to match
    catalog.models.SEARCH_QUERY."""
    return Func(F(field), function="public.okada_name_search_vector", output_field=SearchVectorField())


class Zone(TrackedModel):
    city = models.CharField(_("city"), max_length=20, choices=City.choices, db_comment="douala or yaounde.")
    name = models.CharField(
        _("name"), max_length=120, db_comment="Quartier or area name (e.g. Akwa, Bastos)."
    )
    delivery_fee_xaf = money_field(_("delivery fee (XAF)"), "Delivery fee charged for this zone")

    class Meta:
        db_table_comment = "Delivery zones (quartiers) with their delivery fee."
        verbose_name = _("zone")
        verbose_name_plural = _("zones")
        ordering = ["city", "name"]
        constraints = [
            live_unique("city", "name", name="orders_zone_city_name_live_uniq"),
            models.CheckConstraint(condition=Q(delivery_fee_xaf__gte=0), name="orders_zone_fee_nonneg"),
            choices_check("city", City.choices, "orders_zone_city_valid"),
        ]
        indexes = [deleted_rows_index("orders_zone_deleted")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_city_display()})"


class Customer(TrackedModel):
    name = models.CharField(_("name"), max_length=200, db_comment="Customer's name.")
    phone = PhoneField(_("phone"), db_comment="Mobile number, E.164 (+237...); unique among live customers.")
    default_address = models.TextField(
        _("default address"), blank=True, default="", db_comment="Usual address."
    )
    zone = models.ForeignKey(
        Zone,
        verbose_name=_("zone"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="customers",
        db_comment="Usual zone.",
    )

    class Meta:
        db_table_comment = "People who order, identified by their mobile number."
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["name"]
        constraints = [
            live_unique("phone", name="orders_customer_phone_live_uniq"),
            phone_check("phone", "orders_customer_phone_e164"),
        ]
        indexes = [
            deleted_rows_index("orders_customer_deleted"),
            # `?q=` a name: the customers whose record name matches (customer_name_matches).
            GinIndex(name_search_vector("name"), name="orders_customer_name_search"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.phone})"


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    ACCEPTED = "accepted", _("accepted")
    PREPARING = "preparing", _("preparing")
    READY = "ready", _("ready")
    OUT_FOR_DELIVERY = "out_for_delivery", _("out for delivery")
    DELIVERED = "delivered", _("delivered")
    CANCELLED = "cancelled", _("cancelled")
    EXPIRED = "expired", _("expired")
    REFUNDED = "refunded", _("refunded")


class Channel(models.TextChoices):
    STOREFRONT = "storefront", _("storefront")
    PHONE = "phone", _("phone / WhatsApp")
    ADMIN = "admin", _("admin")


class PaymentMethod(models.TextChoices):
    MTN_MOMO = "mtn_momo", "MTN Mobile Money"
    ORANGE_MONEY = "orange_money", "Orange Money"
    CASH = "cash", _("cash on delivery")


MOBILE_MONEY = (PaymentMethod.MTN_MOMO, PaymentMethod.ORANGE_MONEY)


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid", _("unpaid")
    PAID = "paid", _("paid")
    REFUNDED = "refunded", _("refunded")


OPEN_STATUSES = ("pending", "accepted", "preparing", "ready", "out_for_delivery")

# customer_name_matches(): the customers whose record name matches (orders_customer_name_search)
# and those of the aliases that match (orders_alias_name_search), an array made once (an
# InitPlan) which the (customer, -placed_at) index reads per customer; each order then checked on
# the name it shows: its own, else ('') the record's, so only a customer whose record name
# matches (an alias's customer's record may say anything). The '' test first: an order without
# a name makes no vector; and IN, not = ANY(ARRAY(...)): a hashed subplan, where ANY compares
# each order with every customer named (the storefront's "Jean", 1,400 customers: twice slower
# on the large seed). On `{query}`: the tsquery,
# SEARCH_QUERY (one parameter, the text), as catalog.models' SEARCH_SQL; `{vendor}`: the alias
# condition on the caller's vendor, or nothing.
_RECORD_NAMED = "SELECT c.id FROM orders_customer c WHERE public.okada_name_search_vector(c.name) @@ {query}"
ORDER_NAME_SQL = (
    "orders_order.customer_id = ANY(ARRAY({record_named} "
    "UNION SELECT a.customer_id FROM orders_customer_alias a "
    "WHERE public.okada_name_search_vector(a.name) @@ {query}{vendor})) "
    "AND ((orders_order.customer_name <> '' "
    "AND public.okada_name_search_vector(orders_order.customer_name) @@ {query}) "
    "OR (orders_order.customer_name = '' AND orders_order.customer_id IN ({record_named})))"
).replace("{record_named}", _RECORD_NAMED)


# A word of a name as staff type it (letters or digits): what name_prefix_query() puts between
# its & operators, never tsquery syntax (`:`, `|`, `!`, parentheses) from the text itself.
NAME_WORD = re.compile(r"[^\W_]+")
# The shortest last word read as a name's beginning ("Kam" for Kamga). Shorter, it is a word
# (nothing, for one letter): "k:*" would match a large share of every name, all gathered from
# the indexes before a page can be shown.
PREFIX_MIN_LETTERS = 2
# A name's words, the last one also as a beginning: to_tsquery (not websearch's) for `:*`, over
# unaccented text in each stemming of okada_name_search_vector() (the stem of "Kamg" is a
# prefix of the stem of "Kamga"'s). One parameter, the text name_prefix_query() makes.
PREFIX_QUERY = (
    "(to_tsquery('pg_catalog.french', public.okada_unaccent(%s)) "
    "|| to_tsquery('pg_catalog.english', public.okada_unaccent(%s)))"
)


def name_prefix_query(text: str) -> str:
    """`text` as to_tsquery's input: every word must match, the last one (PREFIX_MIN_LETTERS or
    more) also as the beginning of a word ("aicha kam" is `aicha & kam:*`)."""
    words = NAME_WORD.findall(text)
    if words and len(words[-1]) >= PREFIX_MIN_LETTERS:
        words[-1] += ":*"
    return " & ".join(words)


def customer_name_matches(text: str, *, prefix: bool = False, vendor_id: uuid.UUID | None = None) -> RawSQL:
    """Orders whose customer's name, as the order shows it (Order.shown_customer_name), matches
    `text` as a product's name matches a product search: French and English stemming, accents
    ignored, every word (catalog.models.SEARCH_QUERY, `websearch_to_tsquery`); as a condition.
    `prefix` (the admin's search, for staff who type part of a name): the last word may also be
    the beginning of one (name_prefix_query), no websearch syntax (`or`, quotes). `vendor_id`:
    the caller lists this vendor's orders only (its aliases alone are read).

    Only the shown name: the name given with the order, else (orders placed before it was kept:
    '') the customer record's. A customer record is shared by every vendor, and its name may
    differ from the one this vendor's orders give: matching it would tell the vendor that name.
    So the candidates are the customers whose record name matches and those with an alias that
    matches (CustomerAlias: each name a vendor's orders show that is not the record's), and each
    candidate's order is kept only if the name it shows matches: an order found whatever the
    record's name, never because of it. All read through indexes, never by scanning a vendor's
    orders, and no index on orders_order but (customer, -placed_at): a GIN there cost placement
    about a tenth of its throughput (migration 0036).
    """
    # As the products' search reads it (catalog.models.search_text): NFC, and a word's leading
    # "-" is not websearch's NOT: a name is found by the words it has, and "-jean" (every order
    # but Jean's) read every customer's name, 0.8 s on the large seed.
    text = search_text(text)
    # The tsquery appears four times (ORDER_NAME_SQL): the record names, the aliases (then the
    # vendor, if any), the order's own name, the record names again.
    # Each query's parameters: PREFIX_QUERY takes its text twice, SEARCH_QUERY once.
    each: tuple[str, ...] = (name_prefix_query(text),) * 2 if prefix else (text,)
    query = PREFIX_QUERY if prefix else SEARCH_QUERY
    vendor = "" if vendor_id is None else " AND a.vendor_id = %s"
    sql = ORDER_NAME_SQL.format(query=query, vendor=vendor)
    params = (*each, *each, *(() if vendor_id is None else (vendor_id,)), *each, *each)
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611


class OrderQuerySet(TrackedQuerySet):
    def for_vendor(self, vendor: Vendor | uuid.UUID) -> OrderQuerySet:
        return self.filter(vendor=vendor)

    def open(self) -> OrderQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def with_items(self) -> OrderQuerySet:
        return self.prefetch_related("items")

    def by_number(self, *, descending: bool = False) -> OrderQuerySet:
        """In order-number order. Numbers grow past 7 digits uncut (OK-9999999, OK-10000000), so a
        text sort alone would be wrong: the shorter number comes first, then the text."""
        if descending:
            return self.order_by(Length("number").desc(), F("number").desc())
        return self.order_by(Length("number"), "number")

    def unpaid_mobile_money_past(self, when) -> OrderQuerySet:
        return self.filter(
            status=OrderStatus.PENDING,
            payment_method__in=MOBILE_MONEY,
            payment_status=PaymentStatus.UNPAID,
            expires_at__lt=when,
        )


class Order(TrackedModel):
    # OK- and the sequence's value, zero-padded to at least 7 digits and never cut: made by
    # okada_order_number() in SQL (orders migration 0015). 22 characters hold any bigint.
    number = models.CharField(
        _("number"),
        max_length=22,
        editable=False,
        db_comment=(
            "Human order number, OK- and the sequence, at least 7 digits (OK-0000123); unique, "
            "deleted orders included (never reused)."
        ),
    )
    # No single-column indexes on vendor and customer: the composite indexes in Meta lead with
    # them and serve the same lookups, and every index costs each order placed.
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_comment="Seller.",
    )
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_comment="Buyer.",
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=OrderStatus.choices,
        default=OrderStatus.PENDING,
        db_comment="Lifecycle status (see orders.services.TRANSITIONS).",
    )
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, db_comment="storefront, phone or admin."
    )
    payment_method = models.CharField(
        _("payment method"),
        max_length=16,
        choices=PaymentMethod.choices,
        db_comment="mtn_momo, orange_money, cash.",
    )
    payment_status = models.CharField(
        _("payment status"),
        max_length=16,
        choices=PaymentStatus.choices,
        default=PaymentStatus.UNPAID,
        db_comment="unpaid, paid or refunded.",
    )
    subtotal_xaf = money_field(_("subtotal (XAF)"), "Sum of line totals")
    delivery_fee_xaf = money_field(_("delivery fee (XAF)"), "Delivery fee")
    total_xaf = money_field(_("total (XAF)"), "subtotal + delivery fee")
    address = models.TextField(_("address"), db_comment="Delivery address as given.")
    # No index of its own: the admin's zone filter walks orders by placed_at (fifty zones,
    # so matches come fast) and a zone is deleted rarely; each index costs every order placed.
    zone = models.ForeignKey(
        Zone,
        verbose_name=_("zone"),
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_comment="Delivery zone.",
    )
    placed_at = models.DateTimeField(
        _("placed at"), default=timezone.now, db_comment="When it was placed (UTC)."
    )
    expires_at = models.DateTimeField(
        _("expires at"),
        null=True,
        blank=True,
        db_comment="Unpaid mobile-money orders expire at this time; NULL otherwise.",
    )
    note = models.TextField(_("note"), blank=True, default="", db_comment="Customer's note.")
    # A snapshot, as the items' sku, name and price and the address are: the name given with this
    # order, never the customer record's. The record of a phone number is shared by every vendor,
    # so showing its name to a vendor placing an order for that number would tell it the name
    # the marketplace holds (orders migration 0029). db_default: PostgreSQL adds the column
    # without rewriting the table, and orders placed before it read '' (see shown_customer_name).
    customer_name = models.CharField(
        _("customer name"),
        max_length=200,  # Customer.name's
        blank=True,
        default="",
        db_default="",
        db_comment=(
            "The customer's name as given for this order (a snapshot); '' for orders placed before "
            "it was recorded, which show the customer's name."
        ),
    )

    objects, all_objects, deleted_objects = tracked_managers(OrderQuerySet)  # type: ignore[misc]

    # Made by the sequence, never reused: unique over deleted rows too (DESIGN section 3).
    unique_forever: ClassVar[tuple[str, ...]] = ("orders_order_number_uniq",)

    class Meta:
        db_table_comment = "Customer orders to one vendor; totals are CHECKed against their parts."
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-placed_at"]
        permissions = [
            ("transition_order", _("Can move orders along their lifecycle and cancel them")),
            ("refund_order", _("Can refund orders and follow up refunds owed")),
            ("add_order_note", _("Can add notes to orders")),
            ("export_orders", _("Can export orders to CSV")),
        ]
        constraints = [
            # Unique forever, deleted orders included (not live_unique): a number is never reused,
            # so restoring a deleted order can never collide (migration 0027; named in
            # Order.unique_forever for the okada.E001 check).
            models.UniqueConstraint(fields=["number"], name="orders_order_number_uniq"),
            models.CheckConstraint(condition=Q(subtotal_xaf__gte=0), name="orders_order_subtotal_nonneg"),
            models.CheckConstraint(condition=Q(delivery_fee_xaf__gte=0), name="orders_order_fee_nonneg"),
            models.CheckConstraint(
                condition=Q(total_xaf=F("subtotal_xaf") + F("delivery_fee_xaf")),
                name="orders_order_total_sum",
            ),
            choices_check("status", OrderStatus.choices, "orders_order_status_valid"),
            choices_check("channel", Channel.choices, "orders_order_channel_valid"),
            choices_check("payment_method", PaymentMethod.choices, "orders_order_payment_method_valid"),
            choices_check("payment_status", PaymentStatus.choices, "orders_order_payment_status_valid"),
        ]
        indexes = [
            deleted_rows_index("orders_order_deleted"),
            models.Index(fields=["vendor", "status", "-placed_at"], name="orders_order_vendor_status"),
            models.Index(fields=["vendor", "updated_at"], name="orders_order_vendor_upd"),
            # The storefront's list by last change (`?ordering=updated_at`, how it follows its
            # orders): each page otherwise sorted its 800,000 orders (migration 0031).
            models.Index(
                fields=["updated_at", "id"],
                name="orders_order_storefront_upd",
                condition=Q(channel="storefront", deleted_at__isnull=True),
            ),
            # Also `?q=` a name: the orders of the customers it names (customer_name_matches).
            models.Index(fields=["customer", "-placed_at"], name="orders_order_customer"),
            models.Index(
                fields=["expires_at"],
                name="orders_order_expiring",
                condition=Q(status="pending", payment_status="unpaid", expires_at__isnull=False),
            ),
            # The admin's lists, date filters, today's figures and the 14-day chart (migration 0012).
            models.Index(fields=["placed_at"], name="orders_order_placed"),
            # Orders by number (the admin's number column, both ways): length, then text, as
            # OrderQuerySet.by_number() sorts; a text sort alone is wrong past OK-9999999.
            models.Index(Length("number"), F("number"), name="orders_order_number_sort"),
            # Open orders by status and age (dashboard, queue): small, as open orders are few.
            models.Index(
                fields=["status", "placed_at"],
                name="orders_order_open",
                condition=Q(any_of("status", OPEN_STATUSES)),
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args: Any, **kwargs: Any) -> None:
        last = None if self._state.adding else self.updated_at
        super().save(*args, **kwargs)
        if last is not None and self.updated_at < last:
            # The clock is behind the one that stamped the row: PostgreSQL stored one microsecond
            # after it instead (migration 0033's trigger), and the instance says so too (the
            # services return it, the API answers with it). Exact for a row read under its lock,
            # as the services read it.
            self.updated_at = last + timedelta(microseconds=1)

    @property
    def shown_customer_name(self) -> str:
        """The customer's name as this order shows it: the name given with it. Orders placed
        before it was recorded (orders migration 0029) hold '' and show the customer record's
        name, as they did then: no backfill, which would rewrite every order under lock and send
        each one to every device again. sync.feed's orders entity does the same in SQL."""
        return self.customer_name or self.customer.name


class CustomerAlias(models.Model):
    """A name a vendor's orders of a customer show that is not the customer record's name: the
    orders' name search (customer_name_matches) finds them through it, where an index on every
    order's name cost each placement (orders migration 0036). Written by the services only, when
    a placement gives another name than the record's, as read under the record's lock (in
    okada_order_place() since v10, orders migration 0038: the storefront's order_place_for_phone
    and staff's order_place alike), and when staff rename a customer (customer_update: the
    orders that showed the old one). A row
    left after the record takes its name again is harmless: each order is checked on its own
    name. Derived data: not history-tracked, not synced, gone with its customer or vendor."""

    id = models.BigAutoField(primary_key=True, db_comment="Row id.")
    vendor = models.ForeignKey(
        Vendor,
        on_delete=models.CASCADE,
        verbose_name=_("vendor"),
        related_name="+",
        db_index=False,  # the unique (vendor, customer, name) index leads with it
        db_comment="Vendor whose orders show this name.",
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        verbose_name=_("customer"),
        related_name="+",
        db_comment="Customer the orders are of.",
    )
    name = models.CharField(
        _("name"),
        max_length=200,  # Order.customer_name's
        db_comment="The name the orders show (their customer_name), not the customer record's.",
    )

    class Meta:
        db_table = "orders_customer_alias"
        # Named on the superusers' "delete for good" page of a customer or a vendor (its rows go
        # with them): in the admin's language, as every model.
        verbose_name = _("other name of a customer")
        verbose_name_plural = _("other names of customers")
        db_table_comment = (
            "Names a vendor's orders of a customer show that differ from the customer's name: "
            "the orders' name search finds them through it."
        )
        constraints = [
            models.UniqueConstraint(fields=["vendor", "customer", "name"], name="orders_customer_alias_uniq"),
        ]
        indexes = [
            # A name within a vendor's aliases (btree_gin), or within all of them (the storefront).
            GinIndex(F("vendor"), name_search_vector("name"), name="orders_alias_name_search"),
        ]

    def __str__(self) -> str:
        return self.name


class OrderItem(BaseModel):
    order = models.ForeignKey(
        Order,
        verbose_name=_("order"),
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,  # the unique (order, product) index serves it
        db_comment="Order.",
    )
    # DO_NOTHING, not PROTECT: soft-deleting a product that was ordered is fine (the line keeps
    # its snapshot), while the database's FK still refuses a hard delete of an ordered product.
    # No index: nothing reads items by product but that FK check, on a hard delete (superusers,
    # rarely), and an index would cost each line of every order placed.
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.DO_NOTHING,
        related_name="order_items",
        db_index=False,
        db_comment="Product ordered.",
    )
    sku = models.CharField(_("SKU"), max_length=64, db_comment="SKU at order time (snapshot).")
    name = models.CharField(_("name"), max_length=200, db_comment="Product name at order time (snapshot).")
    unit_price_xaf = money_field(_("unit price (XAF)"), "Unit price at order time (snapshot)")
    # Not PositiveIntegerField: its own CHECK (>= 0) would repeat orders_item_quantity_positive.
    quantity = models.IntegerField(_("quantity"), db_comment="Units ordered (> 0).")
    line_total_xaf = money_field(_("line total (XAF)"), "unit price x quantity")

    class Meta:
        db_table_comment = "Lines of an order, with the product's sku, name and price snapshotted."
        verbose_name = _("order item")
        verbose_name_plural = _("order items")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orders_item_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price_xaf__gt=0), name="orders_item_price_positive"),
            models.CheckConstraint(
                condition=Q(line_total_xaf=F("unit_price_xaf") * F("quantity")), name="orders_item_line_total"
            ),
            models.UniqueConstraint(fields=["order", "product"], name="orders_item_one_line_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"


class EventKind(models.TextChoices):
    PLACED = "placed", _("placed")
    STATUS = "status", _("status changed")
    PAYMENT = "payment", _("payment")
    NOTE = "note", _("note")


class OrderEvent(models.Model):
    """Append-only order timeline, range-partitioned by month on created_at (migration 0001)."""

    Kind = EventKind

    # Django sees `id` as the key; the table's real primary key is (id, created_at).
    id = uuid_key("Event id (UUID v7, time-ordered).")
    created_at = models.DateTimeField(
        _("created at"), default=timezone.now, db_comment="When (UTC); partition key."
    )
    order = models.ForeignKey(
        Order,
        verbose_name=_("order"),
        on_delete=models.DO_NOTHING,
        related_name="events",
        db_constraint=False,
        db_index=False,
        db_comment="Order (indexed with created_at).",
    )
    kind = models.CharField(
        _("kind"), max_length=16, choices=Kind.choices, db_comment="placed, status, payment or note."
    )
    from_status = models.CharField(
        _("from status"), max_length=20, blank=True, default="", db_comment="Status before."
    )
    to_status = models.CharField(
        _("to status"), max_length=20, blank=True, default="", db_comment="Status after."
    )
    actor = models.CharField(
        _("by"), max_length=150, blank=True, default="", db_comment="Who: role and user or system."
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,  # only the events with a user are indexed (Meta.indexes)
        db_comment="Acting user, when there was one.",
    )
    data = models.JSONField(
        _("details"), default=dict, blank=True, db_comment="Details: note, payment reference..."
    )

    class Meta:
        db_table_comment = "Order timeline, append-only, partitioned by month."
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        indexes = [
            models.Index(fields=["order", "created_at"], name="orders_event_order_ts"),
            # The admin's notes, newest first: staff write them, placement never does (a list
            # filtered on them walked the primary key back through millions of other events).
            models.Index(fields=["id"], name="orders_event_notes", condition=Q(kind=EventKind.NOTE)),
            # Whether a user is named here before their account is deleted (okada.core.admin,
            # _named_in_records), read at a user's delete page: orders placed through the
            # storefront's key, most of them, name no user and enter no entry.
            models.Index(
                fields=["actor_user"], name="orders_event_actor_user", condition=Q(actor_user__isnull=False)
            ),
        ]
        constraints = [choices_check("kind", EventKind.choices, "orders_orderevent_kind_valid")]

    def __str__(self) -> str:
        # In the reader's language: the kind's and the statuses' labels, not their codes.
        def label(status: str) -> str:
            return str(OrderStatus(status).label) if status in OrderStatus.values else status

        kind = self.get_kind_display()
        if not self.to_status:
            return str(kind)
        if not self.from_status:
            return gettext("%(kind)s: %(to)s") % {"kind": kind, "to": label(self.to_status)}
        return gettext("%(kind)s: %(from)s → %(to)s") % {
            "kind": kind,
            "from": label(self.from_status),
            "to": label(self.to_status),
        }


class PaymentResult(models.TextChoices):
    PENDING = "pending", _("pending")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")


class PaymentQuerySet(models.QuerySet["Payment"]):
    def needing_refund(self) -> PaymentQuerySet:
        """Money received that does not fit its order, for Finance (served by a partial index)."""
        return self.filter(needs_refund=True)


class Payment(BaseModel):
    """One payment of an order: a mobile-money request (pending until its callback) or money received.

    `amount_xaf` is what was asked for (a request) or recorded (cash); `received_xaf` is what
    actually arrived, set when the payment succeeds. Every write is named by the caller's
    `idempotency_key` and/or the provider's `provider_reference` (orders.services.payment_record).
    """

    Status = PaymentResult

    order = models.ForeignKey(
        Order,
        verbose_name=_("order"),
        on_delete=models.PROTECT,
        related_name="payments",
        db_comment="Order paid.",
    )
    provider = models.CharField(
        _("provider"),
        max_length=16,
        choices=PaymentMethod.choices,
        db_comment="mtn_momo, orange_money or cash.",
    )
    provider_reference = models.CharField(
        _("provider reference"),
        max_length=100,
        blank=True,
        default="",
        db_default="",
        db_comment="Transaction id at the provider; unique per provider when given.",
    )
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=255,
        blank=True,
        default="",
        db_default="",
        db_comment="The caller's name for this payment write (e.g. Idempotency-Key); unique when given.",
    )
    amount_xaf = money_field(_("amount (XAF)"), "Amount asked for (mobile-money request) or recorded (cash)")
    received_xaf = money_field(
        _("received (XAF)"),
        "Amount that arrived, set when the payment succeeded; NULL otherwise",
        null=True,
        blank=True,
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=Status.choices,
        default=Status.PENDING,
        db_comment="pending, succeeded or failed.",
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True, db_comment="When it succeeded (UTC).")
    callbacks = models.JSONField(
        _("provider callbacks"), default=list, blank=True, db_comment="Provider callbacks received, in order."
    )
    needs_refund = models.BooleanField(
        _("needs refund"),
        default=False,
        db_default=False,
        db_comment=(
            "Money received that does not fit the order (after expiry or cancel, more than the total, "
            "not the amount requested): Finance refunds it."
        ),
    )
    refund_flagged_at = models.DateTimeField(
        _("refund owed since"),
        null=True,
        blank=True,
        db_comment="When the payment was flagged needs_refund (UTC; kept once settled); NULL if never.",
    )
    refund_settled_at = models.DateTimeField(
        _("refund settled at"),
        null=True,
        blank=True,
        db_comment="When Finance recorded the refund owed as settled (UTC); NULL otherwise.",
    )
    refund_settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("refund settled by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # only the settled refunds are indexed (Meta.indexes)
        db_comment="Finance user who recorded the refund as settled.",
    )

    objects = PaymentQuerySet.as_manager()

    class Meta:
        db_table_comment = "Mobile-money and cash payments; callbacks are applied idempotently."
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_reference"],
                condition=~Q(provider_reference=""),
                name="orders_payment_provider_ref_uniq",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="orders_payment_idempotency_key_uniq",
            ),
            models.CheckConstraint(
                condition=~Q(provider_reference="") | ~Q(idempotency_key=""),
                name="orders_payment_named",
            ),
            models.CheckConstraint(condition=Q(amount_xaf__gt=0), name="orders_payment_amount_positive"),
            # Received money is positive, and recorded exactly when the payment succeeded.
            models.CheckConstraint(
                # IS NOT NULL written out: a CHECK that comes out NULL passes.
                condition=Q(status=PaymentResult.SUCCEEDED, received_xaf__isnull=False, received_xaf__gt=0)
                | (~Q(status=PaymentResult.SUCCEEDED) & Q(received_xaf__isnull=True)),
                name="orders_payment_received_iff_succeeded",
            ),
            # A refund owed says since when.
            models.CheckConstraint(
                condition=Q(needs_refund=False) | Q(refund_flagged_at__isnull=False),
                name="orders_payment_owed_since",
            ),
            # A settled refund is no longer owed.
            models.CheckConstraint(
                condition=Q(refund_settled_at__isnull=True) | Q(needs_refund=False),
                name="orders_payment_settled_not_owed",
            ),
            choices_check("provider", PaymentMethod.choices, "orders_payment_provider_valid"),
            choices_check("status", PaymentResult.choices, "orders_payment_status_valid"),
        ]
        indexes = [
            models.Index(
                fields=["-created_at"], name="orders_payment_needs_refund", condition=Q(needs_refund=True)
            ),
            # Finance's list filtered by days: the days asked for, newest first, read in order.
            # Without it PostgreSQL walked the primary key back through every newer payment
            # (the older the month, the longer). Only payment writes pay for it, never a
            # placement without one.
            models.Index(fields=["created_at", "id"], name="orders_payment_created"),
            # Whether a user settled a refund, asked on their delete page (okada.core.admin,
            # _named_in_records): a few rows, where the whole table was read (0.1 s). A payment
            # enters it when its refund is settled, never when it is written.
            models.Index(
                fields=["refund_settled_by"],
                name="orders_payment_settled_by",
                condition=Q(refund_settled_by__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.provider_reference}"


class ExportStatus(models.TextChoices):
    PENDING = "pending", _("waiting")
    RUNNING = "running", _("running")
    DONE = "done", _("ready")
    FAILED = "failed", _("failed")


class OrderExport(BaseModel):
    """A CSV export of a filtered order list, written by a Celery task into the private directory
    and served only to the user who asked for it (orders.exports)."""

    Status = ExportStatus

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.CASCADE,
        related_name="+",
        db_comment="Staff user who asked; the only one who may download the file.",
    )
    query = models.CharField(
        _("filters"),
        max_length=2000,
        blank=True,
        default="",
        db_comment="The order list's query string (filters and search) when it was asked for.",
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=ExportStatus.choices,
        default=ExportStatus.PENDING,
        db_comment="pending, running, done or failed.",
    )
    rows = models.PositiveIntegerField(_("rows"), null=True, blank=True, db_comment="Orders written.")
    file_name = models.CharField(
        _("file"), max_length=200, blank=True, default="", db_comment="File under OKADA_PRIVATE_DIR/exports."
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, db_comment="End (UTC).")
    error = models.TextField(_("error"), blank=True, default="", db_comment="Why it failed.")

    class Meta:
        db_table_comment = "CSV exports of order lists, one file per request, for the user who asked."
        verbose_name = _("order export")
        verbose_name_plural = _("order exports")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["requested_by", "-created_at"], name="orders_export_user")]
        constraints = [choices_check("status", ExportStatus.choices, "orders_orderexport_status_valid")]

    def __str__(self) -> str:
        # Douala time, as the admin shows every time (the column holds UTC).
        return f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M} ({self.get_status_display()})"
