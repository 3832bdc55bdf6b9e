"""Every write to orders and payments: placing, the status lifecycle, expiry, payments.

Lock order, everywhere: the order row first, then stock rows in product-id order. Placing locks
no existing order, so no two services can wait on each other in a cycle.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy, gettext_noop
from django.utils.translation import gettext_lazy as _

from catalog.models import City, Product, Vendor
from catalog.services import Line, stock_release, stock_sell
from okada.core import counters
from okada.core import services as core
from okada.core.actors import Actor, acting_for
from okada.core.db import one_value
from okada.core.errors import (
    AlreadyRecorded,
    Conflict,
    DomainError,
    IdempotencyMismatch,
    InternalError,
    InvalidInput,
    NotAllowed,
    NotFound,
    unique_or,
    validated,
    validation_text,
)
from okada.core.fields import normalize_cm_phone
from okada.core.texts import Text, joined

from .models import (
    MOBILE_MONEY,
    OPEN_STATUSES,
    Channel,
    Customer,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Zone,
)

log = logging.getLogger(__name__)

MAX_LINES = 100
REFUSED_OUT_OF_STOCK = "orders.refused.out_of_stock"  # counter name (okada.core.counters)
MAX_QUANTITY = 10_000  # per line: far above any basket, far below int4 overflow
PAYMENT_METHODS = frozenset(PaymentMethod.values)
CHANNELS = frozenset(Channel.values)
# For building the placed Order from the function's result (see order_place).
ORDER_COLUMNS = [f.attname for f in Order._meta.concrete_fields]
ITEM_COLUMNS = [f.attname for f in OrderItem._meta.concrete_fields]
PAYMENT_COLUMNS = [f.attname for f in Payment._meta.concrete_fields]
# A customer found by phone comes back with these columns only (the others load when read).
CUSTOMER_COLUMNS = [f.attname for f in Customer._meta.concrete_fields if f.attname in ("id", "name", "phone")]
ORDER_VENDOR, ORDER_CUSTOMER, ORDER_ZONE = (Order.vendor.field, Order.customer.field, Order.zone.field)

# The reasons this module writes into history and the ledger (stored in English, shown
# translated by okada.core.display.reason_label).
CHANGE_REASONS = (
    gettext_noop("order placed"),
    gettext_noop("order note"),
    gettext_noop("order deleted"),
    gettext_noop("order restored"),
    gettext_noop("payment recorded"),
    gettext_noop("payment callback"),
    gettext_noop("zone created"),
    gettext_noop("zone updated"),
    gettext_noop("zone deleted"),
    gettext_noop("zone restored"),
    gettext_noop("customer created"),
    gettext_noop("customer updated"),
    gettext_noop("customer deleted"),
    gettext_noop("customer restored"),
    gettext_noop("order -> %(status)s"),
)

# --- Errors -------------------------------------------------------------------------------------


class OutOfStock(Conflict):
    code = "out_of_stock"


class ProductUnavailable(Conflict):
    code = "product_unavailable"


class VendorNotActive(Conflict):
    code = "vendor_not_active"


class ZoneUnavailable(Conflict):
    code = "zone_unavailable"


class CustomerUnavailable(Conflict):
    code = "customer_unavailable"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class AwaitingPayment(Conflict):
    code = "awaiting_payment"


class TransitionNotAllowed(NotAllowed):
    code = "transition_not_allowed"
    status = 403


class ZoneTaken(Conflict):
    code = "zone_taken"


class PhoneTaken(Conflict):
    code = "phone_taken"


class UnknownPayment(NotFound):
    code = "unknown_payment"


class RefundNotOwed(Conflict):
    code = "refund_not_owed"


class UnexpectedPlacementResult(InternalError):
    """okada_order_place() answered with an error this code does not know (a version mismatch)."""

    code = "unexpected_placement_result"


# --- The lifecycle ------------------------------------------------------------------------------

S = OrderStatus
VENDOR, STAFF, STOREFRONT, SYSTEM = Actor.VENDOR, Actor.STAFF, Actor.STOREFRONT, Actor.SYSTEM

# (from, to) -> who may make the move. Anything not listed is refused.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (S.PENDING, S.ACCEPTED): frozenset({VENDOR, STAFF}),
    (S.ACCEPTED, S.PREPARING): frozenset({VENDOR, STAFF}),
    (S.PREPARING, S.READY): frozenset({VENDOR, STAFF}),
    (S.READY, S.OUT_FOR_DELIVERY): frozenset({VENDOR, STAFF}),
    (S.OUT_FOR_DELIVERY, S.DELIVERED): frozenset({VENDOR, STAFF}),
    (S.PENDING, S.CANCELLED): frozenset({VENDOR, STAFF, STOREFRONT}),
    (S.ACCEPTED, S.CANCELLED): frozenset({VENDOR, STAFF}),
    (S.PREPARING, S.CANCELLED): frozenset({VENDOR, STAFF}),
    (S.READY, S.CANCELLED): frozenset({VENDOR, STAFF}),
    (S.PENDING, S.EXPIRED): frozenset({SYSTEM}),
    (S.DELIVERED, S.REFUNDED): frozenset({STAFF}),
}
RELEASES_STOCK = {S.CANCELLED, S.EXPIRED}
SELLS_STOCK = {S.OUT_FOR_DELIVERY}
# Where an unpaid mobile-money order may go: it stays pending, where the expiry job finds it,
# until it is paid, so it never holds stock past its deadline.
UNPAID_MOBILE_MONEY_TARGETS = {S.CANCELLED, S.EXPIRED}


def _awaiting_payment(order: Order, to: str) -> bool:
    return (
        order.status == S.PENDING
        and to not in UNPAID_MOBILE_MONEY_TARGETS
        and order.payment_method in MOBILE_MONEY
        and order.payment_status == PaymentStatus.UNPAID
    )


def transition_permission(to: str) -> str:
    """The Django permission staff need to move an order to `to` (refunds are Finance's)."""
    return "orders.refund_order" if to == S.REFUNDED else "orders.transition_order"


def allowed_targets(*, order: Order, actor: Actor) -> list[str]:
    """Where this actor may move the order now (the lifecycle, its role, its permissions and the
    payment rule); the admin shows one button per target."""
    return [
        to
        for (frm, to), roles in TRANSITIONS.items()
        if frm == order.status
        and actor.role in roles
        and (actor.role != STAFF or actor.can(transition_permission(to)))
        and not _awaiting_payment(order, to)
    ]


# --- Placing ------------------------------------------------------------------------------------


def _check_can_place(*, vendor_id: uuid.UUID, actor: Actor, channel: str) -> None:
    if actor.role in (STOREFRONT, STAFF):
        return
    if actor.role == VENDOR and actor.vendor_id == vendor_id and channel == Channel.PHONE:
        return  # a vendor may take phone/WhatsApp orders for their own shop
    raise NotAllowed(_("You may not place orders for this vendor."))


def _normalise_items(items: Sequence[tuple[Product | uuid.UUID, int]]) -> dict[uuid.UUID, int]:
    if not items:
        raise InvalidInput(_("An order needs at least one item."), field="items")
    if len(items) > MAX_LINES:
        raise InvalidInput(
            Text(gettext_noop("An order has at most %(n)d lines."), n=MAX_LINES), field="items"
        )
    quantities: dict[uuid.UUID, int] = {}
    for product, quantity in items:
        try:
            product_id = product.pk if isinstance(product, Product) else uuid.UUID(str(product))
        except ValueError:
            raise InvalidInput(_("Product ids are UUIDs."), field="items") from None
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity <= MAX_QUANTITY:
            raise InvalidInput(
                Text(gettext_noop("Quantities must be integers from 1 to %(max)d."), max=MAX_QUANTITY),
                field="items",
            )
        if product_id in quantities:
            raise InvalidInput(_("Each product may appear only once in an order."), field="items")
        quantities[product_id] = quantity
    return quantities


def _check_placement(
    *,
    vendor_id: uuid.UUID,
    items: Sequence[tuple[Product | uuid.UUID, int]],
    payment_method: str,
    channel: str,
    address: str,
    actor: Actor,
) -> dict[uuid.UUID, int]:
    """What every placement checks before the database is asked; the quantities by product."""
    _check_can_place(vendor_id=vendor_id, actor=actor, channel=channel)
    quantities = _normalise_items(items)
    if payment_method not in PAYMENT_METHODS:
        raise InvalidInput(_("Unknown payment method."), field="payment_method")
    if channel not in CHANNELS:
        raise InvalidInput(_("Unknown channel."), field="channel")
    if not address.strip():
        raise InvalidInput(_("A delivery address is required."), field="address")
    return quantities


def _call_order_place(
    *,
    vendor_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    zone_id: uuid.UUID,
    quantities: dict[uuid.UUID, int],
    payment_method: str,
    channel: str,
    address: str,
    note: str,
    customer_name: str,
    actor: Actor,
    customer_phone: str | None = None,
    payment_reference: str | None = None,
    savepoint: bool = True,
) -> dict[str, Any]:
    """One call of okada_order_place() (v10, orders migration 0038), which answers with an error
    instead of raising, before changing anything; its result as a dict."""
    deadline = settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES if payment_method in MOBILE_MONEY else None
    with acting_for(actor, "order placed") as acting:
        raw = one_value(
            "SELECT okada_order_place(%s, %s, %s, %s::uuid[], %s::integer[], %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s)",
            [
                vendor_id,
                customer_id,
                zone_id,
                list(quantities),
                list(quantities.values()),
                payment_method,
                channel,
                address,
                note,
                deadline,
                str(actor)[:150],
                getattr(acting.user, "pk", None),
                acting.reason,
                customer_phone,
                payment_reference,
                customer_name,
            ],
            savepoint=savepoint,
        )
    result: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw  # jsonb comes as text
    return result


def _refuse(result: dict[str, Any]) -> None:
    """Raise the domain error okada_order_place() answered with (the errors every caller shares)."""
    error = result.get("error")
    if error in ("vendor_not_active", "vendor_unavailable"):
        raise VendorNotActive(_("This vendor is not taking orders."))
    if error == "zone_unavailable":
        raise ZoneUnavailable(_("This delivery zone no longer exists."), field="zone")
    if error == "zone_out_of_area":  # a vendor delivers in its own city (orders migration 0028)
        raise InvalidInput(
            Text(
                gettext_noop("This vendor delivers in %(city)s only: choose a delivery zone in %(city)s."),
                city=dict(City.choices).get(result["city"], result["city"]),
            ),
            field="zone",
        )
    if error == "customer_unavailable":
        raise CustomerUnavailable(_("This customer no longer exists."), field="customer")
    if error == "product_unavailable":
        missing = result["product_ids"]
        raise ProductUnavailable(
            Text(gettext_noop("These products cannot be ordered: %(ids)s"), ids=", ".join(missing)),
            product_ids=missing,
        )
    if error == "out_of_stock":
        counters.count(REFUSED_OUT_OF_STOCK)  # the health page's refusals (one Redis round trip)
        short = result["items"]
        raise OutOfStock(
            Text(
                gettext_noop("Not enough stock for: %(items)s"),
                items=joined(
                    [
                        Text(
                            gettext_noop("%(sku)s (%(available)s left)"),
                            sku=s["sku"],
                            available=s["available"],
                        )
                        for s in short
                    ],
                    ", ",
                ),
            ),
            items=short,
        )
    if error is not None or "id" not in result:
        log.error("okada_order_place returned an unknown result: %r", result)
        raise UnexpectedPlacementResult(
            _("The order could not be placed (unexpected answer from the database)."), result=error
        )


def _placed_order(
    result: dict[str, Any],
    *,
    vendor_id: uuid.UUID,
    customer_id: uuid.UUID,
    zone_id: uuid.UUID,
    payment_method: str,
    channel: str,
    address: str,
    note: str,
    customer_name: str,
) -> Order:
    """The order okada_order_place() wrote, built like a row read back."""
    subtotal, fee = result["subtotal_xaf"], result["delivery_fee_xaf"]
    placed_at = _timestamp(result["placed_at"])
    row = {
        "id": uuid.UUID(result["id"]),
        "created_at": placed_at,
        "updated_at": placed_at,
        "deleted_at": None,
        "deleted_by_cascade": False,
        "number": result["number"],
        "vendor_id": vendor_id,
        "customer_id": customer_id,
        "status": OrderStatus.PENDING,
        "channel": channel,
        "payment_method": payment_method,
        "payment_status": PaymentStatus.UNPAID,
        "subtotal_xaf": subtotal,
        "delivery_fee_xaf": fee,
        "total_xaf": subtotal + fee,
        "address": address,
        "zone_id": zone_id,
        "placed_at": placed_at,
        "expires_at": _timestamp(result["expires_at"]) if result["expires_at"] else None,
        "note": note,
        "customer_name": customer_name,
    }
    # Positional (from_db): a third of the cost of keyword arguments, on the hot path.
    order: Order = _row(Order, ORDER_COLUMNS, row)
    return order


def order_place(
    *,
    vendor: Vendor,
    customer: Customer,
    items: Sequence[tuple[Product | uuid.UUID, int]],
    payment_method: str,
    channel: str,
    address: str,
    zone: Zone,
    actor: Actor,
    note: str = "",
) -> Order:
    """Place an order: reserve stock for every item in one transaction, all or nothing.

    Never oversells, under any concurrency: the stock rows are locked in product-id order, then
    checked with their latest committed values before anything is written, so concurrent
    placements neither oversell nor deadlock. Refuses with OutOfStock naming the short items,
    and with VendorNotActive, ZoneUnavailable, CustomerUnavailable or ProductUnavailable when one
    of them is suspended, soft-deleted or missing (checked in the same statement).
    The order's number is okada_order_number() of the next value of orders_order_number_seq.
    """
    quantities = _check_placement(
        vendor_id=vendor.pk,
        items=items,
        payment_method=payment_method,
        channel=channel,
        address=address,
        actor=actor,
    )
    place: dict[str, Any] = {
        "vendor_id": vendor.pk,
        "customer_id": customer.pk,
        "zone_id": zone.pk,
        "payment_method": payment_method,
        "channel": channel,
        "address": address,
        "note": note,
        # The customer record at hand (staff chose it): its name is the one this order gives. A
        # rename committed since it was read gets this order an alias (okada_order_place v10
        # compares it with the name under the record's lock): the name search still finds it.
        "customer_name": customer.name,
    }
    result = _call_order_place(quantities=quantities, actor=actor, **place)
    _refuse(result)
    order = _placed_order(result, **place)
    # The vendor, customer and zone already at hand: cached, as a select_related read would.
    for field, related in ((ORDER_VENDOR, vendor), (ORDER_CUSTOMER, customer), (ORDER_ZONE, zone)):
        field.set_cached_value(order, related)
    return order


@dataclass(frozen=True)
class PlacedOrder:
    """An order as order_place_for_phone() placed it: the order (its customer cached), its items
    (by name, then id) and, for mobile money, the payment request."""

    order: Order
    items: list[OrderItem]
    payments: list[Payment]


def order_place_for_phone(
    *,
    vendor_id: uuid.UUID,
    phone: str,
    name: str,
    zone_id: uuid.UUID,
    items: Sequence[tuple[Product | uuid.UUID, int]],
    payment_method: str,
    channel: str,
    address: str,
    actor: Actor,
    note: str = "",
) -> PlacedOrder:
    """Place an order for the customer with this phone number (the storefront's POST /orders),
    and for mobile money request the payment, in one transaction and mostly one statement.

    The live customer with this number is reused (its name and address kept; the order keeps the
    name given here, and shows it, not the record's); a new number gets
    a new customer (customer_get_or_create: never two for one number, under any concurrency),
    undone if the order is then refused, and so does a number whose customer staff delete while
    the order is placed.
    The vendor and zone are given by id: a missing or deleted one is refused with InvalidInput
    (`vendor`, `zone`) before anything is written; otherwise the refusals of order_place().
    For mobile money the payment request (`pending`, for the total, named
    `order-placed:<order id>`, as payment_record() would write it) and its event are written in
    the placement's statement: the order is new, so nothing is locked again.

    Meant to run inside the caller's transaction (the API's Idempotency-Key one): a database
    error then fails that transaction (no savepoint of its own).
    """
    phone = _checked_customer(phone=phone, name=name)
    quantities = _check_placement(
        vendor_id=vendor_id,
        items=items,
        payment_method=payment_method,
        channel=channel,
        address=address,
        actor=actor,
    )
    reference = None
    if payment_method in MOBILE_MONEY:
        actor.require_if_staff("orders.add_payment")  # as payment_record asks of staff
        # Made as payment_record makes one: the same kind of reference wherever it is written.
        reference = f"{payment_method}-{uuid.uuid4().hex[:20]}"
    place: dict[str, Any] = {
        "vendor_id": vendor_id,
        "zone_id": zone_id,
        "payment_method": payment_method,
        "channel": channel,
        "address": address,
        "note": note,
        # The name given with this order, as customer_get_or_create stores a new customer's: the
        # order shows it, never the name the customer record holds for this number (which may be
        # another vendor's customer's: orders migration 0029).
        "customer_name": name.strip()[:200],
    }
    call: dict[str, Any] = {
        "quantities": quantities,
        "actor": actor,
        "payment_reference": reference,
        "savepoint": False,
    }
    result = _call_order_place(customer_id=None, customer_phone=phone, **call, **place)
    customer: Customer | None = None
    # A customer deleted while the placement waited for its row is not found (v9 locks the one it
    # finds by phone, before the stock rows: orders migration 0034): `customer_unknown`, the first
    # order of a number no live customer has, as if it came just after the delete (refusing it
    # would match neither serial order of the two). v8 answered `customer_unavailable` for it,
    # taken the same way.
    if result.get("error") in ("customer_unknown", "customer_unavailable"):
        # A first order from this number: nothing was written, nor a stock row locked (v9), so
        # the customer's insert, which may wait for another first order of this number, waits
        # holding no row that one could wait for: no deadlock. The customer is made through its service,
        # after the vendor and zone it refers to are known to exist, in a savepoint undone when
        # the placement is then refused (a suspended vendor, an unknown product, short stock): a
        # refused request leaves no customer behind, even in the API's transaction, which
        # commits its 4xx answers.
        with transaction.atomic():
            zone = _live_for_placing(vendor_id=vendor_id, zone_id=zone_id)
            customer = customer_get_or_create(phone=phone, name=name, zone=zone, address=address, actor=actor)
            # The phone again: with it the answer carries the items (see orders migration 0021).
            result = _call_order_place(customer_id=customer.pk, customer_phone=phone, **call, **place)
            _refuse_for_phone(result)
    _refuse_for_phone(result)
    if customer is None:
        found = {**result["customer"], "id": uuid.UUID(result["customer"]["id"])}
        customer = _row(Customer, CUSTOMER_COLUMNS, found)
    order = _placed_order(result, customer_id=customer.pk, **place)
    ORDER_CUSTOMER.set_cached_value(order, customer)
    # A name given that is not the record's (a number ordered under another name, rare) got its
    # alias in the placement's statement, compared with the record's name under its lock
    # (okada_order_place v10, migration 0038): never with `customer` as read here, which a
    # rename may have changed since (a first order finding the customer another one had made).
    lines = [
        _row(
            OrderItem,
            ITEM_COLUMNS,
            {
                **item,
                "id": uuid.UUID(item["id"]),
                "created_at": order.placed_at,
                "updated_at": order.placed_at,
                "order_id": order.pk,
                "product_id": uuid.UUID(item["product_id"]),
            },
        )
        for item in result["items"]
    ]
    payments = []
    if result["payment"] is not None:
        requested = _timestamp(result["payment"]["created_at"])
        payment = {
            "id": uuid.UUID(result["payment"]["id"]),
            "created_at": requested,
            "updated_at": requested,
            "order_id": order.pk,
            "provider": payment_method,
            "provider_reference": reference,
            "idempotency_key": f"order-placed:{order.pk}",
            "amount_xaf": order.total_xaf,
            "received_xaf": None,
            "status": Payment.Status.PENDING,
            "paid_at": None,
            "callbacks": [],
            "needs_refund": False,
            "refund_flagged_at": None,
            "refund_settled_at": None,
            "refund_settled_by_id": None,
        }
        payments.append(_row(Payment, PAYMENT_COLUMNS, payment))
    return PlacedOrder(order=order, items=lines, payments=payments)


def _refuse_for_phone(result: dict[str, Any]) -> None:
    """order_place_for_phone's refusals: a missing vendor or zone is bad input there."""
    if result.get("error") == "vendor_unavailable":
        raise InvalidInput(_("No such vendor."), field="vendor")
    if result.get("error") == "zone_unavailable":
        raise InvalidInput(_("No such delivery zone."), field="zone")
    _refuse(result)


def _row(model: Any, columns: list[str], values: dict[str, Any]) -> Any:
    """A model instance built like a row read back (a column missing from `values` fails loudly)."""
    return model.from_db(DEFAULT_DB_ALIAS, columns, [values[name] for name in columns])


def _live_for_placing(*, vendor_id: uuid.UUID, zone_id: uuid.UUID) -> Zone:
    """The live zone, once the live vendor is known to exist (InvalidInput otherwise): checked
    before a customer is created for an order that would be refused for them."""
    if not Vendor.objects.filter(pk=vendor_id).exists():
        raise InvalidInput(_("No such vendor."), field="vendor")
    zone = Zone.objects.filter(pk=zone_id).first()
    if zone is None:
        raise InvalidInput(_("No such delivery zone."), field="zone")
    return zone


def _timestamp(value: str) -> datetime:
    # okada_order_place writes RFC 3339; anything else raises ValueError instead of passing None on.
    return datetime.fromisoformat(value)


def _event(
    *,
    order: Order,
    kind: str,
    actor: Actor,
    from_status: str = "",
    to_status: str = "",
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=str(actor)[:150],
        actor_user=actor.user if getattr(actor.user, "pk", None) else None,
        data=data or {},
    )


def _lines(order: Order) -> list[Line]:
    return [Line(pid, order.vendor_id, qty) for pid, qty in order.items.values_list("product_id", "quantity")]


# --- Transitions --------------------------------------------------------------------------------


# Who is refused a transition, in its message (the statuses are named by their labels: a French
# message says "annulée", not "cancelled").
ROLE_NAMES = {
    VENDOR: gettext_lazy("The vendor"),
    STOREFRONT: gettext_lazy("The storefront"),
    STAFF: gettext_lazy("Staff"),
    SYSTEM: gettext_lazy("The system"),
}


def _status_name(status: str) -> Text | str:
    """An order status as its label, translated where shown (the value itself if it names none)."""
    return Text.of(OrderStatus(status).label) if status in OrderStatus.values else status


def order_transition(*, order: Order, to: str, actor: Actor, note: str = "") -> Order:
    """Move an order along its lifecycle (TRANSITIONS), with the stock side effects and an event.

    Refused with InvalidTransition (not a move of the lifecycle), TransitionNotAllowed (not for
    this actor), NotAllowed (staff need `orders.transition_order`, `orders.refund_order` for a
    refund) or AwaitingPayment (an unpaid mobile-money order stays pending until paid; it may be
    cancelled, and expires at its deadline).
    """
    actor.require_if_staff(transition_permission(to))
    with transaction.atomic(), acting_for(actor, f"order -> {to}"):
        order = core.locked(Order.objects, order.pk)
        if actor.role == VENDOR and actor.vendor_id != order.vendor_id:
            raise TransitionNotAllowed(_("This order belongs to another vendor."))
        roles = TRANSITIONS.get((order.status, to))
        if roles is None:
            raise InvalidTransition(
                Text(
                    gettext_noop("An order cannot go from %(from)s to %(to)s."),
                    to=_status_name(to),
                    **{"from": _status_name(order.status)},
                ),
                allowed=allowed_targets(order=order, actor=actor),
            )
        if actor.role not in roles:
            raise TransitionNotAllowed(
                Text(
                    gettext_noop("%(role)s may not move an order from %(from)s to %(to)s."),
                    role=Text.of(ROLE_NAMES[actor.role]) if actor.role in ROLE_NAMES else actor.role,
                    to=_status_name(to),
                    **{"from": _status_name(order.status)},
                )
            )
        if _awaiting_payment(order, to):
            raise AwaitingPayment(
                _("This order waits for its mobile-money payment: until it is paid it can only be cancelled.")
            )
        if to == S.EXPIRED and not (
            order.payment_method in MOBILE_MONEY and order.payment_status == PaymentStatus.UNPAID
        ):
            raise InvalidTransition(_("Only unpaid mobile-money orders expire."))
        if to in RELEASES_STOCK:
            stock_release(lines=_lines(order), reference=order.number, actor=actor)
        if to == S.CANCELLED:
            _flag_money_received(order=order, actor=actor)
        elif to in SELLS_STOCK:
            stock_sell(lines=_lines(order), reference=order.number, actor=actor)
        from_status = order.status
        order.status = to
        fields = ["status", "updated_at"]
        if to == S.REFUNDED and order.payment_status == PaymentStatus.PAID:
            order.payment_status = PaymentStatus.REFUNDED
            fields.append("payment_status")
        order.save(update_fields=fields)
        _event(
            order=order,
            kind=OrderEvent.Kind.STATUS,
            from_status=from_status,
            to_status=to,
            actor=actor,
            data={"note": note} if note else {},
        )
    return order


def order_cancel(*, order: Order, actor: Actor, note: str = "") -> Order:
    return order_transition(order=order, to=S.CANCELLED, actor=actor, note=note)


def order_expire_unpaid(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire pending mobile-money orders still unpaid past their deadline; release their stock."""
    now = now or timezone.now()
    actor = Actor.system("expire_unpaid_orders")
    expired = 0
    candidates = list(
        Order.objects.unpaid_mobile_money_past(now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in candidates:
        try:
            with transaction.atomic():
                # Re-check under the row lock: a payment may have landed since the scan.
                order = (
                    Order.objects.unpaid_mobile_money_past(now)
                    .select_for_update(skip_locked=True)
                    .filter(pk=pk)
                    .first()
                )
                if order is None:
                    continue
                order_transition(order=order, to=S.EXPIRED, actor=actor, note="unpaid past deadline")
                expired += 1
        except DomainError:
            # One broken order must not stop the others (it would fail first on every run).
            log.exception("could not expire order %s", pk)
    return expired


# --- Payments -----------------------------------------------------------------------------------

RECEIVES_MONEY = frozenset({STAFF, SYSTEM})  # the provider-callback path acts as the system
MAX_REFERENCE, MAX_KEY = 100, 255  # the columns' sizes; 255 is also the API's Idempotency-Key limit
KEY_CONSTRAINT = "orders_payment_idempotency_key_uniq"
REFERENCE_CONSTRAINT = "orders_payment_provider_ref_uniq"
# Money that arrives for an order in one of these statuses is not owed: Finance refunds it.
MONEY_NOT_EXPECTED = frozenset({S.CANCELLED, S.EXPIRED, S.REFUNDED})


def payment_record(
    *,
    order: Order,
    provider: str,
    amount_xaf: int,
    actor: Actor,
    idempotency_key: str = "",
    provider_reference: str = "",
    status: str = Payment.Status.PENDING,
) -> Payment:
    """Record a mobile-money request (`pending`, awaiting its callback) or money received (`succeeded`).

    Idempotent. The caller names the write with `idempotency_key` (e.g. the request's
    Idempotency-Key, up to 255 characters) and/or `provider_reference` (the provider's transaction
    id); one is required. A mobile-money request named by its key alone gets a reference made for
    it (`<provider>-<20 hex digits>`, what we send the provider and its callback names). A repeat
    returns the first payment and writes nothing. A name already used
    for another payment (another order, provider or amount, or money received where a request was
    recorded) is refused: IdempotencyMismatch (422) for a key, AlreadyRecorded (409) for a
    reference; never a second row.

    Who: staff and the system may record money received; a vendor (for its own orders) and the
    storefront may only request a mobile-money payment. Money received that does not fit the
    order is kept and flagged `needs_refund` (see `_settle`).
    """
    _check_payment_input(
        provider=provider,
        amount_xaf=amount_xaf,
        status=status,
        idempotency_key=idempotency_key,
        provider_reference=provider_reference,
    )
    actor.require_if_staff("orders.add_payment")
    _check_can_record_payment(order=order, status=status, actor=actor)
    key_used = IdempotencyMismatch(
        _("This idempotency key was already used for a different payment."), field="idempotency_key"
    )
    reference_used = AlreadyRecorded(
        _("This provider reference is already recorded for a different payment."), field="provider_reference"
    )
    with transaction.atomic(), acting_for(actor, "payment recorded"):
        # Lock order: the order row first. Two repeats of one write queue here, so the second
        # finds the first's payment.
        locked = Order.objects.select_for_update().filter(pk=order.pk).first()
        if locked is None:
            raise NotFound(_("No such order."), field="order")
        order = locked
        # A repeat: the payment this key or reference already names (checked in that order).
        named: list[tuple[Any, DomainError]] = []
        if idempotency_key:
            named.append((Payment.objects.filter(idempotency_key=idempotency_key), key_used))
        if provider_reference:
            named.append(
                (
                    Payment.objects.filter(provider=provider, provider_reference=provider_reference),
                    reference_used,
                )
            )
        for payments, used in named:
            first = payments.first()
            if first is None:
                continue
            if not _same_payment(
                first,
                order=order,
                provider=provider,
                amount_xaf=amount_xaf,
                status=status,
                provider_reference=provider_reference,
            ):
                raise used
            return first
        received = status == Payment.Status.SUCCEEDED
        if not provider_reference:  # money received is named by its key; a request needs a reference
            provider_reference = "" if received else f"{provider}-{uuid.uuid4().hex[:20]}"
        # A write that races another of the same name for another order meets the unique indexes.
        with unique_or(key_used, KEY_CONSTRAINT), unique_or(reference_used, REFERENCE_CONSTRAINT):
            payment = Payment.objects.create(
                order=order,
                provider=provider,
                provider_reference=provider_reference,
                idempotency_key=idempotency_key,
                amount_xaf=amount_xaf,
                received_xaf=amount_xaf if received else None,
                status=status,
                paid_at=timezone.now() if received else None,
            )
        _payment_event(order=order, payment=payment, actor=actor, amount_xaf=amount_xaf)
        if received:
            _settle(order=order, payment=payment, actor=actor)
    return payment


def _check_payment_input(
    *, provider: str, amount_xaf: int, status: str, idempotency_key: str, provider_reference: str
) -> None:
    if provider not in PaymentMethod.values:
        raise InvalidInput(_("Unknown payment provider."), field="provider")
    if not isinstance(amount_xaf, int) or isinstance(amount_xaf, bool) or amount_xaf <= 0:
        raise InvalidInput(_("The amount must be positive."), field="amount_xaf")
    if status not in (Payment.Status.PENDING, Payment.Status.SUCCEEDED):
        raise InvalidInput(_("A payment is recorded as pending or succeeded."), field="status")
    if not idempotency_key and not provider_reference:
        raise InvalidInput(
            _("Name the payment with an idempotency key or the provider's reference."),
            field="idempotency_key",
        )
    if len(idempotency_key) > MAX_KEY:
        raise InvalidInput(
            Text(gettext_noop("An idempotency key has at most %(n)d characters."), n=MAX_KEY),
            field="idempotency_key",
        )
    if len(provider_reference) > MAX_REFERENCE:
        raise InvalidInput(
            Text(gettext_noop("A provider reference has at most %(n)d characters."), n=MAX_REFERENCE),
            field="provider_reference",
        )
    if status == Payment.Status.PENDING and provider not in MOBILE_MONEY:
        raise InvalidInput(_("Cash is recorded when it is received."), field="status")


def _check_can_record_payment(*, order: Order, status: str, actor: Actor) -> None:
    if actor.role in RECEIVES_MONEY:
        return
    if actor.role == VENDOR and actor.vendor_id != order.vendor_id:
        raise NotAllowed(_("This order belongs to another vendor."))
    if actor.role not in (VENDOR, STOREFRONT) or status != Payment.Status.PENDING:
        raise NotAllowed(_("Only staff record money received; you may request a mobile-money payment."))


def _same_payment(
    payment: Payment,
    *,
    order: Order,
    provider: str,
    amount_xaf: int,
    status: str,
    provider_reference: str,
) -> bool:
    """Is a write with these values a repeat of the one that recorded `payment`?

    A repeated request matches whatever became of it (pending, paid or failed); a repeated record
    of money received matches only a payment that succeeded.
    """
    return (
        (payment.order_id, payment.provider, payment.amount_xaf) == (order.pk, provider, amount_xaf)
        and provider_reference in ("", payment.provider_reference)
        and (status == Payment.Status.PENDING or payment.status == Payment.Status.SUCCEEDED)
    )


class CallbackOutcome:
    """What a provider callback did (`payment_apply_callback`), as the callback's answer says."""

    APPLIED = "applied"  # it decided the pending payment (succeeded or failed)
    REPEAT = "repeat"  # the callback that decided it, again: nothing changed
    NOT_APPLIED = "not_applied"  # the payment was already decided otherwise: unchanged, on the timeline

    ALL = (APPLIED, REPEAT, NOT_APPLIED)


@dataclass(frozen=True)
class CallbackResult:
    payment: Payment
    outcome: str  # CallbackOutcome


def payment_apply_callback(
    *, provider: str, provider_reference: str, status: str, amount_xaf: int, payload: dict[str, Any]
) -> CallbackResult:
    """Apply a provider's callback (the system acts). Idempotent: once a payment is final,
    callbacks change nothing.

    `payload` is the callback as received (kept on the payment; its `transaction_id`, when
    given, is the provider's id of the transaction). The outcome says what happened: `applied`
    (the pending payment is decided by this callback), `repeat` (the callback that decided it,
    again: same status, amount received and transaction id) or `not_applied` (the payment was
    already decided otherwise, e.g. a second callback for another amount: the payment is unchanged,
    a warning naming it is logged and the callback is put on the order's timeline for the people
    who reconcile with the provider, `_not_applied_event`).

    The amount received is kept apart from the amount requested (`received_xaf`); money that does
    not fit the order (another amount than requested, more than the total, or for an order
    expired or cancelled meanwhile) is kept and flagged `needs_refund` (see `_settle`). The
    payment still `succeeded` (the money arrived); the order is paid only once what it received
    covers its total.
    """
    if status not in (Payment.Status.SUCCEEDED, Payment.Status.FAILED):
        raise InvalidInput(_("Unknown payment status."), field="status")
    if status == Payment.Status.SUCCEEDED and (
        not isinstance(amount_xaf, int) or isinstance(amount_xaf, bool) or amount_xaf <= 0
    ):
        raise InvalidInput(_("The amount must be positive."), field="amount_xaf")
    actor = Actor.system(f"callback:{provider}")
    with transaction.atomic(), acting_for(actor, "payment callback"):
        found = (
            Payment.objects.filter(provider=provider, provider_reference=provider_reference)
            .exclude(provider_reference="")
            .values_list("pk", "order_id")
            .first()
        )
        if found is None:
            raise UnknownPayment(_("No payment with this provider reference."))
        payment_id, order_id = found
        # Same lock order as every order service: the order row, then the payment row.
        order = core.locked(Order.all_objects, order_id)
        payment = core.locked(Payment.objects, payment_id)
        if payment.status != Payment.Status.PENDING:  # the first final callback decided
            if _same_callback(payment, status=status, amount_xaf=amount_xaf, payload=payload):
                return CallbackResult(payment, CallbackOutcome.REPEAT)
            log.warning(
                "callback not applied to payment %s (order %s, %s %s): it is already %s "
                "(received %s XAF, transaction %r); the callback says %s, %s XAF, transaction %r",
                payment.pk,
                order.number,
                provider,
                provider_reference,
                payment.status,
                payment.received_xaf,
                _transaction_id(payment.callbacks[0]) if payment.callbacks else "",
                status,
                amount_xaf,
                _transaction_id(payload),
            )
            _not_applied_event(
                order=order,
                payment=payment,
                actor=actor,
                status=status,
                amount_xaf=amount_xaf,
                payload=payload,
            )
            return CallbackResult(payment, CallbackOutcome.NOT_APPLIED)
        payment.status = status
        payment.callbacks = [*payment.callbacks, payload]
        if status == Payment.Status.SUCCEEDED:
            payment.received_xaf = amount_xaf
            payment.paid_at = timezone.now()
        payment.save(update_fields=["status", "callbacks", "received_xaf", "paid_at", "updated_at"])
        _payment_event(
            order=order, payment=payment, actor=actor, amount_xaf=amount_xaf, requested_xaf=payment.amount_xaf
        )
        if status == Payment.Status.SUCCEEDED:
            _settle(order=order, payment=payment, actor=actor)
    return CallbackResult(payment, CallbackOutcome.APPLIED)


def _not_applied_event(
    *, order: Order, payment: Payment, actor: Actor, status: str, amount_xaf: int, payload: dict[str, Any]
) -> None:
    """Put a callback that was not applied on the order's timeline, once per distinct callback
    (a provider delivering it again adds nothing). The provider may hold money the order does not
    show (a second success, a success after a failure): staff reconcile it from the order page,
    not from the web servers' logs. The payment itself is unchanged: its first final callback
    decided it, and stays its `callbacks[0]`."""
    said = {
        "payment_id": str(payment.pk),
        "not_applied": True,
        "status": status,
        "amount_xaf": amount_xaf if status == Payment.Status.SUCCEEDED else 0,
        "transaction_id": _transaction_id(payload),
    }
    if OrderEvent.objects.filter(order=order, kind=OrderEvent.Kind.PAYMENT, data__contains=said).exists():
        return
    _event(
        order=order,
        kind=OrderEvent.Kind.PAYMENT,
        actor=actor,
        data={
            **said,
            "provider": payment.provider,
            "reference": payment.provider_reference,
            "payment_status": payment.status,
            "received_xaf": payment.received_xaf,
        },
    )


def _transaction_id(payload: Any) -> str:
    value = payload.get("transaction_id") if isinstance(payload, dict) else None
    return "" if value is None else str(value)


def _same_callback(payment: Payment, *, status: str, amount_xaf: int, payload: dict[str, Any]) -> bool:
    """Is this callback the one that decided `payment` (a final one), sent again?

    The same status, the same amount received (a failure carries none) and the same provider
    transaction id as the deciding callback (none when money was recorded without a callback).
    """
    if status != payment.status:
        return False
    if status == Payment.Status.SUCCEEDED and amount_xaf != payment.received_xaf:
        return False
    decided_by = _transaction_id(payment.callbacks[0]) if payment.callbacks else ""
    return _transaction_id(payload) == decided_by


def _payment_event(*, order: Order, payment: Payment, actor: Actor, amount_xaf: int, **extra: Any) -> None:
    _event(
        order=order,
        kind=OrderEvent.Kind.PAYMENT,
        actor=actor,
        data={
            "payment_id": str(payment.pk),
            "provider": payment.provider,
            "reference": payment.provider_reference,
            "status": payment.status,
            "amount_xaf": amount_xaf,
            **extra,
        },
    )


def _settle(*, order: Order, payment: Payment, actor: Actor) -> None:
    """After `payment` succeeded (its order row locked): mark the order paid once successful
    payments cover its total, and flag money that does not fit the order for Finance.

    Money is always kept as received. It is flagged `needs_refund` (the payment's column, for
    Finance's list, and a note event on the timeline) when it came for an order expired, cancelled
    or refunded, when it takes what the order received past its total (a second successful
    payment, a callback for more), or when it is not the amount that was requested.
    """
    received = (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).aggregate(
            total=Sum("received_xaf")
        )["total"]
        or 0
    )
    if order.payment_status == PaymentStatus.UNPAID and received >= order.total_xaf:
        order.payment_status = PaymentStatus.PAID
        order.save(update_fields=["payment_status", "updated_at"])
    reasons = []
    if order.status in MONEY_NOT_EXPECTED:
        reasons.append(f"order_{order.status}")
    elif received > order.total_xaf:
        reasons.append("overpaid")
    if payment.received_xaf != payment.amount_xaf:
        reasons.append("amount_differs")
    if reasons:
        _flag_for_refund(order=order, payment=payment, actor=actor, reasons=reasons, received=received)


def _flag_for_refund(
    *, order: Order, payment: Payment, actor: Actor, reasons: list[str], received: int
) -> None:
    """Flag `payment` `needs_refund` for Finance, with a note event on the timeline saying why."""
    payment.needs_refund = True
    payment.refund_flagged_at = timezone.now()  # Finance counts the days waiting from here
    payment.save(update_fields=["needs_refund", "refund_flagged_at", "updated_at"])
    log.warning("payment %s of order %s needs a refund: %s", payment.pk, order.number, ", ".join(reasons))
    _event(
        order=order,
        kind=OrderEvent.Kind.NOTE,
        actor=actor,
        data={
            "needs_refund": True,
            "payment_id": str(payment.pk),
            "reasons": reasons,
            "requested_xaf": payment.amount_xaf,
            "received_xaf": payment.received_xaf,
            "order_received_xaf": received,
            "order_total_xaf": order.total_xaf,
        },
    )


def _flag_money_received(*, order: Order, actor: Actor) -> None:
    """On cancel (its order row locked): the money the order had received is owed back, as money
    landing after the cancel is (`_settle`). Without this, a callback and a cancel at the same
    instant left a refund owed or not depending on which took the order's lock first. Payments
    already flagged, or whose refund Finance settled, are left as they are."""
    succeeded = list(Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED))
    received = sum(p.received_xaf or 0 for p in succeeded)
    for payment in succeeded:
        if not payment.needs_refund and payment.refund_settled_at is None:
            reasons = [f"order_{S.CANCELLED}"]
            _flag_for_refund(order=order, payment=payment, actor=actor, reasons=reasons, received=received)


