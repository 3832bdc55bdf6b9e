"""Operations screens for the catalog. Every write calls a service; nothing here saves a model."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from okada.core import dashboard
from okada.core.admin import (
    AutocompleteFilter,
    BigTableMixin,
    NewestFirstPaginator,
    ReadOnlyAdmin,
    TrackedAdmin,
    change_url,
    changelist_url,
    is_autocomplete,
    object_or_404,
    run_per_object,
    staff_actor,
)
from okada.core.display import actor_label, badge, money, reason_label
from okada.core.errors import DomainError
from okada.core.querysets import few_keys

from . import selectors, services
from .models import Category, Product, Stock, StockMovement, Vendor, VendorMember
from .skus import normalize_sku

# --- Vendors ------------------------------------------------------------------------------------


@admin.register(Vendor)
class VendorAdmin(TrackedAdmin):
    list_display = ("name", "city", "status_badge", "phone", "commission_bps", "created_at")
    list_filter = ("status", "city")
    # Rendering the rows is nearly all of the list's time (100 rows: about 200 ms at the "large"
    # scale): 25, as the big tables' lists (BigTableMixin). 1,000 vendors still count exactly.
    list_per_page = 25
    search_fields = ("name", "slug", "phone", "email")
    prepopulated_fields = {"slug": ("name",)}
    actions = ["delete_selected", "restore_selected", "hard_delete_selected", "activate", "suspend"]
    revert_fields = services.VENDOR_EDITABLE_FIELDS
    readonly_fields = ("status", "id", "created_at", "updated_at", "deleted_at")
    fields = ("name", "slug", "phone", "email", "city", "commission_bps", *readonly_fields)
    change_form_outer_after_template = "admin/catalog/vendor_panels.html"

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, vendor: Vendor) -> str:
        return badge(vendor.status, vendor.get_status_display())

    def create_object(self, request: HttpRequest, form: Any) -> Vendor:
        data = self.form_data(form, services.VENDOR_EDITABLE_FIELDS)
        return services.vendor_onboard(actor=staff_actor(request), **data)

    def update_object(self, request: HttpRequest, obj: Vendor, form: Any) -> Vendor:
        data = self.form_data(form, services.VENDOR_EDITABLE_FIELDS)
        return services.vendor_update(vendor=obj, data=data, actor=staff_actor(request))

    def delete_object(self, request: HttpRequest, obj: Vendor) -> None:
        services.vendor_soft_delete(vendor=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Vendor) -> None:
        services.vendor_restore(vendor=obj, actor=staff_actor(request))

    @admin.action(permissions=["change"], description=_("Activate selected vendors"))
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset,
            lambda v: services.vendor_activate(vendor=v, actor=actor),
            lambda n: ngettext("%(n)d vendor activated.", "%(n)d vendors activated.", n) % {"n": n},
        )

    @admin.action(permissions=["change"], description=_("Suspend selected vendors"))
    def suspend(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset,
            lambda v: services.vendor_suspend(vendor=v, actor=actor),
            lambda n: (
                ngettext(
                    "%(n)d vendor suspended: their products can no longer be ordered.",
                    "%(n)d vendors suspended: their products can no longer be ordered.",
                    n,
                )
                % {"n": n}
            ),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ):
        vendor = self.get_object(request, object_id)
        extra = {
            "okada_panels": dashboard.panels(request, page="catalog.vendor", obj=vendor) if vendor else []
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


class MemberForm(forms.ModelForm):
    class Meta:
        model = VendorMember
        fields = ("vendor", "user", "role")


@admin.register(VendorMember)
class VendorMemberAdmin(TrackedAdmin):
    list_display = ("user", "vendor", "role")
    list_filter = ("role", ("vendor", AutocompleteFilter))
    search_fields = ("user__username", "vendor__name")
    list_select_related = ("user", "vendor")
    autocomplete_fields = ("user", "vendor")
    form = MemberForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Who and for which vendor is the membership itself: change the role, or remove it.
        fixed = ("vendor", "user") if obj else ()
        return (*fixed, *super().get_readonly_fields(request, obj))

    def create_object(self, request: HttpRequest, form: Any) -> VendorMember:
        d = form.cleaned_data
        return services.vendor_member_add(
            vendor=d["vendor"], user=d["user"], role=d["role"], actor=staff_actor(request)
        )

    def update_object(self, request: HttpRequest, obj: VendorMember, form: Any) -> VendorMember:
        return services.vendor_member_update(
            member=obj, role=form.cleaned_data["role"], actor=staff_actor(request)
        )

    def delete_object(self, request: HttpRequest, obj: VendorMember) -> None:
        services.vendor_member_remove(member=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: VendorMember) -> None:
        services.vendor_member_restore(member=obj, actor=staff_actor(request))


# --- Categories ---------------------------------------------------------------------------------

# Each category's path from its root ("00001 Épicerie / 00003 Riz"), for the tree order: a
# recursive walk up per row, fine for a table of categories (hundreds of rows).
CATEGORY_PATH = RawSQL(
    """(WITH RECURSIVE up(parent_id, label, depth) AS (
            SELECT c.parent_id, lpad(c.position::text, 6, '0') || c.name_fr, 0
              FROM catalog_category c WHERE c.id = catalog_category.id
            UNION ALL
            SELECT p.parent_id, lpad(p.position::text, 6, '0') || p.name_fr, up.depth + 1
              FROM catalog_category p JOIN up ON p.id = up.parent_id WHERE up.depth < 20)
        SELECT string_agg(label, ' / ' ORDER BY depth DESC) FROM up)""",
    [],
)


@admin.register(Category)
class CategoryAdmin(TrackedAdmin):
    list_display = ("tree_name", "name_en", "slug", "position", "products_link")
    search_fields = ("name_fr", "name_en", "slug")
    list_select_related = ("parent",)
    autocomplete_fields = ("parent",)
    prepopulated_fields = {"slug": ("name_fr",)}
    revert_fields = services.CATEGORY_EDITABLE_FIELDS

    def get_ordering(self, request: HttpRequest) -> Any:
        # The tree order exists on this admin's own (annotated) queryset only, not on the
        # category choices of a product form.
        match = getattr(request, "resolver_match", None)
        if match and match.url_name == "catalog_category_changelist":
            return ["tree_path"]
        return super().get_ordering(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        manager = Category.objects if is_autocomplete(request) else Category.all_objects
        return manager.annotate(tree_path=CATEGORY_PATH).order_by("tree_path")

    @admin.display(description=_("category"), ordering="tree_path")
    def tree_name(self, category: Any) -> str:
        depth = (getattr(category, "tree_path", "") or "").count(" / ")
        return format_html(
            '<span style="padding-left:{}rem">{}{}</span>',
            depth * 1.5,
            "↳ " if depth else "",
            category.name_fr,
        )

    @admin.display(description=_("products"))
    def products_link(self, category: Category) -> str:
        return format_html(
            '<a href="{}">{}</a>', changelist_url(Product, category__id__exact=category.pk), _("see")
        )

    def create_object(self, request: HttpRequest, form: Any) -> Category:
        data = self.form_data(form, services.CATEGORY_EDITABLE_FIELDS)
        return services.category_create(actor=staff_actor(request), **data)

    def refuse_if_changed_since_opened(self, request: HttpRequest, obj: Any) -> None:
        # The save sends `parent`, so category_update takes the tree's lock: before the row's,
        # which this check takes. The other way round, saving a category (its row locked, waiting
        # for the tree) and saving one of its children (the tree held, waiting to share-lock its
        # parent, that row) at the same instant deadlocked: one of the two was a 500.
        services.category_tree_lock()
        super().refuse_if_changed_since_opened(request, obj)

    def update_object(self, request: HttpRequest, obj: Category, form: Any) -> Category:
        data = self.form_data(form, services.CATEGORY_EDITABLE_FIELDS)
        return services.category_update(category=obj, data=data, actor=staff_actor(request))

    def delete_object(self, request: HttpRequest, obj: Category) -> None:
        services.category_soft_delete(category=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Category) -> None:
        services.category_restore(category=obj, actor=staff_actor(request))


# --- Products -----------------------------------------------------------------------------------


class AdjustStockForm(forms.Form):
    delta = forms.IntegerField(label=_("change (units, + or -)"))
    reason = forms.CharField(label=_("reason"), max_length=255)


class CountStockForm(forms.Form):
    on_hand = forms.IntegerField(label=_("units counted"), min_value=0)
    expected_on_hand = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField(label=_("reason"), max_length=255, required=False)


class SkuFormField(forms.CharField):
    """A SKU read in Unicode NFC (catalog.skus) before the form checks its length and the
    model's constraints (the CHECK on NFC among them would refuse "E" + U+0301 typed for "É")."""

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        return normalize_sku(value) if isinstance(value, str) else value


