"""Operations screens for orders: follow, fix (through services), see the timeline."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from okada.core.admin import ReadOnlyAdmin, TrackedAdmin, run_per_object, staff_actor

from . import services
from .models import OPEN_STATUSES, Customer, Order, OrderEvent, OrderItem, OrderStatus, Payment, Zone


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ("sku", "name", "unit_price_xaf", "quantity", "line_total_xaf")
    readonly_fields = fields


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ("provider", "provider_reference", "amount_xaf", "status", "paid_at")
    readonly_fields = fields


@admin.register(Zone)
class ZoneAdmin(TrackedAdmin):
    list_display = ("name", "city", "delivery_fee_xaf")
    list_filter = ("city",)
    search_fields = ("name",)


@admin.register(Customer)
class CustomerAdmin(TrackedAdmin):
    list_display = ("name", "phone", "zone")
    search_fields = ("name", "phone")
    list_select_related = ("zone",)
    autocomplete_fields = ("zone",)
    show_full_result_count = False


@admin.register(Order)
class OrderAdmin(TrackedAdmin):
    list_display = (
        "number",
        "vendor",
        "customer",
        "status",
        "payment_method",
        "payment_status",
        "total_xaf",
        "placed_at",
    )
    list_filter = ("status", "payment_status", "payment_method", "channel")
    search_fields = ("number", "customer__phone")
    list_select_related = ("vendor", "customer")
    date_hierarchy = "placed_at"
    inlines = [OrderItemInline, PaymentInline]
    actions = ["restore_selected", "cancel_orders"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Orders change only through services (transitions, payments): the form is for reading.
        return [f.name for f in Order._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An open order holds stock: cancel it (which releases the stock) rather than delete it.
        if obj is not None and obj.status in OPEN_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        open_orders = queryset.filter(status__in=OPEN_STATUSES)
        if open_orders.exists():
            self.message_user(request, _("Open orders are not deleted: cancel them first."), messages.WARNING)
        super().delete_queryset(request, queryset.exclude(status__in=OPEN_STATUSES))

    @admin.action(description=_("Cancel selected orders (releases stock)"))
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset.filter(deleted_at__isnull=True).exclude(status=OrderStatus.CANCELLED),
            lambda o: services.order_cancel(order=o, actor=actor, note="cancelled in admin"),
        )


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "order_id", "kind", "from_status", "to_status", "actor")
    list_filter = ("kind",)
    show_full_result_count = False
