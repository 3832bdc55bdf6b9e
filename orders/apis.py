"""Order endpoints of `/api/v1/`: zones, orders (list, read, place, transitions), payment callbacks.

A vendor credential reaches only its vendor's orders (anything else is a 404); the storefront
reaches the orders placed through the storefront. Writes go through orders.services only.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.models import City, Product
from okada.core.actors import Actor
from okada.core.api.auth import SignedBodyAuthentication
from okada.core.api.pagination import LIST_PARAMETERS, LIST_QUERY, CursorPage, page_of
from okada.core.api.serializers import (
    StrictSerializer,
    UtcDateTimeField,
    VisibleCharField,
    query_choice,
    query_datetime,
    query_text,
    utc,
    validated,
)
from okada.core.api.views import ApiView
from okada.core.errors import InvalidInput, NotFound
from okada.core.fields import normalize_cm_phone

from . import selectors, services
from .models import (
    MOBILE_MONEY,
    Channel,
    Order,
    OrderItem,
    OrderQuerySet,
    OrderStatus,
    Payment,
    PaymentMethod,
)

VENDOR, STOREFRONT, SYSTEM = Actor.VENDOR, Actor.STOREFRONT, Actor.SYSTEM
ORDER_ORDERINGS = ("-placed_at", "placed_at", "-updated_at", "updated_at")
ZONE_ORDERINGS = ("name", "-updated_at", "updated_at")

# --- Output -----------------------------------------------------------------------------------------


class CustomerOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    name = serializers.CharField(
        help_text="The name given for this order (`customer.name` when it was placed), not the name "
        "the marketplace holds for this phone number. Orders placed before the order kept its own "
        "show the customer's name."
    )
    phone = serializers.CharField()


class OrderItemOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    product = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    unit_price_xaf = serializers.IntegerField()
    quantity = serializers.IntegerField()
    line_total_xaf = serializers.IntegerField()


class PaymentOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    provider = serializers.ChoiceField(choices=PaymentMethod.choices)
    reference = serializers.CharField(help_text="Give it to the provider to collect the payment.")
    amount_xaf = serializers.IntegerField(help_text="The amount asked for (a request) or recorded (cash).")
    status = serializers.ChoiceField(
        choices=Payment.Status.choices,
        help_text="`succeeded`: money arrived, `received_xaf` says how much (it may differ from "
        "`amount_xaf`); whether the order is paid is the order's `payment_status`.",
    )
    received_xaf = serializers.IntegerField(
        allow_null=True, help_text="The amount that actually arrived; null unless the payment succeeded."
    )
    needs_refund = serializers.BooleanField(
        help_text="Money received that does not fit the order (not the amount asked for, more than "
        "the total, or after expiry or cancellation): kept, and owed back to the customer until "
        "Finance settles it."
    )
    paid_at = UtcDateTimeField(allow_null=True)


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": str(payment.pk),
        "provider": payment.provider,
        "reference": payment.provider_reference,
        "amount_xaf": payment.amount_xaf,
        "status": payment.status,
        "received_xaf": payment.received_xaf,
        "needs_refund": payment.needs_refund,
        "paid_at": utc(payment.paid_at),
    }


class OrderOut(serializers.Serializer[Any]):
    """Declared for the schema; `to_representation` builds the dict directly (fast lists)."""

    id = serializers.UUIDField()
    number = serializers.CharField()
    vendor = serializers.UUIDField()
    customer = CustomerOut()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    channel = serializers.ChoiceField(choices=Channel.choices)
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    payment_status = serializers.CharField()
    subtotal_xaf = serializers.IntegerField()
    delivery_fee_xaf = serializers.IntegerField()
    total_xaf = serializers.IntegerField()
    address = serializers.CharField()
    zone = serializers.UUIDField()
    note = serializers.CharField()
    placed_at = UtcDateTimeField()
    expires_at = UtcDateTimeField(allow_null=True, help_text="Unpaid mobile-money orders expire then.")
    updated_at = UtcDateTimeField()
    items = OrderItemOut(many=True)
    payments = PaymentOut(
        many=True, help_text="For mobile money, the payment request the customer must approve."
    )

    def to_representation(self, order: Order) -> dict[str, Any]:
        return order_json(order)


def order_json(
    order: Order, *, items: list[OrderItem] | None = None, payments: list[Payment] | None = None
) -> dict[str, Any]:
    """An order with its items and payments (prefetched, or given)."""
    customer = order.customer
    return {
        "id": str(order.pk),
        "number": order.number,
        "vendor": str(order.vendor_id),
        # The name given with this order, not the customer record's (shared by every vendor).
        "customer": {"id": str(customer.pk), "name": order.shown_customer_name, "phone": customer.phone},
        "status": order.status,
        "channel": order.channel,
        "payment_method": order.payment_method,
        "payment_status": order.payment_status,
        "subtotal_xaf": order.subtotal_xaf,
        "delivery_fee_xaf": order.delivery_fee_xaf,
        "total_xaf": order.total_xaf,
        "address": order.address,
        "zone": str(order.zone_id),
        "note": order.note,
        "placed_at": utc(order.placed_at),
        "expires_at": utc(order.expires_at),
        "updated_at": utc(order.updated_at),
        "items": [
            {
                "id": str(item.pk),
                "product": str(item.product_id),
                "sku": item.sku,
                "name": item.name,
                "unit_price_xaf": item.unit_price_xaf,
                "quantity": item.quantity,
                "line_total_xaf": item.line_total_xaf,
            }
            for item in (order.items.all() if items is None else items)
        ],
        "payments": [payment_json(p) for p in (order.payments.all() if payments is None else payments)],
    }


class ZoneOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    city = serializers.ChoiceField(choices=City.choices)
    name = serializers.CharField()
    delivery_fee_xaf = serializers.IntegerField()
    updated_at = UtcDateTimeField()

    def to_representation(self, zone: dict[str, Any]) -> dict[str, Any]:
        """`zone`: a row of ZONE_COLUMNS (building model instances cost about 0.1-0.2 ms a page)."""
        return {
            "id": str(zone["id"]),
            "city": zone["city"],
            "name": zone["name"],
            "delivery_fee_xaf": zone["delivery_fee_xaf"],
            "updated_at": utc(zone["updated_at"]),
        }


ZONE_COLUMNS = ("id", "city", "name", "delivery_fee_xaf", "updated_at")


# --- Input ------------------------------------------------------------------------------------------


class CustomerIn(StrictSerializer):
    phone = serializers.CharField(max_length=32, help_text="Cameroonian mobile number (+237...).")
    name = VisibleCharField(max_length=200)

    def validate_phone(self, value: str) -> str:
        # The service checks it too; here its error keeps its path (customer.phone), as the others.
        normalize_cm_phone(value)
        return value


class OrderItemIn(StrictSerializer):
    read_only_names = ("id", "sku", "name", "unit_price_xaf", "line_total_xaf")  # the snapshot

    product = serializers.UUIDField()
    quantity = serializers.IntegerField(min_value=1, max_value=services.MAX_QUANTITY)


class OrderPlaceIn(StrictSerializer):
    read_only_names = (
        "id",
        "number",
        "status",
        "channel",
        "payment_status",
        "subtotal_xaf",
        "delivery_fee_xaf",
        "total_xaf",
        "placed_at",
        "expires_at",
        "updated_at",
        "payments",
    )

    vendor = serializers.UUIDField(
        required=False, help_text="Required for the storefront; a vendor places for itself."
    )
    customer = CustomerIn()
    items = OrderItemIn(many=True, min_length=1, max_length=services.MAX_LINES)  # type: ignore[call-arg]
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    address = serializers.CharField(max_length=500)
    zone = serializers.UUIDField()
    note = serializers.CharField(max_length=1000, allow_blank=True, required=False)


class TransitionIn(StrictSerializer):
    to = serializers.ChoiceField(choices=OrderStatus.choices)
    note = serializers.CharField(max_length=500, allow_blank=True, required=False)


class CallbackIn(StrictSerializer):
    reference = serializers.CharField(max_length=100, help_text="The payment reference Okada gave.")
    status = serializers.ChoiceField(choices=[Payment.Status.SUCCEEDED, Payment.Status.FAILED])
    amount_xaf = serializers.IntegerField(min_value=1, max_value=10**12, required=False)
    transaction_id = serializers.CharField(max_length=100, required=False, help_text="The provider's own id.")


class CallbackOut(serializers.Serializer[Any]):
    reference = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Payment.Status.choices, help_text="The payment's status after this callback."
    )
    outcome = serializers.ChoiceField(
        choices=services.CallbackOutcome.ALL,
        help_text="`applied`: this callback decided the payment. `repeat`: the callback that decided "
        "it, again; nothing changed. `not_applied`: the payment was already decided otherwise "
        "(another status, amount or transaction id); the payment is unchanged, and the callback is "
        "logged and put on the order's timeline for reconciliation.",
    )


# --- Views --------------------------------------------------------------------------------------------

ORDER_PLACE_EXAMPLE = {
    "vendor": "0192f6d2-8b1c-7aaa-8b51-3f2b9c1d4e50",
    "customer": {"phone": "+237677123456", "name": "Awa Mbarga"},
    "items": [{"product": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f", "quantity": 2}],
    "payment_method": "mtn_momo",
    "address": "Carrefour Ndokoti, près de la pharmacie",
    "zone": "0192f6d2-8b1c-7bbb-8b51-3f2b9c1d4e51",
}


# An order whose mobile-money payment succeeded for less than asked: the money is kept
# (`received_xaf`) and owed back (`needs_refund`), and the order is still unpaid.
ORDER_EXAMPLE = {
    "id": "0192f6d2-8b1c-7ddd-8b51-3f2b9c1d4e52",
    "number": "OK-0000042",
    "vendor": "0192f6d2-8b1c-7aaa-8b51-3f2b9c1d4e50",
    "customer": {
        "id": "0192f6d2-8b1c-7eee-8b51-3f2b9c1d4e53",
        "name": "Awa Mbarga",
        "phone": "+237677123456",
    },
    "status": "pending",
    "channel": "storefront",
    "payment_method": "mtn_momo",
    "payment_status": "unpaid",
    "subtotal_xaf": 14000,
    "delivery_fee_xaf": 1000,
    "total_xaf": 15000,
    "address": "Carrefour Ndokoti, près de la pharmacie",
    "zone": "0192f6d2-8b1c-7bbb-8b51-3f2b9c1d4e51",
    "note": "",
    "placed_at": "2026-11-22T09:30:00.000000Z",
    "expires_at": "2026-11-22T10:00:00.000000Z",
    "updated_at": "2026-11-22T09:31:10.000000Z",
    "items": [
        {
            "id": "0192f6d2-8b1c-7fff-8b51-3f2b9c1d4e54",
            "product": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
            "sku": "RIZ-25KG",
            "name": "Riz parfumé 25 kg",
            "unit_price_xaf": 7000,
            "quantity": 2,
            "line_total_xaf": 14000,
        }
    ],
    "payments": [
        {
            "id": "0192f6d2-8b1c-7a00-8b51-3f2b9c1d4e55",
            "provider": "mtn_momo",
            "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
            "amount_xaf": 15000,
            "status": "succeeded",
            "received_xaf": 100,
            "needs_refund": True,
            "paid_at": "2026-11-22T09:31:10.000000Z",
        }
    ],
}


class OrderScope(ApiView):
    """The orders a credential reaches: its vendor's, or the storefront's own."""

    def orders(self, **filters: Any) -> OrderQuerySet:
        if self.actor.role == VENDOR:
            return selectors.order_list(vendor_id=self.actor.vendor_id, **filters)
        return selectors.order_list(channel=Channel.STOREFRONT, **filters)

    def order(self, pk: uuid.UUID) -> Order:
        order = self.orders().filter(pk=pk).first()
        if order is None:
            raise NotFound(_("No such order."))
        return order


@extend_schema_view(
    get=extend_schema(
        operation_id="orders_list",
        summary="List orders",
        description="A vendor's own orders; for the storefront, the storefront's orders. Newest "
        "first by default.",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("status", str, enum=OrderStatus.values),
            OpenApiParameter(
                "q",
                str,
                description="An order number (`OK-0001234`, `ok1234`, `1234`), the customer's phone "
                "number in any spelling (`677 12 34 56`, `+237677123456`), or the customer's name as "
                "the order shows it (`jean-pierre ndongo`, `Ngo Biyong`): full-text, French and "
                "English, accents and case ignored, every word must match (`or` between words: "
                "either; a word's leading `-` is ignored, not a NOT). A term that reads as a number or a "
                "phone is one; text with no letter that is neither is a 400.",
            ),
            OpenApiParameter("ordering", str, enum=list(ORDER_ORDERINGS), description="Default -placed_at."),
        ],
        responses={200: page_of(OrderOut)},
        tags=["orders"],
    ),
    post=extend_schema(
        operation_id="orders_place",
        summary="Place an order",
        description="The storefront places an order for a customer given by phone and name (an "
        "existing customer with that number is reused, never created twice). Stock is reserved for "
        "every item or none (409 `out_of_stock` names the short items). For mobile money the "
        "answer holds the payment request (`payments`); unpaid, the order expires after the "
        "deadline. A vendor credential may place a phone order for its own shop.",
        request=OrderPlaceIn,
        responses={201: OrderOut},
        examples=[OpenApiExample("mobile money", value=ORDER_PLACE_EXAMPLE, request_only=True)],
        tags=["orders"],
    ),
)
class OrderListApi(OrderScope):
    required_scopes = {"GET": "orders:read", "POST": "orders:place"}
    allowed_roles = {"GET": {VENDOR, STOREFRONT}, "POST": {VENDOR, STOREFRONT}}
    query_params = {"GET": (*LIST_QUERY, "status", "q", "ordering")}

    def get(self, request: Request) -> Response:
        page = CursorPage(request, orderings=ORDER_ORDERINGS, default="-placed_at")
        orders = self.orders(
            status=query_choice(request, "status", OrderStatus.values),
            updated_since=query_datetime(request, "updated_since"),
            search=query_text(request, "q"),
        )
        rows = page.paginate(orders)
        return rows.response([order_json(o) for o in rows.rows])

    def post(self, request: Request) -> Response:
        d = validated(OrderPlaceIn, request.data)
        vendor_id = self._vendor_id(d.get("vendor"))
        items = [(item["product"], item["quantity"]) for item in d["items"]]
        if self.actor.role == VENDOR:
            self._own_products_only(vendor_id, items)
        placed = services.order_place_for_phone(
            vendor_id=vendor_id,
            phone=d["customer"]["phone"],
            name=d["customer"]["name"],
            zone_id=d["zone"],
            items=items,
            payment_method=d["payment_method"],
            channel=Channel.STOREFRONT if self.actor.role == STOREFRONT else Channel.PHONE,
            address=d["address"],
            note=d.get("note", ""),
            actor=self.actor,
        )
        return Response(
            order_json(placed.order, items=placed.items, payments=placed.payments),
            status=status.HTTP_201_CREATED,
            headers={"Location": request.build_absolute_uri(reverse("api-order", args=[placed.order.pk]))},
        )

    def _vendor_id(self, vendor_id: uuid.UUID | None) -> uuid.UUID:
        """The vendor named (the storefront) or the caller's own (a vendor); whether it exists
        is the placement's check."""
        if self.actor.role == VENDOR:
            if vendor_id is not None and vendor_id != self.actor.vendor_id:
                raise NotFound(_("No such vendor."))
            return uuid.UUID(str(self.actor.vendor_id))
        if vendor_id is None:
            raise InvalidInput(_("Say which vendor the order is for."), field="vendor")
        return vendor_id

    def _own_products_only(self, vendor_id: uuid.UUID, items: list[tuple[uuid.UUID, int]]) -> None:
        """A vendor naming another vendor's product gets a 404, as for any object not theirs."""
        ids = {pk for pk, _qty in items}
        if Product.objects.filter(vendor_id=vendor_id, pk__in=ids).count() != len(ids):
            raise NotFound(_("No such product."))