def payment_refund_settle(*, payment: Payment, actor: Actor, note: str) -> Payment:
    """Record that Finance settled the refund a payment was flagged for (`needs_refund`): the
    money went back to the customer, or was otherwise dealt with, as `note` says (e.g. the
    transfer's reference). Clears the flag, keeps who and when on the payment, and writes a note
    event on the order's timeline.

    Staff need `orders.refund_order` (Finance); only staff and the system settle refunds.
    Refused with RefundNotOwed (409 `refund_not_owed`) when the payment needs no refund: never
    flagged, or already settled (the message says when), so a second settle changes nothing.
    """
    actor.require_if_staff("orders.refund_order")
    if actor.role not in (STAFF, SYSTEM):
        raise NotAllowed(_("Only staff settle refunds."))
    note = note.strip()
    if not note:
        raise InvalidInput(_("Say how the refund was settled (e.g. the transfer's reference)."), field="note")
    with transaction.atomic(), acting_for(actor, "refund settled"):
        # Lock order, as everywhere: the order row, then the payment row. Two settles of one
        # payment queue here; the second finds the flag cleared.
        order = core.locked(Order.all_objects, payment.order_id)
        payment = core.locked(Payment.objects, payment.pk)
        if not payment.needs_refund:
            if payment.refund_settled_at is not None:
                raise RefundNotOwed(
                    Text(
                        gettext_noop("This refund was already settled on %(when)s."),
                        when=f"{timezone.localtime(payment.refund_settled_at):%Y-%m-%d %H:%M}",
                    ),
                    settled_at=payment.refund_settled_at.isoformat(),
                )
            raise RefundNotOwed(_("This payment needs no refund."))
        payment.needs_refund = False
        payment.refund_settled_at = timezone.now()
        payment.refund_settled_by = actor.user if getattr(actor.user, "pk", None) else None
        payment.save(update_fields=["needs_refund", "refund_settled_at", "refund_settled_by", "updated_at"])
        _event(
            order=order,
            kind=OrderEvent.Kind.NOTE,
            actor=actor,
            data={
                "refund_settled": True,
                "payment_id": str(payment.pk),
                "received_xaf": payment.received_xaf,
                "note": note[:2000],
            },
        )
    log.info("refund of payment %s (order %s) settled by %s", payment.pk, order.number, actor)
    return payment


