"""Admin base for tracked models, and the read-only JobRun log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from . import actors
from .actors import Actor
from .errors import DomainError
from .models import JobRun


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


class DeletedFilter(admin.SimpleListFilter):
    title = _("deleted")
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("live", _("Live only")), ("deleted", _("Deleted only")), ("all", _("All"))]

    def choices(self, changelist: Any):  # default = live, so "All" needs its own value
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "live") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value() or "live"
        if value == "live":
            return queryset.filter(deleted_at__isnull=True)
        if value == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class TrackedAdmin(SimpleHistoryAdmin):
    """Deleted rows filter, restore action, history with diffs; delete = soft delete."""

    actions = ["restore_selected"]
    list_filter: Any = (DeletedFilter,)
    readonly_fields: Any = ("id", "created_at", "updated_at", "deleted_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Staff must see deleted rows to restore them; the filter defaults to live rows.
        qs = self.model.all_objects.all()
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        return filters if DeletedFilter in filters else [DeletedFilter, *filters]

    @admin.action(description=_("Restore selected deleted rows"))
    def restore_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        restored = 0
        with actors.acting_as(user=request.user, reason="restored in admin"):
            for obj in queryset.filter(deleted_at__isnull=False):
                try:
                    self.restore_object(request, obj)
                except (IntegrityError, DomainError) as exc:
                    # e.g. a live row took its unique slot since it was deleted
                    message = (
                        exc if isinstance(exc, DomainError) else _("a live row already uses its unique value")
                    )
                    self.message_user(request, f"{obj}: {message}", messages.ERROR)
                    continue
                restored += 1
        if restored:
            self.message_user(
                request,
                ngettext("%(n)d row restored.", "%(n)d rows restored.", restored) % {"n": restored},
                messages.SUCCESS,
            )

    def restore_object(self, request: HttpRequest, obj: Any) -> None:
        """Model admins whose rows have a restore service override this to call it."""
        from django.db import transaction

        with transaction.atomic():
            obj.restore()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with actors.acting_as(user=request.user, reason="edited in admin" if change else "added in admin"):
            super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with actors.acting_as(user=request.user, reason="deleted in admin"):
            obj.delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with actors.acting_as(user=request.user, reason="deleted in admin"):
            queryset.delete()


class ReadOnlyAdmin(admin.ModelAdmin):
    """For logs and ledgers (job runs, stock movements, order events): staff read, nobody edits."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ("name", "outcome", "started_at", "finished_at", "duration", "host")
    list_filter = ("outcome", "name")
    search_fields = ("name", "error")
    date_hierarchy = "started_at"