@extend_schema_view(
    get=extend_schema(
        operation_id="orders_retrieve",
        summary="Read an order",
        description="With its customer, items, totals and payment status. Another vendor's order is a "
        "404. Each payment says what was asked for (`amount_xaf`), what arrived (`received_xaf`) and "
        "whether it is owed back (`needs_refund`); the order is paid (`payment_status`) once what "
        "arrived covers its total.",
        responses={200: OrderOut},
        examples=[OpenApiExample("paid for less than asked", value=ORDER_EXAMPLE, response_only=True)],
        tags=["orders"],
    )
)
class OrderDetailApi(OrderScope):
    required_scopes = {"GET": "orders:read"}
    allowed_roles = {VENDOR, STOREFRONT}

    def get(self, request: Request, pk: uuid.UUID) -> Response:
        return Response(order_json(self.order(pk)))


class OrderTransitionApi(OrderScope):
    required_scopes = {"POST": "orders:write"}
    allowed_roles = {VENDOR, STOREFRONT}

    @extend_schema(
        operation_id="orders_transition",
        summary="Move an order along its lifecycle",
        description="pending → accepted → preparing → ready → out_for_delivery → delivered; "
        "cancelled from pending to ready (the storefront: only while pending). A refused move is a "
        "409 `invalid_transition` (`allowed` lists the possible ones), a 409 `awaiting_payment` (an "
        "unpaid mobile-money order may only be cancelled until it is paid) or a 403 "
        "`transition_not_allowed`.",
        request=TransitionIn,
        responses={200: OrderOut},
        examples=[
            OpenApiExample("accept", value={"to": "accepted", "note": "en préparation"}, request_only=True)
        ],
        tags=["orders"],
    )
    def post(self, request: Request, pk: uuid.UUID) -> Response:
        order = self.order(pk)
        data = validated(TransitionIn, request.data)
        services.order_transition(
            order=order,
            to=data["to"],
            note=data.get("note", ""),
            actor=self.actor,
        )
        return Response(order_json(self.order(pk)))