# --- Customers ----------------------------------------------------------------------------------

CUSTOMER_PHONE = "orders_customer_phone_live_uniq"


def _checked_customer(*, phone: str, name: str) -> str:
    """The phone number normalised (E.164), once it and the name are known to be valid."""
    try:
        phone = normalize_cm_phone(phone)
    except ValidationError as exc:
        raise InvalidInput(validation_text(exc), field="phone") from None
    if not name.strip():
        raise InvalidInput(_("The customer's name is required."), field="name")
    return phone


def customer_get_or_create(
    *, phone: str, name: str, actor: Actor, zone: Zone | None = None, address: str = ""
) -> Customer:
    """The live customer with this phone number, or a new one: never two for one number.

    Two first orders from the same new number at the same moment both miss the lookup; the
    partial unique index lets one insert through, the other's insert fails on it (after waiting
    for the first to commit) and it takes the customer the first one made. An existing
    customer's name and address are kept (the storefront's spelling may vary).
    """
    phone = _checked_customer(phone=phone, name=name)
    existing = Customer.objects.filter(phone=phone).first()
    if existing is not None:
        return existing
    customer = Customer(phone=phone, name=name.strip()[:200], zone=zone, default_address=address[:2000])
    try:
        with transaction.atomic(), acting_for(actor, "customer created"):
            customer.save()
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != CUSTOMER_PHONE:
            raise
        return Customer.objects.get(phone=phone)
    return customer


