"""Operations screens for orders: the open-orders queue, the order page with its lifecycle buttons,
notes and refunds, CSV exports, customers and zones. Every write calls a service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, F, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Length
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeDateFilter

from catalog.models import City
from okada.core.admin import (
    AutocompleteFilter,
    BigTableChangeList,
    BigTableMixin,
    ReadOnlyAdmin,
    TrackedAdmin,
    change_url,
    changelist_url,
    object_or_404,
    run_per_object,
    staff_actor,
    valid_pk,
)
from okada.core.deletion import bounded_part, summary_lines
from okada.core.display import actor_label, badge, money
from okada.core.errors import DomainError
from okada.core.querysets import count_up_to

from . import exports, selectors, services
from .models import (
    OPEN_STATUSES,
    Customer,
    Order,
    OrderEvent,
    OrderExport,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    Zone,
    customer_name_matches,
)

# --- Zones and customers ------------------------------------------------------------------------


@admin.register(Zone)
class ZoneAdmin(TrackedAdmin):
    list_display = ("name", "city", "fee")
    list_filter = ("city",)
    search_fields = ("name",)
    revert_fields = services.ZONE_EDITABLE_FIELDS

    @admin.display(description=_("delivery fee"), ordering="delivery_fee_xaf")
    def fee(self, zone: Zone) -> str:
        return money(zone.delivery_fee_xaf)

    def create_object(self, request: HttpRequest, form: Any) -> Zone:
        return services.zone_create(
            actor=staff_actor(request), **self.form_data(form, services.ZONE_EDITABLE_FIELDS)
        )

    def update_object(self, request: HttpRequest, obj: Zone, form: Any) -> Zone:
        data = self.form_data(form, services.ZONE_EDITABLE_FIELDS)
        return services.zone_update(zone=obj, data=data, actor=staff_actor(request))

    def delete_object(self, request: HttpRequest, obj: Zone) -> None:
        services.zone_soft_delete(zone=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Zone) -> None:
        services.zone_restore(zone=obj, actor=staff_actor(request))


# The open-orders queue shows the oldest this many (per status with its filter): rendering the
# rows is most of the page's time, and the orders to act on first are the oldest.
QUEUE_LIMIT = 50


@admin.register(Customer)
class CustomerAdmin(BigTableMixin, TrackedAdmin):
    list_display = ("name", "phone", "zone", "orders_link")
    list_filter = (("zone", AutocompleteFilter),)
    search_fields = ("name", "phone")
    search_help_text = _("A name, or a phone number in any form (6 77 12 34 56, +237...).")
    list_select_related = ("zone",)
    autocomplete_fields = ("zone",)
    revert_fields = services.CUSTOMER_EDITABLE_FIELDS
    ordering = ("-id",)
    sortable_by = ("phone",)  # the live rows' phone index; see BigTableMixin

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        phone = selectors.phone_or_none(search_term)
        if phone:  # through the phone indexes (live and deleted), whichever deleted filter is on
            return queryset.filter(pk__in=selectors.customers_with_phone(phone).values("pk")), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("orders"))
    def orders_link(self, customer: Customer) -> str:
        return format_html(
            '<a href="{}">{}</a>', changelist_url(Order, customer__id__exact=customer.pk), _("see")
        )

    def create_object(self, request: HttpRequest, form: Any) -> Customer:
        data = self.form_data(form, services.CUSTOMER_EDITABLE_FIELDS)
        return services.customer_create(actor=staff_actor(request), **data)

    def update_object(self, request: HttpRequest, obj: Customer, form: Any) -> Customer:
        data = self.form_data(form, services.CUSTOMER_EDITABLE_FIELDS)
        return services.customer_update(customer=obj, data=data, actor=staff_actor(request))

    def delete_object(self, request: HttpRequest, obj: Customer) -> None:
        services.customer_soft_delete(customer=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Customer) -> None:
        services.customer_restore(customer=obj, actor=staff_actor(request))


# --- Orders -------------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ("sku", "name", "unit_price", "quantity", "line_total")
    readonly_fields = fields

    @admin.display(description=_("unit price"))
    def unit_price(self, item: OrderItem) -> str:
        return money(item.unit_price_xaf)

    @admin.display(description=_("line total"))
    def line_total(self, item: OrderItem) -> str:
        return money(item.line_total_xaf)


def _refund_badge(payment: Payment) -> str:
    if payment.needs_refund:
        return badge("refund_owed", _("owed"))
    if payment.refund_settled_at is not None:
        return badge("refund_settled", _("settled"))
    return "-"


class PaymentInline(ReadOnlyInline):
    # What arrived beside what was asked for: a success for less does not pay the order.
    model = Payment
    fields = (
        "provider",
        "provider_reference",
        "amount",
        "received",
        "status_badge",
        "refund_badge",
        "paid_at",
    )
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount(self, payment: Payment) -> str:
        return money(payment.amount_xaf)

    @admin.display(description=_("received"))
    def received(self, payment: Payment) -> str:
        return money(payment.received_xaf)

    @admin.display(description=_("status"))
    def status_badge(self, payment: Payment) -> str:
        return badge(payment.status, payment.get_status_display())

    @admin.display(description=_("refund"))
    def refund_badge(self, payment: Payment) -> str:
        return _refund_badge(payment)


class StuckFilter(admin.SimpleListFilter):
    title = _("stuck")
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Stuck too long in their status"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(selectors.stuck_q()) if self.value() == "yes" else queryset


class CityFilter(admin.SimpleListFilter):
    title = _("city")
    parameter_name = "city"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(City.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(zone__city=self.value()) if self.value() else queryset


class LocalDaysFilter(RangeDateFilter):
    """From one day to another (Douala time), both included, on a date-time field."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        try:
            start = self.used_parameters.get(f"{self.field_path}_from")
            end = self.used_parameters.get(f"{self.field_path}_to")
            if start:
                since = selectors.local_day_start(dt.date.fromisoformat(start))
                queryset = queryset.filter(**{f"{self.field_path}__gte": since})
            last = dt.date.fromisoformat(end) if end else dt.date.max
            if last < dt.date.max:  # the day after the last a date can name overflows: no end then
                after = selectors.local_day_start(last + dt.timedelta(days=1))
                queryset = queryset.filter(**{f"{self.field_path}__lt": after})
        except ValueError:
            return None
        return queryset


