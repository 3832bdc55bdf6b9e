"""Operations screens for offline sync: devices (revocable), conflicts to resolve, pushed mutations.

Nothing here writes a model itself: the actions call `sync.services`, which check the permission
(`sync.revoke_device`, `sync.resolve_syncconflict`) again whatever the screen shows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext
from simple_history.admin import SimpleHistoryAdmin

from catalog.models import Stock, Vendor
from okada.core.actors import Actor
from okada.core.admin import (
    LOADED_AT,
    AutocompleteFilter,
    BigTableMixin,
    HistoryDiffs,
    HistoryOfValidIds,
    ReadOnlyAdmin,
    RevokedFilter,
    change_url,
    changelist_url,
    object_or_404,
    run_per_object,
    staff_actor,
)
from okada.core.display import reason_label
from okada.core.errors import DomainError
from okada.core.querysets import few_keys
from orders.admin import LocalDaysFilter
from orders.models import Order

from . import feed, services
from .models import Device, Mutation, SyncConflict
from .push import MUTATIONS

SEARCH_PROBE = 1000  # matches of a search read by key below this many (okada.core.querysets)

# What the actions below record: stored in English (data; devices pull the conflict's note),
# shown in the page's language through reason_label.
REVOKED_IN_ADMIN = gettext_noop("revoked in admin")
RESOLVED_IN_ADMIN = {
    services.KEEP_SERVER: gettext_noop("resolved in admin (keep_server)"),
    services.APPLY_DEVICE: gettext_noop("resolved in admin (apply_device)"),
}


def entity_label(name: str) -> str:
    """A synced table by its model's name in the page's language ("products" -> "produits")."""
    entity = feed.BY_NAME.get(name)
    model = next((m for m in apps.get_models() if entity and m._meta.db_table == entity.table), None)
    return str(model._meta.verbose_name_plural) if model is not None else name


def _as_staff(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    action: Callable[[Any, Actor], Any],
    done_message: Callable[[int], str],
) -> None:
    """Apply a service to each selected row as the staff user (whose permissions it checks)."""
    try:
        actor = Actor.for_staff_user(request.user)
    except DomainError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return
    run_per_object(model_admin, request, queryset, lambda obj: action(obj, actor), done_message)


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    shown_as = {"revoke_reason": "revoke_reason_shown"}
    list_display = (
        "name",
        "vendor",
        "id",
        "last_mutation_id",
        "last_pull_at",
        "last_push_at",
        "revoked_at",
        "mutations_link",
    )
    list_filter = (RevokedFilter,)
    search_fields = ("name", "vendor__name", "vendor__slug")
    list_select_related = ("vendor",)
    show_full_result_count = False
    # Rendering the rows is most of a list's time (unfold): 25 a page, as the other big lists.
    list_per_page = 25
    actions = ["revoke"]

    @admin.display(description=Mutation._meta.verbose_name_plural)
    def mutations_link(self, device: Device) -> str:
        """Its pushes, newest first (the mutations list narrowed to the device: read by its key)."""
        url = changelist_url(Mutation, device__id__exact=device.pk)
        return format_html('<a href="{}">{}</a>', url, _("Show"))

    @admin.display(description=Device._meta.get_field("revoke_reason").verbose_name)
    def revoke_reason_shown(self, device: Device) -> str:
        return reason_label(device.revoke_reason) or "-"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sync.revoke_device")

    @admin.action(description=_("Revoke selected devices"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        _as_staff(
            self,
            request,
            queryset.filter(revoked_at__isnull=True),
            lambda d, actor: services.device_revoke(device=d, actor=actor, reason=REVOKED_IN_ADMIN),
            lambda n: (
                ngettext(
                    "%(n)d device revoked: it can no longer sync.",
                    "%(n)d devices revoked: they can no longer sync.",
                    n,
                )
                % {"n": n}
            ),
        )


def _pretty(value: Any) -> str:
    return format_html(
        "<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str)
    )


def current_value(conflict: SyncConflict) -> dict[str, Any] | None:
    """The row a conflict is about as it is now, shaped as its `server_value` (the fields the
    device wants to change, the version; a stock's units; an order's status); None if gone."""
    row = services.conflict_row(conflict)
    if row is None:
        return None
    if isinstance(row, Stock):
        return services.stock_value(row)
    if isinstance(row, Order):
        return {"status": row.status}
    wanted = (conflict.device_value or {}).get("fields") or {}
    return {
        "fields": {name: getattr(row, name, None) for name in wanted},
        "version": row.version,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else None,
    }


def _hierarchy_days(year: str | None, month: str | None, day: str | None) -> tuple[dt.date, dt.date] | None:
    """First and last day of a date hierarchy's year, month or day; None if they name none."""
    try:
        y = int(year or "")
        if month is None:
            return dt.date(y, 1, 1), dt.date(y, 12, 31)
        m = int(month)
        if day is None:
            return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])
        first = dt.date(y, m, int(day))
    except (ValueError, OverflowError):  # calendar.IllegalMonthError is a ValueError; 10**20 overflows
        return None
    return first, first