# --- Notes, and soft delete / restore of orders --------------------------------------------------


def order_add_note(*, order: Order, note: str, actor: Actor) -> OrderEvent:
    """Add a note to the order's timeline (Support: what the customer said, what was promised)."""
    actor.require_if_staff("orders.add_order_note")
    if actor.role not in (STAFF, SYSTEM):
        raise NotAllowed(_("Only staff can add notes to orders."))
    note = note.strip()
    if not note:
        raise InvalidInput(_("The note is empty."), field="note")
    with transaction.atomic(), acting_for(actor, "order note"):
        # A deleted order takes no new notes (it stays as it was deleted): restore it first.
        order = core.locked(
            Order.objects,
            order.pk,
            gone=Text(gettext_noop("This order is deleted: restore it before adding a note.")),
        )
        return _event(order=order, kind=OrderEvent.Kind.NOTE, actor=actor, data={"note": note[:2000]})


def order_soft_delete(*, order: Order, actor: Actor, reason: str = "order deleted") -> Order:
    """Soft-delete a finished order; an open order holds stock and is cancelled instead."""
    actor.require_if_staff("orders.delete_order")
    with transaction.atomic(), acting_for(actor, reason):
        order = core.locked(Order.objects, order.pk)
        if order.status in OPEN_STATUSES:
            raise Conflict(_("An open order cannot be deleted: cancel it first (it releases the stock)."))
        core.refuse_if_in_use(order)
        order.delete()
    return order


