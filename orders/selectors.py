"""Reads of orders that are more than a one-liner: what the admin and the API list and show.

Each returns rows with what their screens show already joined or prefetched: the number of
queries does not grow with the number of rows (tests/orders/test_selectors.py counts them).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count, Min, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Trunc, TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from catalog.models import Vendor
from okada.core.errors import InvalidInput, NotFound
from okada.core.fields import normalize_cm_phone
from okada.core.querysets import count_up_to
from okada.core.texts import Text

from .models import (
    OPEN_STATUSES,
    Customer,
    Order,
    OrderEvent,
    OrderItem,
    OrderQuerySet,
    OrderStatus,
    Payment,
    Zone,
    customer_name_matches,
)

# "Now" for the figures read without one (the dashboard, the queue, the stuck filter): its local
# date is "today". A name of its own so that tests can read the figures at a time of their choosing.
clock = timezone.now

# Age bands of the open-orders figure, from placement: under 15 min, 15-60 min, 1-4 h, 4 h and more.
OPEN_AGE_BANDS = (timedelta(0), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))


def _status(status: str, allowed: tuple[str, ...] | list[str]) -> str:
    if status not in allowed:
        raise InvalidInput(
            Text(gettext_noop("Unknown order status: %(status)s"), status=status), field="status"
        )
    return status


PHONE_LIKE = re.compile(r"^[+\d][\d\s.-]{6,}$")
ORDER_NUMBER_LIKE = re.compile(r"(?i)(?:OK-?)?0*(\d{1,12})")


def phone_or_none(term: str) -> str | None:
    """The E.164 form of a search term that is a Cameroonian phone number, else None."""
    if not PHONE_LIKE.match(term.strip()):
        return None
    try:
        return normalize_cm_phone(term.strip())
    except ValidationError:
        return None


def order_number_or_none(term: str) -> str | None:
    """The order number a search term names (`OK-0000123`, `ok123` or `123`), else None."""
    number = ORDER_NUMBER_LIKE.fullmatch(term.strip())
    return f"OK-{int(number.group(1)):07d}" if number else None


def order_stock_movements(term: str) -> Q | None:
    """The stock movements of the order `term` numbers (deleted or not), as a filter of
    StockMovement, else None: registered with the catalog's ledger search (orders.apps,
    catalog.selectors.movement_search). Its movements carry its number as their reference and
    touch its items' products, from its placement on (the reservation is written with the order,
    at the same now(), its release or sale later): read through the (product, created_at) index,
    the months before it skipped."""
    number = order_number_or_none(term)
    if not number:
        return None
    order = Order.all_objects.filter(number=number).values("pk", "created_at").first()
    if order is None:
        return None
    products = list(OrderItem.objects.filter(order_id=order["pk"]).values_list("product_id", flat=True))
    return Q(reference=number, product_id__in=products, created_at__gte=order["created_at"])


def order_search(term: str, *, vendor_id: uuid.UUID | None = None) -> Q:
    """The orders a search term names, as a filter: a customer's phone number (any spelling), else
    an order number, else (a term with a letter) the customer's name as each order shows it
    (orders.models.customer_name_matches). A term that reads as a number or a phone is never taken for
    a name: names have letters, and `ok123` is the order OK-0000123. All three are read through
    indexes: no scan of a vendor's orders, whatever their count. A term with no letter that is
    neither a number nor a phone (`677 12`, `+++`) is refused (a 400 naming `q`), not answered
    with an empty page the client would take for "no such order". `vendor_id`: the orders
    searched are this vendor's (a name is then looked up among its aliases only)."""
    phone = phone_or_none(term)
    if phone:
        return Q(customer__in=customers_with_phone(phone))
    number = order_number_or_none(term)
    if number:
        return Q(number=number)
    if any(ch.isalpha() for ch in term):
        return Q(customer_name_matches(term, vendor_id=vendor_id))
    raise InvalidInput(
        Text(
            gettext_noop(
                "q finds orders by their number (OK-0001234), their customer's phone number "
                "(677 12 34 56, +237...) or their customer's name: %(term)s is none of them."
            ),
            term=term,
        ),
        field="q",
    )


def order_list_for_vendor(
    *, vendor: Vendor | uuid.UUID, status: str = "", updated_since: datetime | None = None
) -> OrderQuerySet:
    """A vendor's live orders, with customer and zone joined.

    Ordered on a unique key, as cursor pagination needs: newest placed first; with
    `updated_since` (inclusive), oldest change first, so a client pulling changes pages forward.
    The indexes leading with the vendor serve both: (vendor, status, -placed_at), (vendor, updated_at).
    """
    orders = Order.objects.for_vendor(vendor).select_related("customer", "zone")
    if status:
        orders = orders.filter(status=_status(status, OrderStatus.values))
    if updated_since is not None:
        return orders.filter(updated_at__gte=updated_since).order_by("updated_at", "id")
    return orders.order_by("-placed_at", "-id")