@extend_schema_view(
    get=extend_schema(
        operation_id="zones_list",
        summary="List delivery zones",
        description="The zones orders are delivered to, with their delivery fee.",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("city", str, enum=City.values),
            OpenApiParameter("ordering", str, enum=list(ZONE_ORDERINGS), description="Default name."),
        ],
        responses={200: page_of(ZoneOut)},
        tags=["catalog"],
    )
)
class ZoneListApi(ApiView):
    required_scopes = {"GET": "products:read"}
    query_params = {"GET": (*LIST_QUERY, "city", "ordering")}

    def get(self, request: Request) -> Response:
        page = CursorPage(request, orderings=ZONE_ORDERINGS, default="name")
        zones = selectors.zone_list(
            city=query_choice(request, "city", City.values),
            updated_since=query_datetime(request, "updated_since"),
        )
        rows = page.paginate(zones.values(*ZONE_COLUMNS))
        return rows.response(ZoneOut(rows.rows, many=True).data)


# --- Payment provider callbacks -----------------------------------------------------------------------

PROVIDERS = tuple(str(m) for m in MOBILE_MONEY)


class ProviderSignature(SignedBodyAuthentication):
    """HMAC-SHA256 of the body with the provider's secret (OKADA_<PROVIDER>_CALLBACK_SECRET)."""

    def signer(self, request: Request) -> tuple[str, str]:
        provider = request.parser_context["kwargs"]["provider"] if request.parser_context else ""
        return f"callback:{provider}", settings.OKADA_PAYMENT_CALLBACK_SECRETS.get(provider, "")