def order_hard_delete(*, order: Order, actor: Actor, reason: str = "deleted for good") -> None:
    """Remove a finished order for good (superusers). An open order is refused: its items would
    go with it but not its stock reservation, which only a cancel or an expiry releases."""
    with transaction.atomic():
        order = core.locked(Order.all_objects, order.pk)
        if order.status in OPEN_STATUSES:
            raise Conflict(_("An open order cannot be deleted: cancel it first (it releases the stock)."))
        core.tracked_hard_delete(obj=order, actor=actor, reason=reason)


def order_restore(*, order: Order, actor: Actor, reason: str = "order restored") -> Order:
    """Bring back a deleted order. Its vendor, customer and zone must be live (deleting them
    was allowed once no live order held them): each is key-share-locked until the restore
    commits, as a placement locks them, so a delete of one in flight is waited for and the
    restore refused (`invalid` on that field), a later one finds the order (in_use)."""
    actor.require_if_staff("orders.change_order")
    parents = (
        (Vendor, order.vendor_id, "vendor", _("No such vendor.")),
        (Customer, order.customer_id, "customer", _("This customer no longer exists.")),
        (Zone, order.zone_id, "zone", _("This delivery zone no longer exists.")),
    )
    with transaction.atomic():
        for model, pk, field, gone in parents:
            if core.live_share_locked(model, pk) is None:
                raise InvalidInput(gone, field=field)
        return core.restore(order, actor=actor, reason=reason)  # type: ignore[return-value]