def customers_with_phone(phone: str) -> QuerySet[Customer]:
    """The customers, live or deleted, with this E.164 phone number.

    Reads the partial unique index on the live customers' phone, and the index of the deleted
    rows for the others: `phone = %s` alone matches no index (the unique one is partial) and
    reads every customer (14 ms for 100,000, against 0.1 ms).
    """
    return Customer.all_objects.filter(Q(deleted_at__isnull=True) | Q(deleted_at__isnull=False), phone=phone)


def order_detail(*, order_id: uuid.UUID | str, vendor: Vendor | uuid.UUID | None = None) -> Order:
    """One live order with what its page shows: vendor, customer and zone joined; items, payments
    and the timeline (oldest first) prefetched. NotFound if it is missing, deleted, not a valid
    id, or (with `vendor`) another vendor's."""
    orders = Order.objects.select_related("vendor", "customer", "zone").prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("id")),
        Prefetch("payments", queryset=Payment.objects.order_by("created_at", "id")),
        Prefetch("events", queryset=OrderEvent.objects.order_by("created_at", "id")),
    )
    if vendor is not None:
        orders = orders.for_vendor(vendor)
    try:
        return orders.get(pk=order_id)
    except (Order.DoesNotExist, ValidationError):
        raise NotFound(_("No such order.")) from None


@dataclass(frozen=True)
class OpenOrderAges:
    """Open orders of one status, counted per age band (OPEN_AGE_BANDS: the band's lower bound)."""

    status: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def open_order_ages(*, now: datetime | None = None) -> list[OpenOrderAges]:
    """Open orders by status and age since placement, in lifecycle order; one query."""
    now = now or clock()
    bounds = [now - age for age in OPEN_AGE_BANDS]  # placed_at at each band's lower age bound
    bands = {}
    for i, newest in enumerate(bounds):
        band = Q(placed_at__lte=newest)
        if i + 1 < len(bounds):
            band &= Q(placed_at__gt=bounds[i + 1])
        bands[f"band{i}"] = Count("id", filter=band)
    rows = {
        row["status"]: tuple(row[name] for name in bands)
        for row in Order.objects.open().order_by().values("status").annotate(**bands)
    }
    return [OpenOrderAges(status, rows.get(status, (0,) * len(bands))) for status in OPEN_STATUSES]


def order_list(
    *,
    vendor_id: uuid.UUID | None = None,
    channel: str | None = None,
    status: str | None = None,
    updated_since: datetime | None = None,
    search: str = "",
) -> OrderQuerySet:
    """Live orders of one vendor (or, with `channel`, those placed through it) as the API lists
    them: customer joined, items and payments prefetched, in a fixed number of queries whatever
    the page size. The API pages it on its own ordering (okada.core.api.pagination). `search`:
    an order number, a customer's phone number or name (`order_search`)."""
    orders = Order.objects.select_related("customer").prefetch_related(
        Prefetch("items", queryset=OrderItem.objects.order_by("name", "id")),
        Prefetch("payments", queryset=Payment.objects.order_by("created_at", "id")),
    )
    if vendor_id is not None:
        orders = orders.for_vendor(vendor_id)
    if channel is not None:
        orders = orders.filter(channel=channel)
    if status is not None:
        orders = orders.filter(status=_status(status, OrderStatus.values))
    if updated_since is not None:
        orders = orders.filter(updated_at__gte=updated_since)
    if search:
        orders = orders.filter(order_search(search, vendor_id=vendor_id))
    return orders


def zone_list(*, city: str | None = None, updated_since: datetime | None = None) -> QuerySet[Zone]:
    """Live delivery zones."""
    zones = Zone.objects.all()
    if city is not None:
        zones = zones.filter(city=city)
    if updated_since is not None:
        zones = zones.filter(updated_at__gte=updated_since)
    return zones


@dataclass(frozen=True)
class OrderTotalMismatch:
    order_id: uuid.UUID
    subtotal_xaf: int
    items_total_xaf: int


def order_total_audit(*, using: str = DEFAULT_DB_ALIAS) -> list[OrderTotalMismatch]:
    """Orders whose subtotal differs from the sum of their items' line totals (empty = consistent).

    The database CHECKs each line (price x quantity) and each order (total = subtotal + fee); the
    sum over an order's lines spans rows, so it is audited. `using`: another database with the same
    schema (a restore drill checks its restored copy).
    """
    with connections[using].cursor() as cur:
        cur.execute(
            """
            SELECT o.id, o.subtotal_xaf, coalesce(i.total, 0)
              FROM orders_order o
              LEFT JOIN (SELECT order_id, sum(line_total_xaf) AS total
                           FROM orders_orderitem GROUP BY order_id) i ON i.order_id = o.id
             WHERE o.subtotal_xaf <> coalesce(i.total, 0)
            """
        )
        return [OrderTotalMismatch(*row) for row in cur.fetchall()]