SIGNATURE_FORMAT = (
    "`sha256=` then the hex HMAC-SHA256 of the raw request body keyed with the provider's secret "
    "(hex digits in either case)."
)


class PaymentCallbackApi(ApiView):
    """Replay-safe: a payment is decided by its first final callback; a repeat changes nothing
    and says so (`outcome`). A bad signature is a 401 before anything is read or changed."""

    authentication_classes = [ProviderSignature]
    allowed_roles = {SYSTEM}
    # POST only (no OPTIONS, no HEAD): any other method is a 405 `Allow: POST` before the
    # signature is checked (ApiView.initial).
    http_method_names = ["post"]
    query_params = None  # a provider's callback URL may carry parameters of its own
    # Replay-safe by its payment reference without an Idempotency-Key (each delivery is answered
    # with what it did); a sender that adds one gets the first answer replayed, as on every POST.

    @extend_schema(
        operation_id="payments_callback",
        summary="Payment provider callback (MTN MoMo, Orange Money)",
        description="Signed: `X-Signature` is " + SIGNATURE_FORMAT + " The first final callback "
        "of a payment decides it; any later one changes nothing and is answered 200 (so the "
        "provider stops retrying) with `outcome`: `repeat` for the same callback again, "
        "`not_applied` for one that says otherwise (another status, amount or transaction id), "
        "which is logged as a warning naming the payment and put on the order's timeline "
        "(once). A success for another amount than requested is recorded as received "
        "(`received_xaf`) and flagged `needs_refund`; the order is paid only once what it "
        "received covers its total.",
        parameters=[
            OpenApiParameter("provider", str, OpenApiParameter.PATH, enum=list(PROVIDERS)),
            OpenApiParameter(
                "X-Signature",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description=SIGNATURE_FORMAT,
            ),
        ],
        request=CallbackIn,
        responses={200: CallbackOut},
        examples=[
            OpenApiExample(
                "paid",
                value={
                    "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
                    "status": "succeeded",
                    "amount_xaf": 3500,
                    "transaction_id": "MTN-TX-0001",
                },
                request_only=True,
            ),
            OpenApiExample(
                "applied",
                value={
                    "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
                    "status": "succeeded",
                    "outcome": "applied",
                },
                response_only=True,
            ),
            OpenApiExample(
                "repeat",
                value={
                    "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
                    "status": "succeeded",
                    "outcome": "repeat",
                },
                response_only=True,
            ),
            OpenApiExample(
                "not applied",
                value={
                    "reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21",
                    "status": "succeeded",
                    "outcome": "not_applied",
                },
                response_only=True,
            ),
        ],
        tags=["payments"],
        auth=[],
    )
    def post(self, request: Request, provider: str) -> Response:
        if provider not in PROVIDERS:
            raise NotFound()
        d = validated(CallbackIn, request.data)
        if d["status"] == Payment.Status.SUCCEEDED and "amount_xaf" not in d:
            raise InvalidInput(_("A successful payment needs its amount."), field="amount_xaf")
        result = services.payment_apply_callback(
            provider=provider,
            provider_reference=d["reference"],
            status=d["status"],
            amount_xaf=d.get("amount_xaf", 0),
            payload=dict(request.data),
        )
        payment = result.payment
        return Response(
            {"reference": payment.provider_reference, "status": payment.status, "outcome": result.outcome}
        )