# --- Zones --------------------------------------------------------------------------------------

ZONE_EDITABLE_FIELDS = ("city", "name", "delivery_fee_xaf")
ZONE_CONSTRAINT = "orders_zone_city_name_live_uniq"


def _zone_taken() -> ZoneTaken:
    return ZoneTaken(_("This city already has a zone with this name."), field="name")


def _check_zone(zone: Zone) -> None:
    validated(zone)
    if zone.delivery_fee_xaf < 0:
        raise InvalidInput(_("The delivery fee cannot be negative."), field="delivery_fee_xaf")
    if Zone.objects.filter(city=zone.city, name=zone.name).exclude(pk=zone.pk).exists():
        raise _zone_taken()


def zone_create(*, city: str, name: str, delivery_fee_xaf: int, actor: Actor) -> Zone:
    actor.require_if_staff("orders.add_zone")
    with transaction.atomic(), acting_for(actor, "zone created"):
        zone = Zone(city=city, name=name, delivery_fee_xaf=delivery_fee_xaf)
        _check_zone(zone)
        with unique_or(_zone_taken(), ZONE_CONSTRAINT):
            zone.save()
    return zone


def zone_update(*, zone: Zone, data: dict[str, Any], actor: Actor) -> Zone:
    """Change a zone; orders already placed keep the fee they were charged."""
    core.refuse_unknown_fields(data, ZONE_EDITABLE_FIELDS)
    actor.require_if_staff("orders.change_zone")
    with transaction.atomic(), acting_for(actor, "zone updated"):
        zone = core.locked(Zone.objects, zone.pk, no_key=True)
        if not core.model_fields_update(zone, data):
            return zone
        _check_zone(zone)
        with unique_or(_zone_taken(), ZONE_CONSTRAINT):
            zone.save()
    return zone