# --- The admin's dashboard and queue: bounded by the open-status and placed_at indexes -------

CLOSED_UNPAID = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


def stuck_cutoffs(*, now: dt.datetime | None = None) -> dict[str, dt.datetime]:
    """Per open status, the placing time before which an order still in it is stuck."""
    now = now or clock()
    return {s: now - dt.timedelta(minutes=settings.OKADA_STUCK_MINUTES[s]) for s in OPEN_STATUSES}


def stuck_q(*, now: dt.datetime | None = None) -> Q:
    """Orders in an open status for longer than its threshold (OKADA_STUCK_MINUTES)."""
    q = Q(pk__in=[])
    for status, cutoff in stuck_cutoffs(now=now).items():
        q |= Q(status=status, placed_at__lt=cutoff)
    return q


@dataclass(frozen=True)
class OpenStatusRow:
    status: str
    label: str
    count: int
    stuck: int
    oldest: dt.datetime | None
    threshold_minutes: int


def open_orders_by_status(*, now: dt.datetime | None = None) -> list[OpenStatusRow]:
    """For each open status: how many orders, how many stuck, and the oldest placing time."""
    now = now or clock()
    cutoffs = stuck_cutoffs(now=now)
    stuck = Q(pk__in=[])
    for status, cutoff in cutoffs.items():
        stuck |= Q(status=status, placed_at__lt=cutoff)
    rows = {
        r["status"]: r
        for r in Order.objects.open()
        .values("status")
        .annotate(n=Count("id"), stuck=Count("id", filter=stuck), oldest=Min("placed_at"))
        .order_by()
    }
    labels = dict(OrderStatus.choices)
    return [
        OpenStatusRow(
            status=s,
            label=str(labels[s]),
            count=rows.get(s, {}).get("n", 0),
            stuck=rows.get(s, {}).get("stuck", 0),
            oldest=rows.get(s, {}).get("oldest"),
            threshold_minutes=settings.OKADA_STUCK_MINUTES[s],
        )
        for s in OPEN_STATUSES
    ]


# What the queue and the dashboard's stuck orders show of each order; the rest is deferred, as
# building 100 full orders with their vendor and customer was a third of the queue's time.
QUEUE_FIELDS = (
    "number",
    "status",
    "total_xaf",
    "placed_at",
    "vendor__name",
    # The name each order shows (Order.shown_customer_name): its own, else the record's.
    "customer_name",
    "customer__name",
    "customer__phone",
    "zone__name",
)


def oldest_open_orders(
    *, limit: int, status: str | None = None, placed_before: dict[str, dt.datetime] | None = None
) -> OrderQuerySet:
    """The `limit` open orders placed first (of `status` only, or with `placed_before`, of its
    statuses only, each placed before its time), oldest first, with vendor, customer and zone
    joined and only QUEUE_FIELDS loaded.

    Takes the oldest `limit` of each status from the partial index on (status, placed_at), keeps
    the oldest `limit` of those, and only then joins vendor, customer and zone: a single ORDER BY
    placed_at over every open status leads the planner to walk the placed_at index from the oldest
    order ever placed, through the million closed ones (open orders are a few thousand of the
    newest), about 200 ms at the "large" scale; joining before the last cut read five times the
    rows shown (28 ms, against 2 ms).
    """
    statuses = [_status(status, OPEN_STATUSES)] if status else list(placed_before or OPEN_STATUSES)
    slices = []
    for s in statuses:
        orders = Order.objects.filter(status=s)
        if placed_before is not None:
            orders = orders.filter(placed_at__lt=placed_before[s])
        slices.append(orders.order_by("placed_at", "id").values("id")[:limit])
    candidates = slices[0].union(*slices[1:], all=True) if len(slices) > 1 else slices[0]
    oldest = Order.objects.filter(pk__in=candidates).order_by("placed_at", "id").values("id")[:limit]
    return (
        Order.objects.filter(pk__in=Subquery(oldest))
        .select_related("vendor", "customer", "zone")
        .only(*QUEUE_FIELDS)
        .order_by("placed_at", "id")
    )


def open_queue(*, status: str | None = None, limit: int = 50, now: dt.datetime | None = None) -> list[Order]:
    """The first `limit` of the open orders (of `status`), oldest first, each with `is_stuck` set
    (the admin's queue)."""
    orders = list(oldest_open_orders(limit=limit, status=status))
    cutoffs = stuck_cutoffs(now=now)
    for order in orders:
        order.is_stuck = order.placed_at < cutoffs[order.status]
    return orders


