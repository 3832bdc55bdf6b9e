"""Operations screens for the catalog. Actions call services; nothing here writes models itself."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from okada.core.actors import Actor
from okada.core.admin import ReadOnlyAdmin, TrackedAdmin
from okada.core.errors import DomainError

from . import services
from .models import Category, Product, Stock, StockMovement, Vendor, VendorMember


def staff_actor(request: HttpRequest) -> Actor:
    return Actor(role=Actor.STAFF, user=request.user)


def run_per_object(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, action: Any
) -> None:
    """Apply a service to each selected row; report successes and domain errors to the user."""
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except DomainError as exc:
            model_admin.message_user(request, f"{obj}: {exc}", messages.ERROR)
    if done:
        model_admin.message_user(request, _("%(n)d row(s) updated.") % {"n": done}, messages.SUCCESS)


class VendorMemberInline(admin.TabularInline):
    model = VendorMember
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Vendor)
class VendorAdmin(TrackedAdmin):
    list_display = ("name", "slug", "city", "status", "phone", "commission_bps", "deleted_at")
    list_filter = ("status", "city")
    search_fields = ("name", "slug", "phone", "email")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [VendorMemberInline]
    actions = ["restore_selected", "activate", "suspend"]

    @admin.action(description=_("Activate selected vendors"))
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(self, request, queryset, lambda v: services.vendor_activate(vendor=v, actor=actor))

    @admin.action(description=_("Suspend selected vendors"))
    def suspend(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(self, request, queryset, lambda v: services.vendor_suspend(vendor=v, actor=actor))


@admin.register(Category)
class CategoryAdmin(TrackedAdmin):
    list_display = ("name_fr", "name_en", "slug", "parent", "position")
    search_fields = ("name_fr", "name_en", "slug")
    list_select_related = ("parent",)


@admin.register(Product)
class ProductAdmin(TrackedAdmin):
    list_display = ("name", "sku", "vendor", "price_xaf", "is_active", "updated_at")
    list_filter = ("is_active", "unit")
    search_fields = ("name", "sku")
    list_select_related = ("vendor",)
    autocomplete_fields = ("vendor", "category")
    readonly_fields = ("id", "version", "created_at", "updated_at", "deleted_at")
    show_full_result_count = False  # a million products: no COUNT(*) on every page


@admin.register(Stock)
class StockAdmin(ReadOnlyAdmin):
    """Stock changes only through adjustments and counts, which write the ledger."""

    list_display = ("product", "vendor", "on_hand", "reserved", "updated_at")
    list_select_related = ("product", "vendor")
    search_fields = ("product__sku", "product__name")
    show_full_result_count = False


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "delta", "product_id", "reference", "actor")
    list_filter = ("kind",)
    search_fields = ("reference",)
    show_full_result_count = False