def zone_soft_delete(*, zone: Zone, actor: Actor, reason: str = "zone deleted") -> Zone:
    """Refused (in_use) while live customers or orders use the zone."""
    actor.require_if_staff("orders.delete_zone")
    return core.soft_delete(zone, actor=actor, reason=reason)  # type: ignore[return-value]


def zone_restore(*, zone: Zone, actor: Actor, reason: str = "zone restored") -> Zone:
    actor.require_if_staff("orders.change_zone")
    if Zone.objects.filter(city=zone.city, name=zone.name).exists():
        raise _zone_taken()
    with unique_or(_zone_taken(), ZONE_CONSTRAINT):
        return core.restore(zone, actor=actor, reason=reason)  # type: ignore[return-value]


# --- Customers ----------------------------------------------------------------------------------

CUSTOMER_EDITABLE_FIELDS = ("name", "phone", "default_address", "zone")
CUSTOMER_CONSTRAINT = "orders_customer_phone_live_uniq"


def _phone_taken() -> PhoneTaken:
    return PhoneTaken(_("Another customer already has this phone number."), field="phone")


def _check_customer(customer: Customer) -> None:
    customer.phone = core.cm_phone(customer.phone)
    # Key-share-locked until the transaction ends: a zone soft delete in flight is waited for
    # (and refused here), a later one finds the customer (in_use). See core.live_share_locked.
    if customer.zone_id is not None and core.live_share_locked(Zone, customer.zone_id) is None:
        raise InvalidInput(_("This zone does not exist or was deleted."), field="zone")
    validated(customer)
    if Customer.objects.filter(phone=customer.phone).exclude(pk=customer.pk).exists():
        raise _phone_taken()