def stuck_orders(*, limit: int = 10, now: dt.datetime | None = None) -> list[Order]:
    """The `limit` orders stuck the longest (placed first), vendor, customer and zone joined."""
    return list(oldest_open_orders(limit=limit, placed_before=stuck_cutoffs(now=now)))


def local_day_start(day: dt.date) -> dt.datetime:
    """Midnight of `day` in Africa/Douala (the business day), as an aware datetime."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone())


def today_by_city(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Orders placed today (Douala time) and their revenue, per city; cancelled and expired
    orders count as orders but bring no revenue."""
    now = now or clock()
    start = local_day_start(timezone.localtime(now).date())
    return list(
        Order.objects.filter(placed_at__gte=start, placed_at__lte=now)
        .values("zone__city")
        .annotate(
            orders=Count("id"),
            revenue=Sum("total_xaf", filter=~Q(status__in=CLOSED_UNPAID), default=0),
        )
        .order_by("zone__city")
    )


def orders_per_day(*, days: int = 14, now: dt.datetime | None = None) -> list[tuple[dt.date, int]]:
    """Orders placed per local day over the last `days` days, today included (zeros kept)."""
    now = now or clock()
    today = timezone.localtime(now).date()
    first = today - dt.timedelta(days=days - 1)
    counts = dict(
        Order.objects.filter(placed_at__gte=local_day_start(first), placed_at__lte=now)
        .annotate(day=TruncDate("placed_at", tzinfo=timezone.get_default_timezone()))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("day", "n")
    )
    return [(first + dt.timedelta(days=i), counts.get(first + dt.timedelta(days=i), 0)) for i in range(days)]


def order_timeline(*, order: Order, limit: int = 200) -> list[OrderEvent]:
    """The order's events, oldest first (index on order, created_at), with the acting user."""
    return list(
        OrderEvent.objects.filter(order_id=order.pk)
        .select_related("actor_user")
        .order_by("created_at")[:limit]
    )


def open_orders_for_vendor(*, vendor: Any, limit: int = 10) -> OrderQuerySet:
    return (
        Order.objects.for_vendor(vendor)
        .open()
        .select_related("customer", "zone")
        .order_by("-placed_at")[:limit]
    )


# --- Finance: refunds owed -------------------------------------------------------------------------


def refunds_owed(*, limit: int = 5, cap: int = 1000) -> tuple[int, list[Payment]]:
    """Payments flagged `needs_refund` (counted up to `cap` + 1) and the `limit` of them waiting
    longest since their flag, with their order: two reads of the partial index
    orders_payment_needs_refund (the few rows owed, sorted by their flag's time; a payment may
    be flagged days after it was made, so its creation does not say how long it has waited)."""
    owed = Payment.objects.needing_refund()
    count = count_up_to(owed, cap)
    oldest = list(owed.select_related("order").order_by("refund_flagged_at", "pk")[:limit])
    return count, oldest


# --- Figures of the health page and /metrics (okada.health; orders/health.py) ---------------------


def placements_by_hour(*, hours: int = 24, now: datetime | None = None) -> list[tuple[datetime, int]]:
    """Orders placed in each of the last `hours` UTC hours, oldest first (the current hour last);
    reads the index on placed_at."""
    now = (now or clock()).astimezone(dt.UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    since = current - timedelta(hours=hours - 1)
    counts = dict(
        Order.all_objects.filter(placed_at__gte=since)
        .annotate(hour=Trunc("placed_at", "hour", tzinfo=dt.UTC))
        .order_by()
        .values_list("hour")
        .annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    starts = [since + timedelta(hours=h) for h in range(hours)]
    return [(start, counts.get(start, 0)) for start in starts]


def order_counts_by_status() -> dict[str, int]:
    """Orders per status, cheap at any size: open statuses counted exactly (open orders are few),
    the others estimated from the planner's statistics (pg_stats' most common values times
    pg_class.reltuples, as of the last ANALYZE)."""
    counts = {row.status: row.count for row in open_orders_by_status()}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT s.most_common_vals::text::text[], s.most_common_freqs, greatest(c.reltuples, 0) "
            "FROM pg_stats s JOIN pg_class c ON c.oid = to_regclass(%s) "
            "WHERE s.schemaname = current_schema() AND s.tablename = %s AND s.attname = 'status'",
            [Order._meta.db_table, Order._meta.db_table],
        )
        row = cur.fetchone()
    if row and row[0]:
        for value, freq in zip(row[0], row[1], strict=True):
            if value not in counts:
                counts[value] = round(freq * row[2])
    for status in OrderStatus.values:
        counts.setdefault(status, 0)
    return counts


def order_numbers_issued() -> int:
    """Order numbers taken from the sequence so far: every order ever placed (a counter that only
    grows; a rolled-back placement may leave a gap)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(last_value - start_value + 1, 0) FROM pg_sequences "
            "WHERE schemaname = current_schema() AND sequencename = 'orders_order_number_seq'"
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0