#: The stock movements' search's first look (StockMovementAdmin.get_search_results): up to this
#: many matches are listed by their keys, more through the search itself.
SEARCH_PROBE = 1000


@admin.register(Product)
class ProductAdmin(BigTableMixin, TrackedAdmin):
    list_display = ("name", "sku", "vendor", "category", "price", "available", "is_active", "updated_at")
    list_filter = (
        ("vendor", AutocompleteFilter),
        ("category", AutocompleteFilter),
        "is_active",
    )
    search_fields = ("name",)  # shows the search box; the search itself is full-text (below)
    search_help_text = _(
        "Full-text search on name, description and SKU (accents ignored). Quoted words are looked "
        "for in that order in one vendor's products only (filter by vendor first)."
    )
    list_select_related = ("vendor", "category", "stock")
    autocomplete_fields = ("vendor", "category")
    readonly_fields = ("id", "version", "created_at", "updated_at", "deleted_at")
    revert_fields = services.PRODUCT_EDITABLE_FIELDS
    # Newest first by the UUID v7 key: an index scan, where ORDER BY name would sort 1M rows.
    ordering = ("-id",)
    narrowing_lookups = ("vendor__id__exact",)  # see BigTableMixin
    change_form_outer_after_template = "admin/catalog/product_stock.html"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        if not search_term.strip():
            return queryset, False
        if not selectors.search_looks_for_words(search_term):
            # It would find nothing, reading no product (ProductQuerySet.search): say why.
            messages.warning(
                request,
                _(
                    "“%(term)s” has no word to look for: products are found by the words of their "
                    "name, description or SKU."
                )
                % {"term": search_term.strip()},
            )
            return queryset.none(), False
        if any(request.GET.get(lookup) for lookup in self.narrowing_lookups):
            # One vendor's products, each tested (a thousand or so): quotes make a phrase.
            return queryset.search(search_term, one_vendor=True), False  # type: ignore[attr-defined]
        # Across vendors, newest first (the only order offered): the page is read by key among the
        # first matches up to its end, found as the storefront finds its page (quotes read as
        # words; selectors.product_search_first_keys says why).
        if is_autocomplete(request):
            per_page, page = AutocompleteJsonView.paginate_by or 20, request.GET.get("page", 1)
        else:
            per_page, page = self.list_per_page, request.GET.get(PAGE_VAR, 1)
        try:
            page = max(int(page), 1)
        except ValueError:
            page = 1  # as the list reads it
        rows = page * per_page + 1
        keys = selectors.product_search_first_keys(queryset, search_term, rows=rows)  # type: ignore[arg-type]
        return queryset.filter(pk__in=keys), False

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "sku":
            kwargs["form_class"] = SkuFormField
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The vendor of an existing product never changes (its stock and ledger belong to it).
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "vendor") if obj else readonly

    @admin.display(description=_("price"), ordering="price_xaf")
    def price(self, product: Product) -> str:
        return money(product.price_xaf)

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = super().get_list_display(request)
        if request.user.has_perm("catalog.view_stock"):
            return shown
        return [name for name in shown if name != "available"]

    @admin.display(description=_("available"))
    def available(self, product: Product) -> Any:
        stock = getattr(product, "stock", None)
        return stock.available if stock is not None else "-"

    def create_object(self, request: HttpRequest, form: Any) -> Product:
        data = self.form_data(form, services.PRODUCT_EDITABLE_FIELDS)
        return services.product_create(vendor=form.cleaned_data["vendor"], actor=staff_actor(request), **data)

    def update_object(self, request: HttpRequest, obj: Product, form: Any) -> Product:
        data = self.form_data(form, services.PRODUCT_EDITABLE_FIELDS)
        return services.product_update(product=obj, data=data, actor=staff_actor(request))

    def delete_object(self, request: HttpRequest, obj: Product) -> None:
        services.product_soft_delete(product=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Product) -> None:
        services.product_restore(product=obj, actor=staff_actor(request))

    def lock_before_hard_delete(self, pks: list[Any]) -> None:
        services.stock_lock_for_hard_delete(product_ids=pks)

    # --- Stock on the product page: adjust and count (the ledger records both) -----------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/adjust-stock/", view(self.adjust_stock_view), name="catalog_product_adjust"
            ),
            path("<path:object_id>/count-stock/", view(self.count_stock_view), name="catalog_product_count"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ):
        product = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        # Stock and its ledger are their own permission (a group may see products without them).
        if product is not None and request.user.has_perm("catalog.view_stock"):
            stock = Stock.objects.filter(product=product).first()
            extra = {
                "stock": stock,
                "movements": selectors.stock_movements_for_product(product=product, limit=20),
                "ledger_url": changelist_url(StockMovement, product=product.pk),
                "can_adjust": request.user.has_perm("catalog.adjust_stock"),
                "can_count": request.user.has_perm("catalog.count_stock"),
                "adjust_form": AdjustStockForm(prefix="adjust"),
                "count_form": CountStockForm(
                    prefix="count", initial={"expected_on_hand": stock.on_hand if stock else 0}
                ),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _stock_post(
        self, request: HttpRequest, object_id: str, perm: str, form_class: Any, prefix: str, apply: Any
    ):
        if request.method != "POST":
            return HttpResponseRedirect(change_url(object_or_404(Product.all_objects.all(), object_id)))
        if not request.user.has_perm(perm):
            raise PermissionDenied
        product: Product = object_or_404(Product.objects.all(), object_id)
        form = form_class(request.POST, prefix=prefix)
        if not form.is_valid():
            for field, errors in form.errors.items():
                self.message_user(
                    request,
                    f"{form.fields[field].label if field in form.fields else ''}: {' '.join(errors)}",
                    messages.ERROR,
                )
        else:
            try:
                apply(product, form.cleaned_data, staff_actor(request))
                self.message_user(request, _("Stock updated; the ledger has the movement."), messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(change_url(product) + "#stock")

    def adjust_stock_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._stock_post(
            request,
            object_id,
            "catalog.adjust_stock",
            AdjustStockForm,
            "adjust",
            lambda p, d, actor: services.stock_adjust(
                product=p, delta=d["delta"], reason=d["reason"], actor=actor
            ),
        )

    def count_stock_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._stock_post(
            request,
            object_id,
            "catalog.count_stock",
            CountStockForm,
            "count",
            lambda p, d, actor: services.stock_count(
                product=p,
                on_hand=d["on_hand"],
                expected_on_hand=d["expected_on_hand"],
                actor=actor,
                reason=d["reason"] or "stock count",
            ),
        )


# --- Stock and its ledger -----------------------------------------------------------------------


class LowStockFilter(admin.SimpleListFilter):
    title = _("stock level")
    parameter_name = "low"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Low stock (at most %(n)d available)") % {"n": settings.OKADA_LOW_STOCK_THRESHOLD})]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(level__lte=settings.OKADA_LOW_STOCK_THRESHOLD)
        return queryset


#: The stock search's first look (StockAdmin.get_search_results): up to this many products whose
#: SKU matches are read by key, more through the search itself. They are found through the SKUs'
#: trigram index (catalog migration 0019); a word of one or two characters has no trigram, and
#: reads the products until one more than this has matched (a few hundred at most: such a word
#: is in many SKUs).
SKU_PROBE = 100


@admin.register(Stock)
class StockAdmin(BigTableMixin, ReadOnlyAdmin):
    """Stock changes only through adjustments and counts (product page), which write the ledger."""

    list_display = ("product_link", "vendor", "on_hand", "reserved", "available", "updated_at")
    list_select_related = ("product", "vendor")
    list_filter = (LowStockFilter, ("vendor", AutocompleteFilter))
    search_fields = ("product__sku",)
    ordering = ("-id",)
    narrowing_lookups = ("vendor__id__exact",)  # see BigTableMixin

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        # SKUs are stored NFC: "E" + U+0301 typed for "É" finds them too.
        term = normalize_sku(search_term)
        if not term.strip() or any(request.GET.get(lookup) for lookup in self.narrowing_lookups):
            return super().get_search_results(request, queryset, term)  # one vendor's: few rows
        # Newest first, PostgreSQL walks the stock's primary key and reads each row's product
        # for its SKU: the whole million for a SKU nobody has (2 s). The products whose SKU
        # matches (as Django's search matches: each word, anywhere) are looked up first, in no
        # order, through the SKUs' trigram index; when few, their stock is read by product.
        products = Product.all_objects.all()
        for word in smart_split(term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            products = products.filter(sku__icontains=word)
        found = few_keys(products, SKU_PROBE)
        if found is not None:
            return queryset.filter(product_id__in=found), False
        return super().get_search_results(request, queryset, term)

    @admin.display(description=_("product"))
    def product_link(self, stock: Stock) -> str:
        return format_html('<a href="{}">{}</a>', change_url(stock.product), stock.product)

    @admin.display(description=_("available"))
    def available(self, stock: Stock) -> int:
        return stock.available


@admin.register(StockMovement)
class StockMovementAdmin(BigTableMixin, ReadOnlyAdmin):
    # stored in English or as codes: shown in the page's language
    shown_as = {"reason": "reason_shown", "actor": "actor_shown"}
    list_display = (
        "created_at",
        "kind_badge",
        "delta",
        "product_link",
        "reason_shown",
        "reference",
        "actor_shown",
    )
    list_filter = ("kind", ("vendor", AutocompleteFilter))
    list_select_related = ("product",)
    search_fields = ("reference",)  # shows the search box; the search itself is below
    search_help_text = _(
        "An order number (OK-0000123 or 123), or the start of another reference (a delivery note, "
        "a count sheet), in any case."
    )
    # UUID v7 ids sort by time, and (id, created_at) is each partition's primary key: newest
    # first is an index scan per partition, where ORDER BY created_at would sort millions.
    ordering = ("-id",)
    narrowing_lookups = ("product", "product__id__exact")  # see BigTableMixin
    paginator = NewestFirstPaginator

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        # References are identifiers (order numbers, delivery notes): matched whole or by their
        # start through indexes (selectors.movement_search), never as a substring of every
        # partition's millions of references (seconds). Newest first, PostgreSQL may still walk
        # the primary key and test each movement when it expects many matches: as for products,
        # a few matches are asked for first, in no order, and those few listed by key.
        if not search_term.strip():
            return queryset, False
        named = selectors.movement_search(search_term)  # looks the order up, when it names one
        found = few_keys(StockMovement.objects.filter(named), SEARCH_PROBE)
        if found is not None:
            return queryset.filter(pk__in=found), False
        return queryset.filter(named), False

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        # The ledger of one product (linked from the product page).
        return lookup in ("product", "product__id__exact") or super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("kind"), ordering="kind")
    def kind_badge(self, movement: StockMovement) -> str:
        return badge(movement.kind, movement.get_kind_display())

    @admin.display(description=_("product"))
    def product_link(self, movement: StockMovement) -> str:
        return format_html('<a href="{}">{}</a>', change_url(movement.product), movement.product)

    @admin.display(description=StockMovement._meta.get_field("reason").verbose_name)
    def reason_shown(self, movement: StockMovement) -> str:
        return reason_label(movement.reason) or "-"

    @admin.display(description=StockMovement._meta.get_field("actor").verbose_name)
    def actor_shown(self, movement: StockMovement) -> str:
        return actor_label(movement.actor) or "-"