@admin.register(SyncConflict)
class SyncConflictAdmin(BigTableMixin, HistoryOfValidIds, SimpleHistoryAdmin, ReadOnlyAdmin):
    """Both sides of each clash; staff keep the server's value or apply the device's.

    Conflicts are never pruned: hundreds of thousands in a year of a busy marketplace. A big
    table's list (no counts), newest first, each page read through an index in that order (sync
    0013): all of them, a status's, a kind's, a range of days. No date hierarchy: its links are
    the distinct years, months or days of every conflict listed, a read of all of them per page."""

    list_display = (
        "created_at",
        "vendor",
        "device",
        "kind",
        "entity_shown",
        "status",
        "resolved_by",
        "resolved_at",
    )
    list_filter = ("status", "kind", ("created_at", LocalDaysFilter))
    list_filter_submit = True  # the range of days is sent with a button
    search_fields = ("vendor__name",)  # shows the search box; the search itself is below
    search_help_text = _("Part of a vendor's name, or the whole id of a conflict or of its row.")
    list_select_related = ("vendor", "device", "resolved_by")
    sortable_by = ("created_at",)  # sync_conflict_created; see BigTableMixin
    actions = ["keep_server", "apply_device"]
    fields = (
        "vendor",
        "device",
        "mutation_id",
        "kind",
        "entity_shown",
        "row_id",
        "base_version",
        "device_side",
        "server_side",
        "current_side",
        "status",
        "resolved_by",
        "resolved_at",
        "resolution_note_shown",
        "created_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # A link of the date hierarchy this list had (a bookmark) goes to the same days as a
        # range: its month and day are no index condition (EXTRACT of the local time), so the
        # list tested every conflict of the year, newest first, down to that day.
        query = request.GET.copy()
        parts = [query.pop(f"created_at__{part}", [None])[-1] for part in ("year", "month", "day")]
        if all(part is None for part in parts):
            return super().changelist_view(request, extra_context)
        days = _hierarchy_days(*parts)
        if days is None:  # year 0, month 13, 31 February: the hierarchy's answer was Django's "?e=1"
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")
        query["created_at_from"], query["created_at_to"] = (day.isoformat() for day in days)
        return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        # A whole id (a conflict's, or its row's: sync_conflict_row), else the vendors the term
        # names (a thousand, read first), then their conflicts by their index. As substrings of
        # every conflict's row id and vendor name, a search read the whole table, joined with
        # the vendors (a second or more at 300,000 conflicts).
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            key = uuid.UUID(term)
        except ValueError:
            named = Vendor.all_objects.filter(name__icontains=term)
            # Past SEARCH_PROBE vendors (a common term: a letter) their ids would be a statement
            # with a parameter each: a subquery of them then.
            vendors = few_keys(named, SEARCH_PROBE)
            return queryset.filter(vendor__in=named if vendors is None else vendors), False
        return queryset.filter(Q(pk=key) | Q(row_id=key)), False

    # --- History: read only. simple-history's revert form saves the old row as it was, whoever
    # posts it (it checks the view permission only): a resolved conflict would be open again,
    # outside conflict_resolve, and could be applied a second time.

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> Any:
        return HistoryDiffs(self.model, historical_record)

    def set_history_delta_changes(
        self, request: HttpRequest, historical_records: Any, foreign_keys_are_objs: bool = True
    ) -> None:
        super().set_history_delta_changes(request, historical_records, foreign_keys_are_objs)
        note = capfirst(SyncConflict._meta.get_field("resolution_note").verbose_name)
        for record in historical_records:
            record.history_change_reason = reason_label(record.history_change_reason) or ""
            for change in getattr(record, "history_delta_changes", []):
                if change["field"] == note:
                    change["old"], change["new"] = reason_label(change["old"]), reason_label(change["new"])

    @admin.display(description=SyncConflict._meta.get_field("resolution_note").verbose_name)
    def resolution_note_shown(self, conflict: SyncConflict) -> str:
        return reason_label(conflict.resolution_note) or "-"

    @admin.display(description=SyncConflict._meta.get_field("entity").verbose_name)
    def entity_shown(self, conflict: SyncConflict) -> str:
        return entity_label(conflict.entity)

    @admin.display(description=_("device value"))
    def device_side(self, obj: SyncConflict) -> str:
        return _pretty(obj.device_value)

    @admin.display(description=_("server value (when it arrived)"))
    def server_side(self, obj: SyncConflict) -> str:
        return _pretty(obj.server_value)

    @admin.display(description=_("current server value"))
    def current_side(self, obj: SyncConflict) -> str:
        return _pretty(current_value(obj))

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sync.resolve_syncconflict")

    # --- Resolving from the conflict's page -----------------------------------------------------
    # Its forms carry the time the row was last changed when the page was opened (LOADED_AT, as
    # the change forms of okada.core.admin): conflict_resolve refuses to apply the device's value
    # over a change made after that (changed_since_opened), and the page, opened again, shows it.

    change_form_outer_before_template = "admin/sync/conflict_resolve.html"

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/resolve/", view(self.resolve_view), name="sync_syncconflict_resolve"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        conflict = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if (
            conflict is not None
            and conflict.status == SyncConflict.Status.OPEN
            and self.has_resolve_permission(request)
        ):
            row = services.conflict_row(conflict)
            extra = {
                "can_resolve": True,
                "okada_loaded_at": row.updated_at.isoformat() if row is not None else "",
                "resolutions": [
                    (services.KEEP_SERVER, _("Keep the server value")),
                    (services.APPLY_DEVICE, _("Apply the device value")),
                ],
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        conflict: SyncConflict = object_or_404(SyncConflict.objects.all(), object_id)
        if request.method != "POST":
            return HttpResponseRedirect(change_url(conflict))
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        resolution = request.POST.get("resolution", "")
        try:
            services.conflict_resolve(
                conflict=conflict,
                resolution=resolution,
                actor=staff_actor(request),
                note=RESOLVED_IN_ADMIN.get(resolution, ""),
                opened_at=request.POST.get(LOADED_AT) or None,
            )
        except DomainError as exc:
            if exc.status == 403:
                raise PermissionDenied(str(exc)) from exc
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, _("The conflict is resolved."), messages.SUCCESS)
        return HttpResponseRedirect(change_url(conflict))

    @admin.action(description=_("Resolve: keep the server value"), permissions=["resolve"])
    def keep_server(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._resolve(request, queryset, services.KEEP_SERVER)

    @admin.action(description=_("Resolve: apply the device value"), permissions=["resolve"])
    def apply_device(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._resolve(request, queryset, services.APPLY_DEVICE)

    def _resolve(self, request: HttpRequest, queryset: QuerySet, resolution: str) -> None:
        _as_staff(
            self,
            request,
            queryset.filter(status=SyncConflict.Status.OPEN),
            lambda c, actor: services.conflict_resolve(
                conflict=c, resolution=resolution, actor=actor, note=RESOLVED_IN_ADMIN[resolution]
            ),
            lambda n: ngettext("%(n)d conflict resolved.", "%(n)d conflicts resolved.", n) % {"n": n},
        )


class MutationNameFilter(admin.SimpleListFilter):
    """The mutations a device may push (`sync.push.MUTATIONS`), a fixed list: the names the table
    holds would be a DISTINCT over every stored mutation, read for each page (half a second at
    a million and a half). A name the server does not know is rejected and found by its code."""

    title = Mutation._meta.get_field("name").verbose_name
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(MUTATIONS)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(Mutation)
class MutationAdmin(BigTableMixin, ReadOnlyAdmin):
    """Every device's pushes of the retention window (OKADA_SYNC_MUTATION_RETENTION_DAYS): about
    a thousand per device, so millions; read through a device (the filter, the link on the
    devices list), a status or a mutation name, newest first."""

    shown_as = {"code": "code_shown"}
    list_display = ("created_at", "device", "mutation_id", "name", "status", "code_shown")
    list_filter = ("status", MutationNameFilter, ("device", AutocompleteFilter))
    search_fields = ("device__name",)  # shows the search box; the search itself is below
    search_help_text = _(
        "Part of a device's name or of its vendor's name, or a whole code (insufficient_stock)."
    )
    list_select_related = ("device",)
    # UUID v7 ids sort by time: newest first is the primary key read backwards.
    ordering = ("-id",)
    narrowing_lookups = ("device", "device__id__exact")  # one device's thousand: any column sorts
    stored_texts = ("message",)  # why it was rejected, in the page's language

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        # One device's pushes (linked from the devices list).
        return lookup in ("device", "device__id__exact") or super().lookup_allowed(lookup, value, request)

    def get_ordering(self, request: HttpRequest) -> Any:
        # One device's pushes newest first in its own numbering: its unique index (device,
        # mutation id) read backwards, where the key's order would sort them (or walk every
        # device's pushes testing each).
        if any(request.GET.get(lookup) for lookup in self.narrowing_lookups):
            return ("-device_id", "-mutation_id")
        return super().get_ordering(request)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        # Devices are few (one or two per vendor): those the term names are found first, then
        # their pushes by their key (device, mutation id). A code is matched whole through its
        # partial index (sync 0012; only rejections and conflicts have one): as a substring of
        # every stored mutation's code, a search read the whole table (seconds).
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = Device.objects.filter(Q(name__icontains=term) | Q(vendor__name__icontains=term))
        # Past SEARCH_PROBE devices (a common term: a letter) their ids would be a statement with
        # a parameter each: a subquery of them then, as the conflicts' search does with vendors.
        devices = few_keys(matching, SEARCH_PROBE)
        named = Q(device__in=matching if devices is None else devices) | (Q(code=term.lower()) & ~Q(code=""))
        # A few matches are asked for first, in no order, and those few listed by key (as the
        # stock ledger's search): newest first, PostgreSQL would walk the key and test each row.
        found = few_keys(Mutation.objects.filter(named), SEARCH_PROBE)
        if found is not None:
            return queryset.filter(pk__in=found), False
        return queryset.filter(named), False

    @admin.display(description=Mutation._meta.get_field("code").verbose_name)
    def code_shown(self, mutation: Mutation) -> str:
        """A conflict by its kind in words; a rejection's error code as the API sent it (a
        rejection `vendor_suspended` is not the conflict kind of the same name)."""
        if mutation.status == Mutation.Status.CONFLICT:
            return str(dict(SyncConflict.Kind.choices).get(mutation.code, mutation.code)) or "-"
        return mutation.code or "-"