class PlacedFilter(LocalDaysFilter):
    """Placed between two days (Douala time), both included: `placed_from` / `placed_to`."""

    def __init__(
        self, field: Any, request: HttpRequest, params: Any, model: Any, model_admin: Any, field_path: str
    ):
        for suffix in ("_from", "_to"):  # unfold reads `<field>_from`; our links say `placed_from`
            if f"placed{suffix}" in params:
                params[f"{field_path}{suffix}"] = params.pop(f"placed{suffix}")
        super().__init__(field, request, params, model, model_admin, field_path)


class TransitionForm(forms.Form):
    to = forms.ChoiceField(choices=OrderStatus.choices)
    note = forms.CharField(max_length=500, required=False)


class NoteForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


def by_number_where_asked(ordering: list[Any]) -> list[Any]:
    """A change list's ordering with "number" / "-number" sorted as OrderQuerySet.by_number() sorts
    (length, then text: OK-9999999 before OK-10000000), which the index orders_order_number_sort
    serves in either direction. The number is unique: what came after it (the default ordering
    Django appends) would never decide anything and would cost a sort, so it goes."""
    ordered: list[Any] = []
    for part in ordering:
        if part in ("number", "-number"):
            descending = part == "-number"
            ordered += [
                Length("number").desc() if descending else Length("number").asc(),
                F("number").desc() if descending else F("number").asc(),
            ]
            break
        ordered.append(part)
    return ordered


