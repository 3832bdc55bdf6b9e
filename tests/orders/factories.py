"""Orders test data. Zones and customers are plain rows (setup); orders are placed and moved along
their lifecycle by the services, so they carry reservations, ledger rows and events."""

from __future__ import annotations

from typing import Any

import factory

from okada.core.actors import Actor
from orders.models import Channel, Customer, Order, OrderStatus, Payment, PaymentMethod, Zone
from orders.services import order_place, order_transition, payment_record
from tests.catalog.factories import ProductFactory, VendorFactory


class ZoneFactory(factory.django.DjangoModelFactory[Zone]):
    class Meta:
        model = Zone

    city = "douala"
    name = factory.Sequence(lambda n: f"Quartier {n}")
    delivery_fee_xaf = 500


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Client {n}")
    phone = factory.Sequence(lambda n: f"+237690{n:06d}")
    default_address = "Rue de la Joie, Akwa"
    zone = factory.SubFactory(ZoneFactory)


class OrderFactory(factory.Factory[Order]):
    """`OrderFactory(vendor=v, items=[(product, 2)])`: placed by `order_place`.

    Without items it orders one unit of a new product of the vendor with 10 units in stock.
    """

    class Meta:
        model = Order

    zone = factory.SubFactory(ZoneFactory)
    # A vendor delivers in its own city: by default, a vendor of the zone's.
    vendor = factory.LazyAttribute(lambda o: VendorFactory(city=o.zone.city))
    customer = factory.SubFactory(CustomerFactory)
    items = factory.LazyAttribute(lambda o: [(ProductFactory(vendor=o.vendor, initial_stock=10), 1)])
    payment_method = PaymentMethod.CASH
    channel = Channel.STOREFRONT
    address = "Carrefour Ndokoti, près de la pharmacie"
    actor = factory.LazyFunction(lambda: Actor(role=Actor.STOREFRONT, label="web"))

    @classmethod
    def _create(cls, model_class: type[Order], *args: Any, **kwargs: Any) -> Order:
        return order_place(**kwargs)


S = OrderStatus
# The services' way from a new order to each status (staff drives; the system expires).
PATH_TO: dict[str, list[str]] = {
    S.PENDING: [],
    S.ACCEPTED: [S.ACCEPTED],
    S.PREPARING: [S.ACCEPTED, S.PREPARING],
    S.READY: [S.ACCEPTED, S.PREPARING, S.READY],
    S.OUT_FOR_DELIVERY: [S.ACCEPTED, S.PREPARING, S.READY, S.OUT_FOR_DELIVERY],
    S.DELIVERED: [S.ACCEPTED, S.PREPARING, S.READY, S.OUT_FOR_DELIVERY, S.DELIVERED],
    S.CANCELLED: [S.CANCELLED],
    S.EXPIRED: [S.EXPIRED],
    S.REFUNDED: [S.ACCEPTED, S.PREPARING, S.READY, S.OUT_FOR_DELIVERY, S.DELIVERED, S.REFUNDED],
}


def advance(order: Order, to: str) -> Order:
    """Walk `order` from pending to `to` through the services."""
    for step in PATH_TO[to]:
        actor = Actor.system("test") if step == S.EXPIRED else Actor(role=Actor.STAFF, label="test")
        order = order_transition(order=order, to=step, actor=actor)
    return order


def order_in_status(status: str, **kwargs: Any) -> Order:
    if status == S.EXPIRED:
        kwargs.setdefault("payment_method", PaymentMethod.MTN_MOMO)
    return advance(OrderFactory.create(**kwargs), status)


def mobile_money_order(reference: str, **kwargs: Any) -> Order:
    """An order paid by MTN MoMo and its payment request (pending, under the provider's
    `reference`), as the storefront makes them."""
    order = OrderFactory(payment_method=PaymentMethod.MTN_MOMO, **kwargs)
    payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference=reference,
        amount_xaf=order.total_xaf,
        actor=Actor(role=Actor.STOREFRONT, label="web"),
    )
    return order


def payment_needing_refund(key: str = "cash-after-cancel", **kwargs: Any) -> Payment:
    """Cash received for a cancelled order: kept and flagged `needs_refund` by the services."""
    order = order_in_status(S.CANCELLED, **kwargs)
    return payment_record(
        order=order,
        provider=PaymentMethod.CASH,
        idempotency_key=key,
        amount_xaf=order.total_xaf,
        status=Payment.Status.SUCCEEDED,
        actor=Actor(role=Actor.STAFF, label="test"),
    )
