"""Operations screens for the catalog. Actions call services; nothing here writes models itself."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from okada.core.admin import ReadOnlyAdmin, TrackedAdmin, run_per_object, staff_actor

from . import services
from .models import Category, Product, Stock, StockMovement, Vendor, VendorMember


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

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The vendor of an existing product never changes (its stock and ledger belong to it).
        return (*self.readonly_fields, "vendor") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        """Through the services: a new product gets its Stock row, an edit bumps the version.

        The ModelForm has already checked fields and constraints (live SKU uniqueness, prices),
        so a DomainError here means a concurrent change, and the transaction is rolled back.
        """
        actor = staff_actor(request)
        data = {f: form.cleaned_data[f] for f in services.PRODUCT_EDITABLE_FIELDS if f in form.cleaned_data}
        if change:
            saved = services.product_update(product=obj, data=data, actor=actor)
        else:
            saved = services.product_create(vendor=form.cleaned_data["vendor"], actor=actor, **data)
        obj.pk, obj.version = saved.pk, saved.version

    def restore_object(self, request: HttpRequest, obj: Product) -> None:
        services.product_restore(product=obj, actor=staff_actor(request))


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