class OrderChangeList(BigTableChangeList):
    def get_ordering(self, request: HttpRequest, queryset: QuerySet) -> list[Any]:
        return by_number_where_asked(super().get_ordering(request, queryset))


#: The order name search's first look (OrderAdmin.get_search_results): up to this many matches
#: are listed by their keys, more through a walk of the newest first. The walk reads about
#: (orders / matches) x a page's rows, each name tested: past 5,000 matches of a million, about
#: 5,000 orders (a name's vector made for each that keeps one, 6 us); at 1,000, 26,000 (260 ms).
NAME_PROBE = 5000


@admin.register(Order)
class OrderAdmin(BigTableMixin, TrackedAdmin):
    list_display = (
        "number",
        "status_badge",
        "vendor",
        "customer_shown",
        "zone",
        "payment_badge",
        "total",
        "placed_at",
    )
    list_filter = (
        "status",
        StuckFilter,
        "payment_status",
        "payment_method",
        "channel",
        ("vendor", AutocompleteFilter),
        ("zone", AutocompleteFilter),
        CityFilter,
        ("placed_at", PlacedFilter),
    )
    search_fields = ("number",)
    search_help_text = _(
        "An order number (OK-0000123 or 123), a customer's phone, or the customer's name as the order "
        "shows it: whole words, accents ignored, the last one may be a word's beginning (Kam for Kamga)."
    )
    list_select_related = ("vendor", "customer", "zone")
    inlines = [OrderItemInline, PaymentInline]
    actions = ["delete_selected", "restore_selected", "hard_delete_selected", "cancel_orders"]
    list_before_template = "admin/orders/order_list_before.html"
    # An index scan on placed_at (orders_order_placed), never a sort of a million rows.
    ordering = ("-placed_at",)
    # The columns an index sorts (orders_order_number_sort, orders_order_placed); see BigTableMixin.
    sortable_by = ("number", "placed_at")
    narrowing_lookups = ("vendor__id__exact", "customer__id__exact")
    # The moves, the note form and the timeline come first: what staff open an order for.
    change_form_outer_before_template = "admin/orders/order_page.html"
    fieldsets = (
        (None, {"fields": ("number", "status", "vendor", "customer_link", "record_name", "placed_at")}),
        (_("Delivery"), {"fields": ("zone", "address", "note", "channel")}),
        (
            _("Payment"),
            {
                "fields": (
                    "payment_method",
                    "payment_status",
                    "subtotal",
                    "delivery_fee",
                    "total",
                    "expires_at",
                )
            },
        ),
        (_("Record"), {"fields": ("id", "created_at", "updated_at", "deleted_at")}),
    )

    # --- List ------------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[BigTableChangeList]:
        return OrderChangeList

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, order: Order) -> str:
        return badge(order.status, order.get_status_display())

    # The customer as the order shows it (Order.shown_customer_name: the name given with it, else
    # the record's), as the name search reads it: a search for "Awa Mbarga" lists orders that
    # say "Awa Mbarga", whatever the record's name now is (the customers list shows that one).
    # The record is joined (list_select_related): no query per row.
    @admin.display(description=_("customer"))
    def customer_shown(self, order: Order) -> str:
        return f"{order.shown_customer_name} ({order.customer.phone})"

    @admin.display(description=_("customer"))
    def customer_link(self, order: Order) -> str:
        """The name the order shows, linked to the customer record, as the list shows it."""
        return format_html('<a href="{}">{}</a>', change_url(order.customer), self.customer_shown(order))

    @admin.display(description=_("name on the customer record"))
    def record_name(self, order: Order) -> str:
        """The record's name, which the customers list shows: another than the order's when the
        order gave another name, or when the customer was renamed since."""
        return order.customer.name

    @admin.display(description=_("payment"), ordering="payment_status")
    def payment_badge(self, order: Order) -> str:
        return badge(order.payment_status, order.get_payment_status_display())

    @admin.display(description=_("total"), ordering="total_xaf")
    def total(self, order: Order) -> str:
        return money(order.total_xaf)

    @admin.display(description=_("subtotal"))
    def subtotal(self, order: Order) -> str:
        return money(order.subtotal_xaf)

    @admin.display(description=_("delivery fee"))
    def delivery_fee(self, order: Order) -> str:
        return money(order.delivery_fee_xaf)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        """An order number, a phone number (any spelling), else the customer's name as the order
        shows it (orders.models.customer_name_matches): words, accents and case ignored, the last
        one may be the beginning of a word."""
        term = search_term.strip()
        if not term:
            return queryset, False
        phone = selectors.phone_or_none(term)
        if phone:
            return queryset.filter(customer__in=selectors.customers_with_phone(phone)), False
        number = selectors.order_number_or_none(term)
        if number:
            return queryset.filter(number=number), False
        # Every order whose shown name matches (its own, else its customer record's); the last
        # word may be a name's beginning. The list is newest first, and PostgreSQL guesses a
        # name's orders are few (it cannot know the customers' side, an array made at run time):
        # it gathers every match through the name indexes (orders migrations 0035, 0036), joins and
        # sorts them, 250 ms for a name 50,000 orders show. So they are first counted, up to
        # NAME_PROBE, as read from those indexes: few, they are listed by key, their keys an
        # array made in the statement (in Python, 5,000 keys a request set off a collection of
        # the whole heap every tenth request, 70 ms).
        named = customer_name_matches(term, prefix=True)
        matching = queryset.filter(named).order_by()
        if count_up_to(matching, NAME_PROBE) <= NAME_PROBE:
            sql, params = matching.values("pk").query.sql_with_params()
            keys = RawSQL(f"orders_order.id = ANY(ARRAY({sql}))", params, output_field=BooleanField())  # noqa: S611
            return queryset.filter(keys), False
        # Common: walk the list's own order (orders_order_placed) and test each order, which
        # soon finds a page. In COALESCE the condition reaches no index, and PostgreSQL guesses
        # half the orders pass (its default for an opaque condition), so it walks: as written,
        # it would gather every match as above, its guess unchanged.
        walked = RawSQL(f"COALESCE({named.sql}, false)", named.params, output_field=BooleanField())  # noqa: S611
        return queryset.filter(walked), False

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        # Links from customer and vendor pages and the dashboard.
        if lookup in ("customer__id__exact", "status__in", "vendor__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    # --- Permissions -------------------------------------------------------------------------------

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Orders change only through their services (transitions, notes, payments).
        return [f.name for f in Order._meta.fields] + [
            "subtotal",
            "delivery_fee",
            "total",
            "customer_link",
            "record_name",
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders are placed by the storefront or the API

    def has_transition_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("orders.transition_order")

    def has_export_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return exports.may_export(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An open order holds stock: cancel it (which releases the stock) rather than delete it.
        if obj is not None and obj.status in OPEN_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    # --- Writes ------------------------------------------------------------------------------------

    def delete_object(self, request: HttpRequest, obj: Order) -> None:
        services.order_soft_delete(order=obj, actor=staff_actor(request))

    def restore_object(self, request: HttpRequest, obj: Order) -> None:
        services.order_restore(order=obj, actor=staff_actor(request))

    def hard_delete_object(self, request: HttpRequest, obj: Order) -> None:
        services.order_hard_delete(order=obj, actor=staff_actor(request))

    def hard_delete_refusals(self, pks: list[Any]) -> list[tuple[str, list[Any]]]:
        # order_hard_delete refuses an open order (its stock stays reserved).
        return self._open_orders_refused(Q(pk__in=pks))

    def soft_delete_refusals(self, pks: Any) -> list[tuple[str, list[Any]]]:
        # order_soft_delete refuses an open order too (a deleted one is not deleted again).
        return self._open_orders_refused(Q(pk__in=pks, deleted_at__isnull=True))

    def _open_orders_refused(self, selected: Q) -> list[tuple[str, list[Any]]]:
        """The open orders among `selected`, counted up to a bound and the first named."""
        part = bounded_part(Order, selected & Q(status__in=OPEN_STATUSES))
        if not part.count:
            return []
        why = gettext("An open order cannot be deleted: cancel it first (it releases the stock).")
        return [(why, summary_lines([part], self.admin_site))]

    @admin.action(permissions=["transition"], description=_("Cancel selected orders (releases stock)"))
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset.filter(deleted_at__isnull=True).exclude(status=OrderStatus.CANCELLED),
            lambda o: services.order_cancel(order=o, actor=actor, note="cancelled in admin"),
            lambda n: (
                ngettext(
                    "%(n)d order cancelled: its stock is released.",
                    "%(n)d orders cancelled: their stock is released.",
                    n,
                )
                % {"n": n}
            ),
        )

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a CSV export of the list as filtered on screen (its query string)."""
        if request.method != "POST":
            return HttpResponseRedirect(changelist_url(Order))
        if not self.has_export_permission(request):
            raise PermissionDenied
        export = exports.export_request(user=request.user, query=request.POST.get("query", "")[:2000])
        self.message_user(
            request,
            _("The export is being prepared: download it from this page when it is ready."),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url(export))

    # --- The order page: timeline, transitions, notes -------------------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("queue/", view(self.queue_view), name="orders_order_queue"),
            path("export/", view(self.export_view), name="orders_order_export"),
            path("<path:object_id>/transition/", view(self.transition_view), name="orders_order_transition"),
            path("<path:object_id>/note/", view(self.note_view), name="orders_order_note"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ):
        order = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if order is not None:
            targets = []
            if not order.deleted_at and request.user.is_active and request.user.is_staff:
                targets = services.allowed_targets(order=order, actor=staff_actor(request))
            labels = dict(OrderStatus.choices)
            extra = {
                # Nothing on the form is editable: orders change through the buttons only.
                "show_save": False,
                "show_save_and_continue": False,
                "show_save_and_add_another": False,
                "timeline": selectors.order_timeline(order=order),
                "targets": [(t, labels[t]) for t in targets if t != OrderStatus.CANCELLED],
                "can_cancel": OrderStatus.CANCELLED in targets,
                "can_note": request.user.has_perm("orders.add_order_note") and not order.deleted_at,
                "note_form": NoteForm(),
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def transition_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        order: Order = object_or_404(Order.objects.all(), object_id)
        if request.method != "POST":
            return HttpResponseRedirect(change_url(order))
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        form = TransitionForm(request.POST)
        if not form.is_valid():
            self.message_user(request, _("Choose a status to move the order to."), messages.ERROR)
            return HttpResponseRedirect(change_url(order))
        to, note = form.cleaned_data["to"], form.cleaned_data["note"].strip()
        if to == OrderStatus.CANCELLED and not note:
            self.message_user(request, _("Say why the order is cancelled."), messages.ERROR)
            return HttpResponseRedirect(change_url(order))
        try:
            order = services.order_transition(order=order, to=to, actor=staff_actor(request), note=note)
        except DomainError as exc:
            if exc.status == 403:
                raise PermissionDenied(str(exc)) from exc
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                _("Order %(number)s is now %(status)s.")
                % {"number": order.number, "status": order.get_status_display()},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(change_url(order))

    def note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        order: Order = object_or_404(Order.all_objects.all(), object_id)
        if request.method != "POST":
            return HttpResponseRedirect(change_url(order))
        if not request.user.has_perm("orders.add_order_note"):
            raise PermissionDenied
        form = NoteForm(request.POST)
        if form.is_valid():
            try:
                services.order_add_note(
                    order=order, note=form.cleaned_data["note"], actor=staff_actor(request)
                )
                self.message_user(request, _("Note added."), messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, _("The note is empty."), messages.ERROR)
        return HttpResponseRedirect(change_url(order) + "#timeline")

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        """Open orders by status, oldest first, stuck ones highlighted."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        status = request.GET.get("status")
        if status not in OPEN_STATUSES:
            status = None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Open orders queue"),
            "opts": self.model._meta,
            "summary": selectors.open_orders_by_status(),
            "orders": selectors.open_queue(status=status, limit=QUEUE_LIMIT),
            "limit": QUEUE_LIMIT,
            "status": status,
            "now": selectors.clock(),
        }
        return TemplateResponse(request, "admin/orders/queue.html", context)


@admin.register(OrderEvent)
class OrderEventAdmin(BigTableMixin, ReadOnlyAdmin):
    # Statuses are stored as codes (no choices on these columns): shown by their label.
    shown_as = {"from_status": "from_status_shown", "to_status": "to_status_shown", "actor": "actor_shown"}
    list_display = ("created_at", "order_link", "kind", "from_status_shown", "to_status_shown", "actor_shown")
    list_filter = ("kind",)
    # Newest first by the UUID v7 id, each partition's primary key (see StockMovementAdmin).
    ordering = ("-id",)
    narrowing_lookups = ("order", "order__id__exact")

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        return lookup in ("order", "order__id__exact") or super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("order"))
    def order_link(self, event: OrderEvent) -> str:
        url = reverse("admin:orders_order_change", args=[event.order_id])
        return format_html('<a href="{}">{}</a>', url, _("open"))

    @admin.display(description=OrderEvent._meta.get_field("from_status").verbose_name)
    def from_status_shown(self, event: OrderEvent) -> str:
        return _status_label(event.from_status)

    @admin.display(description=OrderEvent._meta.get_field("to_status").verbose_name)
    def to_status_shown(self, event: OrderEvent) -> str:
        return _status_label(event.to_status)

    @admin.display(description=OrderEvent._meta.get_field("actor").verbose_name)
    def actor_shown(self, event: OrderEvent) -> str:
        return actor_label(event.actor) or "-"