def customer_create(
    *, name: str, phone: str, actor: Actor, default_address: str = "", zone: Zone | None = None
) -> Customer:
    actor.require_if_staff("orders.add_customer")
    with transaction.atomic(), acting_for(actor, "customer created"):
        customer = Customer(name=name, phone=phone, default_address=default_address, zone=zone)
        _check_customer(customer)
        with unique_or(_phone_taken(), CUSTOMER_CONSTRAINT):
            customer.save()
    return customer


def customer_update(*, customer: Customer, data: dict[str, Any], actor: Actor) -> Customer:
    core.refuse_unknown_fields(data, CUSTOMER_EDITABLE_FIELDS)
    actor.require_if_staff("orders.change_customer")
    with transaction.atomic(), acting_for(actor, "customer updated"):
        # A rename takes FOR UPDATE, which waits for the placements in flight (their FOR KEY
        # SHARE): the orders they commit with the old name are seen below, and a later one reads
        # the new name under its lock and writes its own alias (okada_order_place v10).
        renaming = "name" in data
        customer = core.locked(Customer.objects, customer.pk, no_key=not renaming)
        old_name = customer.name
        if not core.model_fields_update(customer, data):
            return customer
        _check_customer(customer)
        with unique_or(_phone_taken(), CUSTOMER_CONSTRAINT):
            customer.save()
        if customer.name != old_name:
            # The orders that showed the old record name as their own no longer match the record:
            # the name search finds them through an alias (orders.models.CustomerAlias).
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO orders_customer_alias (vendor_id, customer_id, name) "
                    "SELECT DISTINCT vendor_id, customer_id, customer_name FROM orders_order "
                    "WHERE customer_id = %s AND customer_name = %s AND customer_name <> '' "
                    "ON CONFLICT DO NOTHING",
                    [customer.pk, old_name],
                )
    return customer


def customer_soft_delete(*, customer: Customer, actor: Actor, reason: str = "customer deleted") -> Customer:
    """Refused (in_use) while the customer has live orders."""
    actor.require_if_staff("orders.delete_customer")
    return core.soft_delete(customer, actor=actor, reason=reason)  # type: ignore[return-value]


def customer_restore(*, customer: Customer, actor: Actor, reason: str = "customer restored") -> Customer:
    """Bring back a deleted customer (their phone number free, their zone live: key-share-locked
    until the restore commits, so a zone delete in flight is waited for and the restore refused,
    a later one finds the customer, in_use)."""
    actor.require_if_staff("orders.change_customer")
    if Customer.objects.filter(phone=customer.phone).exists():
        raise _phone_taken()
    with transaction.atomic(), unique_or(_phone_taken(), CUSTOMER_CONSTRAINT):
        if customer.zone_id is not None and core.live_share_locked(Zone, customer.zone_id) is None:
            raise InvalidInput(_("This zone does not exist or was deleted."), field="zone")
        return core.restore(customer, actor=actor, reason=reason)  # type: ignore[return-value]