def _status_label(code: str) -> str:
    return str(dict(OrderStatus.choices).get(code, code)) if code else "-"


SETTLE_PAGE = 100  # payments on the settle page (a list page selects 25)


class SettleRefundForm(forms.Form):
    note = forms.CharField(
        label=_("How was the money refunded?"),
        help_text=_("For example the reference of the mobile-money transfer back to the customer."),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


@admin.register(Payment)
class PaymentAdmin(BigTableMixin, ReadOnlyAdmin):
    """Payments are written by the payment services (records, provider callbacks). Finance follows
    up the refunds owed here: filter "needs refund", refund the customer, then record it settled
    (action, `orders.refund_order`, checked again by the service)."""

    list_display = (
        "provider_reference",
        "order_link",
        "provider",
        "amount",
        "received",
        "status_badge",
        "refund_badge",
        "created_at",
    )
    list_filter = ("needs_refund", "provider", "status", ("created_at", LocalDaysFilter))
    list_filter_submit = True
    search_fields = ("provider_reference",)
    search_help_text = _("A whole provider reference, or an order number (OK-0000123 or 123).")
    list_select_related = ("order",)
    ordering = ("-id",)
    sortable_by = ("created_at",)  # orders_payment_created; see BigTableMixin
    narrowing_lookups = ("order__id__exact",)
    actions = ["settle_refunds"]

    def get_ordering(self, request: HttpRequest) -> Any:
        # The refunds owed are read newest first from their partial index (needs_refund, -created_at);
        # a range of days from orders_payment_created (created_at, id). Ordered by id there,
        # PostgreSQL would walk the whole primary key back to the days asked for.
        if request.GET.get("needs_refund__exact") == "1" or any(
            request.GET.get(f"created_at_{end}") for end in ("from", "to")
        ):
            return ("-created_at",)
        return super().get_ordering(request)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        """A live order's number (its payments; the order's unique index finds it) or a whole
        provider reference (digits only may be either). References are matched exactly, through
        the (provider, reference) unique index: a substring search would read the whole table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # Constants on both sides: PostgreSQL ORs two index scans (the payments' order index,
        # the (provider, reference) unique index) instead of a seq scan.
        found = Q(provider__in=PaymentMethod.values, provider_reference=term)
        number = selectors.order_number_or_none(term)
        if number:
            order_ids = list(Order.objects.filter(number=number).values_list("pk", flat=True))
            found |= Q(order_id__in=order_ids)
        return queryset.filter(found), False

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        # The dashboard's links: an order's refunds owed.
        return lookup == "order__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("amount"), ordering="amount_xaf")
    def amount(self, payment: Payment) -> str:
        return money(payment.amount_xaf)

    @admin.display(description=_("received"))
    def received(self, payment: Payment) -> str:
        return money(payment.received_xaf)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, payment: Payment) -> str:
        return badge(payment.status, payment.get_status_display())

    @admin.display(description=_("refund"))
    def refund_badge(self, payment: Payment) -> str:
        return _refund_badge(payment)

    @admin.display(description=_("order"))
    def order_link(self, payment: Payment) -> str:
        return format_html('<a href="{}">{}</a>', change_url(payment.order), payment.order.number)

    def has_settle_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.refund_order")

    @admin.action(
        permissions=["settle_refund"], description=_("Record the refunds of the selected payments as settled")
    )
    def settle_refunds(self, request: HttpRequest, queryset: QuerySet) -> Any:
        """A page that asks how the money went back, then `payment_refund_settle` per payment (a
        payment that needs no refund, or no longer, is refused and named)."""
        form = SettleRefundForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_valid():
            actor = staff_actor(request)
            note = form.cleaned_data["note"]
            run_per_object(
                self,
                request,
                queryset.select_related("order"),
                lambda p: services.payment_refund_settle(payment=p, actor=actor, note=note),
                lambda n: (
                    ngettext("%(n)d refund recorded as settled.", "%(n)d refunds recorded as settled.", n)
                    % {"n": n}
                ),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record refunds as settled"),
            # What is shown is what the confirmation settles (its hidden inputs): a bounded page.
            "payments": list(queryset.select_related("order")[:SETTLE_PAGE]),
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "settle_refunds",
        }
        return TemplateResponse(request, "admin/orders/refund_settle.html", context)


@admin.register(OrderExport)
class OrderExportAdmin(ReadOnlyAdmin):
    """Each user sees and downloads only the exports they asked for."""

    list_display = ("created_at", "status_badge", "rows", "query", "download")
    readonly_fields = ("created_at", "status", "rows", "query", "finished_at", "error_shown", "download")
    fields = readonly_fields
    stored_texts = ("error",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(requested_by_id=request.user.pk)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return exports.may_export(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return exports.may_export(request.user)

    @admin.display(description=_("status"))
    def status_badge(self, export: OrderExport) -> str:
        colour = {"done": "success", "failed": "failed", "running": "running"}.get(export.status, "pending")
        return badge(colour, export.get_status_display())

    @admin.display(description=_("download"))
    def download(self, export: OrderExport) -> str:
        if export.status != OrderExport.Status.DONE:
            return "-"
        url = reverse("admin:orders_orderexport_download", args=[export.pk])
        return format_html('<a href="{}" class="okada-button">{}</a>', url, _("Download the CSV"))

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/download/", view(self.download_view), name="orders_orderexport_download"),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        """The file, to the user who asked for it only, while they may still export (and read) orders."""
        if not exports.may_export(request.user):
            raise PermissionDenied
        if not valid_pk(OrderExport, object_id):
            raise Http404
        export = OrderExport.objects.filter(pk=object_id, requested_by_id=request.user.pk).first()
        if export is None or export.status != OrderExport.Status.DONE:
            raise Http404
        file = exports.export_path(export)
        if not file.exists():
            raise Http404
        return FileResponse(
            file.open("rb"), as_attachment=True, filename=export.file_name, content_type="text/csv"
        )
