"""Admin bases every app builds on, and the JobRun log.

The admin is django-unfold (`unfold.admin.ModelAdmin`) over the stock Django admin. Domain apps
(and backups, partitions, API keys...) subclass one of these bases:

- `TrackedAdmin` for tracked models (soft delete + history). Every write goes through the
  model's services: the subclass implements `create_object`, `update_object`, `delete_object`
  and `restore_object` (each calls a service with `staff_actor(request)`), and the base routes
  the add/change form, the delete view, the "delete selected" and "restore" actions and a
  history revert through them. A `DomainError` from a service is shown on the form (or as a
  message for actions), never a 500, and nothing is written. The delete pages say up front which
  rows the services will refuse to delete and why, with no confirmation then
  (`soft_delete_refused_page`). It also gives the "deleted"
  filter (live rows by default), history with field diffs, hard delete (superusers only, after
  a confirmation page) and autocompletes that never offer deleted rows.
  History revert: simple-history's form view would save the old row as it was, bypassing the
  services; here a POST to it is refused (403) unless the user has the change permission and
  the admin lists `revert_fields`, and then only those fields are passed to `update_object`.
- `ReadOnlyAdmin` for logs and ledgers (job runs, stock movements, order events, backups): staff
  read, nobody adds, edits or deletes through the admin.
- `BigTableMixin` for tables with millions of rows: no COUNT(*) (unfold's infinite paginator),
  no "select all N rows".
- `HidesSecrets` for models with secret columns (`secret_fields`: API key and token hashes):
  never shown, and no list filter on them from the query string.

Helpers: `staff_actor(request)` (the Actor of the logged-in staff user, with their groups'
permissions), `run_per_object` (an action calling a service per selected row and reporting each
refusal), `badge()` and `money()` for list columns, and `AutocompleteFilter` (unfold's
autocomplete list filter, speaking the page's language). Admins that keep Django's delete (users,
roles, beat's schedules) take `DeletionInWords` (okada.core.deletion): their delete pages list the
rows in the page's language, link rows of many-to-many fields included.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import model_ngettext, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.forms.widgets import Script
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_noop, ngettext
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import AutocompleteSelectFilter
from unfold.contrib.filters.forms import AutocompleteDropdownForm
from unfold.paginator import InfinitePaginator
from unfold.templatetags import unfold_list
from unfold.views import ChangeList

from . import account_powers, services
from .actors import Actor
from .deletion import (
    DeletionInWords,
    TooDeep,
    hard_delete_summary,
    row_line,
    soft_delete_refusals,
    summary_counts,
    summary_lines,
)
from .display import badge, job_label, job_shown, job_summary, reason_label
from .errors import ChangedSinceOpened, DomainError
from .forbidden import forbidden_page
from .ids import uuid7_int
from .jobs import labelled_task_names, registered_task
from .models import JobRun
from .permission_labels import PermissionChoiceField, permission_labels, permission_list
from .roles import ROLES, role_label
from .schedule_names import cron_expression, cron_in_words
from .texts import Text, shown

# --- unfold, made to compute the list's headers once per page ----------------------------------
# unfold's `items_for_result` rebuilds every column header for each row (for the data-label of
# the responsive layout): half the time of a 50-row list. The headers depend on the change list
# only, so they are computed once and reused for every row.
_unfold_result_headers = unfold_list.result_headers


def _result_headers_once(cl: Any) -> Any:
    headers = getattr(cl, "_okada_result_headers", None)
    if headers is None:
        headers = list(_unfold_result_headers(cl))
        cl._okada_result_headers = headers
    return iter(headers)


unfold_list.result_headers = _result_headers_once


# --- Helpers ------------------------------------------------------------------------------------

# The most rows a "delete for good" takes at a time: its page counts what goes with each selection
# without walking it, but "select all" on products or orders would still name a whole table.
HARD_DELETE_MAX = 100


def staff_actor(request: HttpRequest) -> Actor:
    """The actor for the logged-in user: refuses anyone who is not active staff (NotAllowed)."""
    return Actor.for_staff_user(request.user)


def rows_updated(n: int) -> str:
    return ngettext("%(n)d row updated.", "%(n)d rows updated.", n) % {"n": n}


def rows_deleted(n: int) -> str:
    return ngettext(
        "%(n)d row deleted: the “deleted” filter shows it, to restore it.",
        "%(n)d rows deleted: the “deleted” filter shows them, to restore them.",
        n,
    ) % {"n": n}


def rows_restored(n: int) -> str:
    return ngettext("%(n)d row restored.", "%(n)d rows restored.", n) % {"n": n}


def rows_deleted_for_good(n: int) -> str:
    return ngettext("%(n)d row deleted for good.", "%(n)d rows deleted for good.", n) % {"n": n}


def row_refused(obj: Any, error: Any) -> str:
    """One selected row's refusal, named ("Boutique Akwa : …" in French typography)."""
    return gettext("%(row)s: %(error)s") % {"row": obj, "error": error}


def run_per_object(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: Iterable[Any],
    action: Callable[[Any], Any],
    done_message: Callable[[int], str] = rows_updated,
) -> int:
    """Apply a service to each selected row; report each refusal to the user, then what was done
    (`done_message(n)`: "3 rows deleted", not "updated", after a delete)."""
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except DomainError as exc:
            model_admin.message_user(request, row_refused(obj, exc), messages.ERROR)
    if done:
        model_admin.message_user(request, done_message(done), messages.SUCCESS)
    return done


class RefusesOddInput:
    """Every admin screen's answer to values of the wrong kind (a tampered URL, a stale link, a
    script), never a 500. (A NUL character anywhere is refused before, by
    okada.core.middleware.AdminRefusesNul.)

    - A list filter's value a filter cannot apply ("not-a-number" for a role's id): Django turns
      the errors of its own filters into its "invalid" answer (a redirect to `?e=1`, the list
      without filters) but lets those of a custom SimpleListFilter through: the same here.
    - An action on rows whose ids are not ids: a message, nothing done (Django would filter
      the rows by them and fail); on rows that are all gone: Django's message for no selection.
    History pages: HistoryOfValidIds.
    """

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        try:
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except (ValueError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(valid_pk(self.model, value) for value in selected):  # type: ignore[attr-defined]
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext("The selection holds a row id that is not valid: nothing was done."),
                messages.ERROR,
            )
            return None
        if (
            selected
            and request.POST.get("select_across") != "1"
            and not queryset.filter(pk__in=selected).exists()
        ):
            # Rows gone since the list was shown: some actions would still write (beat's mark
            # that the schedules changed). Django's own words for an empty selection.
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext(
                    "Items must be selected in order to perform actions on them. No items have been changed."
                ),
                messages.WARNING,
            )
            return None
        return super().response_action(request, queryset)  # type: ignore[misc]


class HistoryOfValidIds:
    """Before simple-history's views: the history of an id that is not one, or a version that is
    not a number, is a 404, as the history of an id that exists nowhere (simple-history would
    fail on either)."""

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        if not valid_pk(self.model, unquote(object_id)):  # type: ignore[attr-defined]
            raise Http404
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc]

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> Any:
        if not valid_pk(self.model, unquote(object_id)) or not str(version_id).isdigit():  # type: ignore[attr-defined]
            raise Http404
        return super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]


def object_or_404(queryset: QuerySet, object_id: str) -> Any:
    """The row of a custom admin view's URL (`<path:object_id>/resolve/`...): a 404 when there is
    none, or when the id is not one of the model's (get_object_or_404 would fail on it)."""
    from django.shortcuts import get_object_or_404

    if not valid_pk(queryset.model, unquote(object_id)):
        raise Http404
    return get_object_or_404(queryset, pk=unquote(object_id))


def valid_pk(model: type[Model], value: str) -> bool:
    """Whether `value` may be an id of `model` (a UUID for a UUID key, a number for a number)."""
    try:
        model._meta.pk.to_python(value)
    except ValidationError:
        return False
    return True


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


class RevokedFilter(admin.SimpleListFilter):
    """Active or revoked rows of a model with `revoked_at` (sync devices, API keys, tokens)."""

    title = _("revoked")
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", _("Active")), ("yes", _("Revoked"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


def selects_across(request: HttpRequest) -> bool:
    """Whether an action's POST asks for every row of the filtered list ("select all N"), read as
    Django's action form reads its `select_across` checkbox."""
    return str(request.POST.get("select_across", "")).strip().lower() not in ("", "0", "false")


class BigTableChangeList(ChangeList):
    """A big table's list, sorted only by the columns its admin offers (`sortable_by`). Django
    sorts by any column named by its place in `?o=` (an old bookmark, a hand-made link), offered
    or not: on a table of millions, a sort of the whole table for each page."""

    def get_ordering_field(self, field_name: Any) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class NewestFirstPaginator(InfinitePaginator):
    """Pages of a list partitioned by month and read newest first by its UUID v7 key (the stock
    ledger).

    Newest first, PostgreSQL merges the partitions' primary keys read backwards, and first reads
    each partition up to its newest row that passes the list's filters: a month without any (the
    months of the first stock, before any order, for the vendor or the sale filter) is read whole,
    every such month (about 1 s on 7 million movements). So a page is first asked of the rows
    whose key was made in the last month: an index condition, which ends an older month's scan at
    its first key. A page those rows fill is the whole list's page (every older row has a lower
    key, so comes after them). Otherwise the whole list is read, as before: the attempt cost one
    month of the list, once."""

    window = dt.timedelta(days=31)

    def page(self, number: Any) -> Any:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        rows = self.object_list
        # Not when sorted by another column (Django may name the key twice).
        if rows.query.order_by and set(rows.query.order_by) <= {"-id", "-pk"}:
            since = timezone.now() - self.window
            # The lowest v7 key of that millisecond: its random bits all zero.
            floor = uuid.UUID(int=uuid7_int(int(since.timestamp() * 1000), 0))
            recent = list(rows.filter(pk__gte=floor)[bottom:top])
            if len(recent) == self.per_page:
                return self._get_page(recent, number, self)
        return self._get_page(rows[bottom:top], number, self)


class BigTableMixin:
    """Millions of rows: no COUNT(*) per page or per filter choice, and no "select all N" (N would
    be a guess). The list offers no "select all", and an action's POST that asks for it anyway (a
    script, a page of another list) is refused: Django would run the action on every row of the
    filtered list, a million orders cancelled or products deleted one by one.

    Its columns sort only where an index gives their order (`sortable_by`, none by default): the
    sort of any other column reads and sorts the whole table for each page (seconds for a
    million products or stock movements). `BigTableChangeList` holds the list to them. A list
    narrowed to one parent's rows (`narrowing_lookups`: a vendor's orders, a product's ledger,
    read through that key's index) sorts by any column: a few thousand rows."""

    paginator = InfinitePaginator
    sortable_by: Any = ()
    narrowing_lookups: tuple[str, ...] = ()
    show_full_result_count = False
    # No "Show counts" (?_facets=True): it counts the table once per choice of every filter.
    show_facets = admin.ShowFacets.NEVER
    list_disable_select_all = True
    # Half of the page time is rendering the rows (unfold): 25 rows keep lists fast on slow links.
    list_per_page = 25

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> Any:
        return BigTableChangeList

    def get_sortable_by(self, request: HttpRequest) -> Any:
        if any(request.GET.get(lookup) for lookup in self.narrowing_lookups):
            return self.get_list_display(request)  # type: ignore[attr-defined]
        return self.sortable_by

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        if selects_across(request):
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext(
                    "This list is too long to act on all of its rows at once: nothing was done. "
                    "Tick the rows to act on, page by page (filter the list first)."
                ),
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset)  # type: ignore[misc]


class HidesSecrets:
    """An admin of a model with secret columns (an API key's hash, a token's): they are never on
    its pages, and its list takes no filter on them. Django lets a list filter on any of the
    model's own fields from its query string: `?key_hash__startswith=a7` would tell whoever may
    view the list the hash, a character at a time. Such a filter is a 400, as Django's own
    refusal of a lookup it does not allow."""

    secret_fields: tuple[str, ...] = ()

    def shown_fields(self) -> list[str]:
        """The model's fields but the secret ones, for the (read-only) pages."""
        return [f.name for f in self.model._meta.fields if f.name not in self.secret_fields]  # type: ignore[attr-defined]

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        if lookup.split(LOOKUP_SEP, 1)[0] in self.secret_fields:
            return False
        return bool(super().lookup_allowed(lookup, value, request))  # type: ignore[misc]


def is_autocomplete(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return bool(match and match.url_name == "autocomplete")


# --- Tracked models -----------------------------------------------------------------------------


HISTORY_DIFF_IGNORED = {"id", "updated_at", "deleted_by_cascade", "search_vector"}


def _shown(value: Any, field: Any = None) -> str:
    """A value of a history diff as staff read it: a choice by its label, no "None"."""
    from django.utils import formats, timezone

    if value is None:
        return "-"
    if field is not None and field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if hasattr(value, "tzinfo"):
        return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return str(value)


class HistoryDiffs(HistoricalRecordContextHelper):
    """simple-history's field diffs with choices by their label ("acceptée", not "accepted") and
    no "None" for an empty value."""

    def prepare_delta_change_value(self, change: Any, value: Any) -> Any:
        field = self.model._meta.get_field(change.field)
        if value is None or (field.choices and not field.many_to_many):
            return _shown(value, field)
        return super().prepare_delta_change_value(change, value)


class ServiceRefused(Exception):
    """A service refused the form's change: the admin shows the form again with the error."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(str(error))
        self.error = error


REFUSAL_ATTR = "_okada_service_refusal"
#: The change form's hidden input: when the row was last changed as the user opened it.
LOADED_AT = "_okada_loaded_at"


def _select2_translations() -> str:
    from django.contrib.admin.widgets import get_select2_language

    return f"admin/js/vendor/select2/i18n/{get_select2_language() or 'en'}.js"


class _Select2Translations(Script):
    """The script of select2's translations in the page's language, chosen when the page's media
    are rendered. Not a lazy string: the static files storage of production (a manifest, hashed
    names) refuses one (the pages that had this filter were a 500 under `make serve`). Equal to
    the path Django's autocomplete widget names, so a page with both loads the file once."""

    def __init__(self) -> None:  # no fixed path: `_path` is the page's language's
        self.attributes: dict[str, Any] = {}

    @property
    def _path(self) -> str:
        return _select2_translations()


_SUFFIX = "" if settings.DEBUG else ".min"


class AutocompleteFilterForm(AutocompleteDropdownForm):
    class Media:
        # unfold's filter loads select2.full.js without its translations ("Searching…", "No
        # results found", "Remove all items" on French pages), and next to Django's autocomplete
        # widget (select2.full.min.js) a page loaded two select2 builds and neither spoke French.
        # The same files as Django's widget (AutocompleteMixin.media), so a page has one of each,
        # the translations of the page's language (read when the page's media are gathered)
        # between select2 and jquery.init.js (which takes the global jQuery away).
        # Instead of unfold's form's media, not beside them: a Media class extends its parent's
        # by default, and the form's `media` named both select2 builds and both stylesheets
        # (unfold's list page reads this inner class alone, so it had one of each, but anything
        # rendering `form.media` loaded two). The stylesheet is the widget's too.
        extend = False
        js = (
            f"admin/js/vendor/jquery/jquery{_SUFFIX}.js",
            f"admin/js/vendor/select2/select2.full{_SUFFIX}.js",
            _Select2Translations(),
            "admin/js/jquery.init.js",
            "unfold/js/select2.init.js",
        )
        css = {"screen": (f"admin/css/vendor/select2/select2{_SUFFIX}.css", "admin/css/autocomplete.css")}


class AutocompleteFilter(AutocompleteSelectFilter):
    """unfold's autocomplete list filter, in the page's language."""

    form_class = AutocompleteFilterForm


class RefusalOnForm:
    """Add and change forms whose save goes through a service: a refusal (ServiceRefused) is shown
    on the same form again, with what the user typed, never a 500."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        refusal = getattr(request, REFUSAL_ATTR, None)
        return _form_showing(form, refusal) if refusal is not None else form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        view = super().changeform_view  # type: ignore[misc]
        try:
            return view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            # The view's transaction was rolled back; show the same form with the refusal.
            setattr(request, REFUSAL_ATTR, refused.error)
            return view(request, object_id, form_url, extra_context)


def _form_showing(form_class: type, refusal: DomainError) -> type:
    """`form_class` whose validation fails with the service's refusal (on its fields if named)."""

    class RefusedForm(form_class):
        def clean(self) -> Any:
            cleaned = super().clean()
            placed = False
            for field, errors in refusal.errors.items():
                if field in self.fields and field not in self._errors:
                    for error in errors:
                        self.add_error(field, error)
                    placed = True
            if not placed:
                self.add_error(None, refusal.message)
            return cleaned

    RefusedForm.__name__ = form_class.__name__
    return RefusedForm


class TrackedAdmin(RefusesOddInput, RefusalOnForm, HistoryOfValidIds, SimpleHistoryAdmin, ModelAdmin):
    """Admin of a tracked model: every write through its services (see the module docstring)."""

    actions = ["delete_selected", "restore_selected", "hard_delete_selected"]
    list_filter: Any = (DeletedFilter,)
    readonly_fields: Any = ("id", "created_at", "updated_at", "deleted_at")
    list_filter_submit = True
    #: Fields a history revert may bring back through `update_object`; empty = no revert.
    revert_fields: tuple[str, ...] = ()
    #: Inside the change form (unfold's hook): the LOADED_AT input.
    change_form_before_template = "admin/okada/loaded_at.html"

    # --- The write path: subclasses call their services ----------------------------------------

    def create_object(self, request: HttpRequest, form: Any) -> Model:
        raise PermissionDenied  # no create service: the model is created elsewhere

    def update_object(self, request: HttpRequest, obj: Any, form: Any) -> Model:
        raise PermissionDenied

    def delete_object(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied

    def restore_object(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied

    @staticmethod
    def form_data(form: Any, fields: Iterable[str]) -> dict[str, Any]:
        """The cleaned values of `fields` that the form has (for an update service's `data`)."""
        return {f: form.cleaned_data[f] for f in fields if f in form.cleaned_data}

    # --- Reads ------------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Staff must see deleted rows to restore them (the filter defaults to live rows); an
        # autocomplete never offers a deleted row (a product's vendor, an order's zone...).
        manager = self.model.objects if is_autocomplete(request) else self.model.all_objects
        qs = manager.all()
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        return filters if DeletedFilter in filters else [DeletedFilter, *filters]

    # --- Add / change form --------------------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if change and obj is not None:
            context["okada_loaded_at"] = self._opened_at(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def _opened_at(request: HttpRequest, obj: Any) -> str:
        """The live row's `updated_at` when the form was opened. Shown again after an error, the
        form keeps the time it was first opened at; after a ChangedSinceOpened refusal it takes
        the new one, so saving again is a choice."""
        posted = request.POST.get(LOADED_AT)
        refused = isinstance(getattr(request, REFUSAL_ATTR, None), ChangedSinceOpened)
        return posted if posted and not refused else obj.updated_at.isoformat()

    def refuse_if_changed_since_opened(self, request: HttpRequest, obj: Any) -> None:
        """Two staff editing one row: the second save must not silently undo the first. The row is
        locked until the view's transaction ends, so the service writes what was checked.

        FOR NO KEY UPDATE, as the update services lock the rows others point at (a vendor, zone
        or customer an order placement key-share-locks): another save, or a delete, still waits
        for this one, but placements neither wait for it nor hold it up. A service that then
        locks the row FOR UPDATE takes the stronger lock in the same transaction."""
        opened = request.POST.get(LOADED_AT)
        if not opened:
            return  # a POST made without either form (a script, a test): a deliberate write
        now = (
            type(obj)
            ._base_manager.select_for_update(no_key=True)
            .filter(pk=obj.pk)
            .values_list("updated_at", flat=True)
        )
        changed = now.first()
        if changed is not None and changed.isoformat() != opened:
            raise ServiceRefused(
                ChangedSinceOpened(
                    Text(
                        gettext_noop(
                            "Someone else saved this record at %(when)s, after you opened it, so your "
                            "changes were not saved. Check their change in the history: saving this form "
                            "again will replace it."
                        ),
                        when=_shown(changed),
                    )
                )
            )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            self.refuse_if_changed_since_opened(request, obj)
        try:
            saved = self.update_object(request, obj, form) if change else self.create_object(request, form)
        except DomainError as exc:
            raise ServiceRefused(exc) from exc
        # The admin goes on with `obj` (log entry, message, redirect): make it the saved row.
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Many-to-many fields and inlines of tracked models are written by the services too; an
        # admin that has editable inlines must save them in its update_object.
        return None

    # --- Delete, restore, hard delete -----------------------------------------------------------------

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Django would walk every related row (a vendor's 1,000 products) to list them. A delete
        # here is a soft delete that the service refuses while live rows still depend on the row
        # (the page says so instead, soft_delete_refused_page), so the page lists and counts the
        # rows themselves, each linked to its page as Django lists rows; permission is checked by
        # has_delete_permission. No row is reported as protected: Django would then answer a
        # confirmation with the page again, and the services must be the ones to refuse it.
        # (A delete for good removes what depends on the rows: its page counts them without
        # walking them, hard_delete_summary.)
        rows = list(objs)
        opts = self.model._meta
        listed = [
            row_line(opts.verbose_name, format_html('<a href="{}">{}</a>', change_url(r), r)) for r in rows
        ]
        return listed, ({opts.verbose_name_plural: len(rows)} if rows else {}), set(), []

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_object(request, obj)

    def soft_delete_refusals(self, pks: Any) -> list[tuple[str, list[Any]]]:
        """What the model's soft delete service refuses among the rows `pks` (a list of keys or a
        query of them) besides rows in use, as (why, the rows named) for the page (an open
        order: cancel it first). Bounded: the first HARD_DELETE_LISTED rows. None by default."""
        return []

    def soft_delete_refused_page(
        self, request: HttpRequest, pks: Any, count: int, back_url: str
    ) -> TemplateResponse | None:
        """The delete page of rows the services would refuse to soft-delete (used by live rows:
        a vendor's products; or refused by the model's service: soft_delete_refusals), saying
        which and why, with no confirmation; None when they can all go. A selection goes whole or
        not at all (README). The page only informs: a confirmation posted anyway reaches the
        services, which refuse those rows."""
        in_use, using = soft_delete_refusals(self.model, pks, self.admin_site)
        refused = [*self.soft_delete_refusals(pks), *in_use]
        if not refused:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Cannot be deleted"),
            "refused": refused,
            "protected": summary_lines(using, self.admin_site),
            "protected_count": summary_counts(using).items(),
            "count": count,
            "back_url": back_url,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/okada/soft_delete_refused.html", context)

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> Any:
        # Shown on a GET only (a POST confirms: Django renders the form again only for protected
        # rows, which get_deleted_objects never reports here), after the delete permission check.
        obj = context["object"]
        refused = self.soft_delete_refused_page(request, [obj.pk], 1, change_url(obj))
        return refused or super().render_delete_form(request, context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("/delete/", 1)[0] + "/change/")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_per_object(
            self, request, queryset.filter(deleted_at__isnull=True), self._delete_one(request), rows_deleted
        )

    def _delete_one(self, request: HttpRequest) -> Callable[[Any], None]:
        return lambda obj: self.delete_object(request, obj)

    @admin.action(permissions=["delete"], description=_("Delete selected %(verbose_name_plural)s"))
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> Any:
        """Soft delete through the service, row by row, after Django's confirmation page."""
        if request.POST.get("post") and not request.POST.get("cancel"):
            self.delete_queryset(request, queryset)
            return None
        refused = self.soft_delete_refused_page(
            request, queryset.order_by().values("pk"), queryset.count(), request.get_full_path()
        )
        return refused or django_delete_selected(self, request, queryset)

    @admin.action(permissions=["change"], description=_("Restore selected deleted rows"))
    def restore_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        run_per_object(
            self,
            request,
            queryset.filter(deleted_at__isnull=False),
            lambda obj: self.restore_object(request, obj),
            rows_restored,
        )

    def hard_delete_object(self, request: HttpRequest, obj: Any) -> None:
        """A model whose rows hold something a hard delete would strand (an open order's stock
        reservation) overrides this with its own service."""
        services.tracked_hard_delete(obj=obj, actor=staff_actor(request))

    def lock_before_hard_delete(self, pks: list[Any]) -> None:
        """Lock, before the selected rows, the rows the delete removes that other writers lock
        before those: the confirmation locks the selected rows first, then deletes what goes
        with them, so such a writer and the confirmation would each wait for the other (a
        placement holds a product's stock row, then its order's foreign keys key-share-lock the
        product at commit). None by default."""

    def hard_delete_refusals(self, pks: list[Any]) -> list[tuple[str, list[Any]]]:
        """What the model's hard delete service refuses among the rows `pks`, whatever refers to
        them, as (why, the rows named) for the page (an open order: cancel it first). The page only
        informs: the service refuses them anyway. None by default."""
        return []

    def has_hard_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(permissions=["hard_delete"], description=_("Delete selected rows for good (superusers)"))
    def hard_delete_selected(self, request: HttpRequest, queryset: QuerySet) -> Any:
        """Remove rows for good: superusers only, at most HARD_DELETE_MAX at a time, after a
        confirmation page that counts what goes with them (okada.core.deletion.hard_delete_summary)
        or names what stops them, with no confirmation then (rows referring to them, counted up to
        a bound; rows the service refuses: hard_delete_refusals). A confirmation posted anyway is
        refused by the services, row by row. The confirmation deletes only if the rows and what
        goes with them are still those the page counted: it locks the selected rows and the
        cascaded rows others refer to (no new row can be added under them, at any depth:
        hard_delete_summary), counts again and compares with the page's fingerprint, in the
        transaction of the deletes."""
        if not self.has_hard_delete_permission(request):
            raise PermissionDenied
        pks = list(queryset.order_by().values_list("pk", flat=True)[: HARD_DELETE_MAX + 1])
        if len(pks) > HARD_DELETE_MAX:
            self.message_user(
                request,
                gettext(
                    "At most %(max)d rows can be deleted for good at a time: nothing was deleted. "
                    "Select fewer rows (filter the list first)."
                )
                % {"max": HARD_DELETE_MAX},
                messages.ERROR,
            )
            return None
        try:
            if request.POST.get("confirm") == "yes":
                with transaction.atomic(using=router.db_for_write(self.model)):
                    self.lock_before_hard_delete(pks)
                    locked = list(
                        self.model._base_manager.filter(pk__in=pks).order_by("pk").select_for_update()
                    )
                    summary = hard_delete_summary(self.model, pks, lock=True)
                    # What stops the delete (rows referring to them, an open order) is the page's
                    # to say; here the services refuse it, row by row, whatever the page said.
                    if summary.fingerprint == request.POST.get("counted"):
                        run_per_object(
                            self,
                            request,
                            locked,
                            lambda obj: self.hard_delete_object(request, obj),
                            rows_deleted_for_good,
                        )
                        return None
                self.message_user(
                    request,
                    gettext(
                        "The rows to delete or what goes with them changed since the page was shown: "
                        "nothing was deleted. Check the page again."
                    ),
                    messages.WARNING,
                )
            else:
                summary = hard_delete_summary(self.model, pks)
        except TooDeep:
            self.message_user(
                request,
                gettext("What goes with these rows is too deep to count: nothing was deleted."),
                messages.ERROR,
            )
            return None
        # What the services would refuse is said here, with no confirmation, rather than after it
        # (Django's "protected objects" page); the services still refuse it on a confirmation.
        refused = self.hard_delete_refusals(pks)
        blocked = bool(summary.protected or refused)
        # The related rows' own delete permissions are not asked: a hard delete is the superusers',
        # through the service.
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Cannot be deleted for good") if blocked else gettext("Delete for good?"),
            "blocked": blocked,
            "refused": refused,
            "deleted_objects": [] if blocked else summary_lines(summary.deleted, self.admin_site),
            "model_count": summary_counts(summary.deleted).items(),
            "protected": summary_lines(summary.protected, self.admin_site),
            "protected_count": summary_counts(summary.protected).items(),
            "objects_name": model_ngettext(self.model._meta, len(pks)),
            "count": len(pks),
            "selected": pks,
            "counted": summary.fingerprint,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "hard_delete_selected",
        }
        return TemplateResponse(request, "admin/okada/hard_delete_confirmation.html", context)

    # --- History: read by anyone who may view; revert only through the services -----------------------

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return not (self.revert_fields and self.has_change_permission(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if getattr(request, "_okada_history_revert", False):
            # A revert brings back `revert_fields` only; the change page's other fields are shown,
            # not sent (columns it does not show, such as a search vector, are not shown either).
            names = [f.name for f in self.model._meta.fields if f.editable]
            readonly += [n for n in names if n not in self.revert_fields and n not in readonly]
        return readonly

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "POST" and self.revert_disabled(request, obj):
            # simple-history would save the historical row as it was (no services, no checks).
            raise PermissionDenied
        request._okada_history_revert = True  # type: ignore[attr-defined]
        try:
            # One transaction, as the change form's: the save and its log entry together, and the
            # row lock of refuse_if_changed_since_opened held to the end.
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().history_form_view(
                    request, object_id, version_id, self._loaded_at_context(request, obj, extra_context)
                )
        except ServiceRefused as refused:
            setattr(request, REFUSAL_ATTR, refused.error)
            obj = self.get_object(request, object_id)  # the row as the refusal found it
            return super().history_form_view(
                request, object_id, version_id, self._loaded_at_context(request, obj, extra_context)
            )

    def _loaded_at_context(self, request: HttpRequest, obj: Any, extra_context: Any) -> dict[str, Any]:
        """A revert replaces the live row too: its form carries the time the live row had when the
        form was opened, checked on save like the change form's."""
        context = dict(extra_context or {})
        if obj is not None:
            context["okada_loaded_at"] = self._opened_at(request, obj)
        return context

    def get_historical_record_context_helper(self, request: HttpRequest, historical_record: Any) -> Any:
        return HistoryDiffs(self.model, historical_record)

    def set_history_delta_changes(
        self, request: HttpRequest, historical_records: Any, foreign_keys_are_objs: bool = True
    ) -> None:
        """Field diffs of every change, soft delete and restore included (simple-history compares
        only editable fields, which would hide `deleted_at` and `version`), and the reasons in
        the active language."""
        previous = None
        for current in historical_records:
            current.history_change_reason = reason_label(current.history_change_reason) or ""
            if previous is not None:
                delta = previous.diff_against(current, foreign_keys_are_objs=foreign_keys_are_objs)
                helper = self.get_historical_record_context_helper(request, previous)
                changes = helper.context_for_delta_changes(delta)
                for field in previous.tracked_fields:
                    if field.editable or field.name in HISTORY_DIFF_IGNORED:
                        continue
                    old, new = getattr(current, field.attname), getattr(previous, field.attname)
                    if old != new:
                        changes.append(
                            {
                                "field": field.verbose_name,
                                "old": _shown(old, field),
                                "new": _shown(new, field),
                            }
                        )
                previous.history_delta_changes = changes
            previous = current

    def has_view_history_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_or_change_permission(request, obj)

    def has_change_history_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.revert_disabled(request, obj)


def change_url(obj: Model) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def changelist_url(model: type[Model], **params: Any) -> str:
    from urllib.parse import urlencode

    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


# --- Logs and ledgers ---------------------------------------------------------------------------


def stored_text_display(model: type[Model], name: str) -> Callable[[Any], str | None]:
    """A display function for the text field `name` of `model` holding an okada.core.texts text
    (an error, a note): the text in the page's language."""
    label = getattr(model._meta.get_field(name), "verbose_name", name)

    @admin.display(description=label)
    def display(obj: Any) -> str | None:
        return shown(getattr(obj, name)) or None

    display.__name__ = f"{name}_shown"
    return display


class ReadOnlyAdmin(RefusesOddInput, ModelAdmin):
    """For logs and ledgers (job runs, stock movements, order events): staff read, nobody edits.

    `shown_as = {"reason": "reason_shown"}` shows a field on the page through a display method
    instead (a value stored in English or as a code, shown in the page's language).
    `stored_texts = ("error",)` does so for text fields written with okada.core.texts: each is
    shown as `<field>_shown` (usable in list_display too), in the page's language."""

    shown_as: dict[str, str] = {}
    stored_texts: tuple[str, ...] = ()

    def __init__(self, model: type[Model], admin_site: Any) -> None:
        super().__init__(model, admin_site)
        for name in self.stored_texts:
            setattr(self, f"{name}_shown", stored_text_display(model, name))
        self.shown_as = {**{name: f"{name}_shown" for name in self.stored_texts}, **self.shown_as}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [self.shown_as.get(f.name, f.name) for f in self.model._meta.fields]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.fields:
            return self.fields
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LabelledValuesFilter(admin.SimpleListFilter):
    """A filter on the values a field holds (a code stored in English), each shown by `label`
    in the page's language; the URL keeps the stored value (`?name=backups.run_backup`)."""

    parameter_name: str  # the field

    def label(self, value: str) -> str:
        return value

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = (
            model_admin.get_queryset(request)
            .order_by()
            .values_list(self.parameter_name, flat=True)
            .distinct()
        )
        return sorted(((v, self.label(v)) for v in values), key=lambda choice: choice[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


def _folded(text: str) -> str:
    """Lower case without accents: "Exécutions" and "executions" match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class JobFilter(LabelledValuesFilter):
    title = _("job")
    parameter_name = "name"

    def label(self, value: str) -> str:
        return job_label(value)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ("name_shown", "outcome_badge", "started_at", "finished_at", "duration_shown", "host")
    list_filter = ("outcome", JobFilter)
    search_fields = ("name",)
    date_hierarchy = "started_at"
    show_full_result_count = False
    shown_as = {"name": "job_and_task", "summary": "summary_shown"}
    stored_texts = ("error",)  # a traceback as it is; a job's own error in the page's language

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        """The task name as typed, or words of a job's label in the reader's language ("sauvegarde")."""
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        words = _folded(search_term).split()
        if words:
            names = [n for n in labelled_task_names() if all(w in _folded(job_label(n)) for w in words)]
            if names:
                found |= queryset.filter(name__in=names)
        return found, may_have_duplicates

    @admin.display(description=_("job"), ordering="name")
    def name_shown(self, run: JobRun) -> str:
        return job_shown(run.name)

    @admin.display(description=_("job"))
    def job_and_task(self, run: JobRun) -> str:
        return format_html('{}<br><code class="okada-muted">{}</code>', job_label(run.name), run.name)

    @admin.display(description=_("summary"))
    def summary_shown(self, run: JobRun) -> str:
        return job_summary(run.name, run.summary)

    @admin.display(description=_("outcome"), ordering="outcome")
    def outcome_badge(self, run: JobRun) -> str:
        return badge(run.outcome, run.get_outcome_display())

    @admin.display(description=_("duration"))
    def duration_shown(self, run: JobRun) -> Any:
        return run.duration


# --- Third-party models in the same theme: users and groups, periodic tasks ---------------------

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin  # noqa: E402
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin  # noqa: E402
from django.contrib.auth.models import Group, Permission  # noqa: E402
from django_celery_beat import admin as beat_admin  # noqa: E402
from django_celery_beat import models as beat  # noqa: E402
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm  # noqa: E402
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget  # noqa: E402

for _model in (get_user_model(), Group, *beat_admin.admin.site._registry.keys()):
    if admin.site.is_registered(_model) and _model._meta.app_label in ("auth", "django_celery_beat"):
        admin.site.unregister(_model)


class RoleFilter(admin.SimpleListFilter):
    """Django's filter on groups, the roles' names in the page's language."""

    title = _("groups")
    parameter_name = "groups__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        return [(group.pk, role_label(group.name)) for group in Group.objects.order_by("name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(groups__id=self.value()) if self.value() else queryset


class RoleChoiceField(forms.ModelMultipleChoiceField):
    """The user form's groups, the roles' names in the page's language."""

    def label_from_instance(self, obj: Any) -> str:
        return role_label(obj.name)


def _permission_name(permission: Any) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _permission_names(permissions: Any) -> set[str]:
    return {_permission_name(p) for p in permissions}


class _GrantsOnlyOwnPermissions:
    """A form that grants permissions (a user's roles and own permissions, a role's permissions)
    grants none its editor lacks: else anyone who may edit users or roles could make themselves
    anything. Superusers hold every permission, so they pass."""

    editor: Any = None  # set per request by the admin's get_form
    GRANTING: dict[str, str] = {}  # field -> "groups" (permissions through roles) or "permissions"

    def clean(self) -> Any:
        data = super().clean()  # type: ignore[misc]
        if self.editor is None:
            return data
        for field, kind in self.GRANTING.items():
            if field not in data:
                continue
            before = set(getattr(self.instance, field).all()) if self.instance.pk else set()  # type: ignore[attr-defined]
            added = [x for x in data[field] if x not in before]
            # The permissions granted, each named with its app in one query.
            lookup = {"group__in": added} if kind == "groups" else {"pk__in": [p.pk for p in added]}
            added = list(Permission.objects.filter(**lookup).select_related("content_type"))
            beyond = [p for p in added if not self.editor.has_perm(_permission_name(p))]
            if beyond:
                self.add_error(  # type: ignore[attr-defined]
                    field,
                    gettext("You may not grant permissions you do not hold yourself: %(permissions)s.")
                    # Labels may hold commas ("Can adjust stock (add or remove units, with a reason)").
                    % {"permissions": "; ".join(permission_labels(beyond))},
                )
        return data


def _why_out_of_reach(account: Any, editor: Any) -> Any:
    """Why `editor` may not change or delete `account`, or None. Taking an account (setting its
    password, re-activating, renaming it) would give the editor all it can do: that is a
    permission the editor lacks (through a role or directly, active or not), or a power beyond
    Django permissions (okada.core.account_powers: a vendor's member acts for the vendor through
    the API) the editor could not get anyway. Each refusal says whom to ask."""
    if editor.is_superuser:
        return None
    if account.is_superuser:
        return gettext(
            "This account is a superuser's: only a superuser may change it, set its password or delete it."
        )
    held = Permission.objects.filter(Q(user=account) | Q(group__user=account)).select_related("content_type")
    if any(not editor.has_perm(p) for p in _permission_names(held)):
        return gettext(
            "This account holds permissions you do not hold: only someone who holds them all, or a "
            "superuser, may change it, set its password or delete it: ask one of them."
        )
    powers = account_powers.beyond(account, editor)
    return powers[0].refusal if powers else None


def _out_of_reach(request: HttpRequest, account: Any) -> Any:
    """`_why_out_of_reach` for the logged-in editor, asked once per account and request: a change
    page asks it of its account a dozen times."""
    if account is None or account.pk is None:
        return None
    asked = request.__dict__.setdefault("_okada_out_of_reach", {})
    if account.pk not in asked:
        asked[account.pk] = _why_out_of_reach(account, request.user)
    return asked[account.pk]


def _within_reach(request: HttpRequest, account: Any) -> bool:
    return _out_of_reach(request, account) is None


def _role_within_reach(request: HttpRequest, group: Any) -> bool:
    if group is None or request.user.is_superuser:
        return True
    held = group.permissions.select_related("content_type")
    return all(request.user.has_perm(p) for p in _permission_names(held))


def _granting_form(form: Any, request: HttpRequest, granting: dict[str, str]) -> Any:
    return type(
        form.__name__, (_GrantsOnlyOwnPermissions, form), {"editor": request.user, "GRANTING": granting}
    )


# Read only (to whoever may only view accounts or roles), Django would list permissions and
# roles by their stored English names: these show them by their labels in the page's language.
_SHOWN_ON_USERS = {"user_permissions": "user_permissions_shown", "groups": "groups_shown"}
_SHOWN_ON_ROLES = {"permissions": "permissions_shown"}


def _renamed(fields: Any, names: dict[str, str]) -> list[Any]:
    """A fieldset's fields, those in `names` replaced (fields on one line included)."""
    return [
        tuple(names.get(f, f) for f in field) if isinstance(field, list | tuple) else names.get(field, field)
        for field in fields
    ]


@admin.register(get_user_model())
class UserAdmin(RefusesOddInput, DeletionInWords, BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_filter = ("is_staff", "is_superuser", "is_active", RoleFilter)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return _granting_form(form, request, {"groups": "groups", "user_permissions": "permissions"})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = (*super().get_readonly_fields(request, obj), *_SHOWN_ON_USERS.values())
        return fields if request.user.is_superuser else (*fields, "is_superuser")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": _renamed(options["fields"], _SHOWN_ON_USERS)})
            for name, options in fieldsets
        ]

    @admin.display(description=get_user_model()._meta.get_field("user_permissions").verbose_name)
    def user_permissions_shown(self, user: Any) -> str:
        return permission_list(user.user_permissions.select_related("content_type"))

    @admin.display(description=get_user_model()._meta.get_field("groups").verbose_name)
    def groups_shown(self, user: Any) -> str:
        return (
            ", ".join(sorted((role_label(group.name) for group in user.groups.all()), key=str.lower)) or "-"
        )

    # An account holding more than the editor (a superuser's, a Finance clerk's, a vendor
    # member's) is changed, its password included, or deleted only by someone who holds all of it:
    # else setting its password would be granting oneself what it can do. Its page is then read
    # only, and the editor is told why and whom to ask; its password form, a POST of its change
    # form and its delete page answer 403 with the same words.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _within_reach(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _within_reach(request, obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: Any,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        why = _out_of_reach(request, obj) if change else None
        if why is not None and super().has_change_permission(request):
            self.message_user(request, why, messages.WARNING)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        try:
            return super().change_view(request, object_id, form_url, extra_context)
        except PermissionDenied:
            return self._refused(request, object_id, super().has_change_permission(request))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        try:
            return super().user_change_password(request, id, form_url)
        except PermissionDenied:
            return self._refused(request, id, super().has_change_permission(request))

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        try:
            return super().delete_view(request, object_id, extra_context)
        except PermissionDenied:
            return self._refused(request, object_id, super().has_delete_permission(request))

    def _refused(self, request: HttpRequest, object_id: str, permitted: bool) -> HttpResponse:
        """A 403 saying why (a refusal already made, the transaction rolled back): to an editor
        who may change (or delete) accounts, turned back by this account's reach. Any other
        refusal is the generic 403 page (okada.core.forbidden)."""
        account = self.get_object(request, unquote(object_id)) if permitted else None
        why = _out_of_reach(request, account)
        if account is None or why is None:
            raise PermissionDenied
        return forbidden_page(
            request,
            why,
            title=gettext("You may not change %(user)s") % {"user": account.get_username()},
            back=reverse("admin:auth_user_change", args=[account.pk]),
            back_label=gettext("Back to the account"),
            opts=self.model._meta,
        )

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups":
            kwargs["form_class"] = RoleChoiceField
        if db_field.name == "user_permissions":
            kwargs["form_class"] = PermissionChoiceField
            kwargs["queryset"] = Permission.objects.select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A user some record names (history rows they wrote, admin log entries, vendor
        memberships, payments they settled, keys they issued...) is not deleted: Django would set
        the history's `history_user` to NULL (SET_NULL: the audit trail would lose who did it),
        delete their log entries and memberships for good, outside the services. They are listed
        as protected, which stops the delete page and the "delete selected" action alike;
        deactivating the account is the way. That is asked first, with one EXISTS per relation:
        such a user's rows are then neither counted nor loaded, however many there are."""
        users = list(objs)
        in_records = _named_in_records(users)
        named = [
            gettext(
                "%(user)s is named in the history or other records: deactivate the account instead "
                "(uncheck “active”), so the audit trail keeps their name."
            )
            % {"user": user}
            for user in users
            if user.pk in in_records
        ]
        if named:
            return [], {}, set(), named
        return super().get_deleted_objects(users, request)


def _named_in_records(users: list[Any]) -> set[Any]:
    """The ids of `users` some row points at, but their groups and permissions (history rows
    included: their `history_user` is a hidden relation). One query per relation, however many
    users are selected (there are some thirty relations), each stopping at a user's first row
    (EXISTS over the relation's index), however many rows name them."""
    if not users:
        return set()
    model = type(users[0])
    ids = {user.pk for user in users}
    found: set[Any] = set()
    for relation in model._meta.get_fields(include_hidden=True):
        if not relation.auto_created or relation.concrete or relation.many_to_many:
            continue
        if relation.related_model._meta.auto_created:  # the groups' and permissions' link tables
            continue
        column = relation.field.attname
        naming = relation.related_model._base_manager.filter(**{column: OuterRef("pk")})
        found |= set(
            model._base_manager.filter(Exists(naming), pk__in=ids - found).values_list("pk", flat=True)
        )
        if found == ids:
            break
    return found


@admin.register(Group)
class GroupAdmin(RefusesOddInput, DeletionInWords, BaseGroupAdmin, ModelAdmin):
    list_display = ("name_shown",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The roles' migrations grant new permissions to them by name: a renamed role would
        # silently stop receiving them, so a role's name is shown, not edited.
        fields = list(super().get_fields(request, obj))
        if obj is not None and obj.name in ROLES:
            fields = ["name_shown" if f == "name" else f for f in fields]
        if obj is not None and not self.has_change_permission(request, obj):
            fields = _renamed(fields, _SHOWN_ON_ROLES)
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = (*super().get_readonly_fields(request, obj), *_SHOWN_ON_ROLES.values())
        return (*fields, "name_shown") if obj is not None and obj.name in ROLES else fields

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "permissions":
            kwargs["form_class"] = PermissionChoiceField
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # selects the content types

    @admin.display(description=Group._meta.get_field("permissions").verbose_name)
    def permissions_shown(self, group: Group) -> str:
        return permission_list(group.permissions.select_related("content_type"))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return _granting_form(form, request, {"permissions": "permissions"})

    # As for accounts: a role holding a permission its editor lacks is changed or deleted only by
    # someone who holds all of it, else anyone who may edit roles could strip or drop Finance's.
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _role_within_reach(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _role_within_reach(request, obj)

    @admin.display(description=_("name"), ordering="name")
    def name_shown(self, group: Group) -> str:
        return role_label(group.name)

    # A role's page and history name it in the page's language, in the header and the window's
    # title (they show the record as `str()` makes it: its stored English name).
    def render_change_form(
        self,
        request: HttpRequest,
        context: Any,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.name in ROLES:
            context.update(subtitle=role_label(obj.name), original=_NamedAs(obj, role_label(obj.name)))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        group = Group.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if group is not None and group.name in ROLES:
            shown = role_label(group.name)
            extra_context = {
                **(extra_context or {}),
                "title": gettext("Change history: %s") % shown,
                "object": _NamedAs(group, shown),
            }
        return super().history_view(request, object_id, extra_context)


class _NamedAs:
    """A record for a page's templates, which show it as `str(record)`: the same record, named
    otherwise (a role by its name in the page's language)."""

    def __init__(self, record: Model, name: str) -> None:
        self._record, self._name = record, name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._record, attribute)

    def __str__(self) -> str:
        return self._name


class _TaskSelectWidget(UnfoldAdminSelectWidget, beat_admin.TaskSelectWidget):
    def tasks_as_choices(self) -> tuple[tuple[str, str], ...]:
        """beat's registered tasks, each by its job's label with the task name beside it."""
        choices = super().tasks_as_choices()
        return tuple(
            (name, f"{job_label(name)} ({name})" if job_label(name) != name else name) for name, _ in choices
        )


def run_permission(task_name: str) -> str | None:
    """The permission a user needs to start `task_name` from the scheduled jobs' screens: the one
    its own "run now" button asks for, declared on the task (okada.core.jobs.started_by_hand_with).
    None: the change permission on schedules is enough."""
    return getattr(registered_task(task_name), "run_permission", None)


def _may_run(user: Any, task_name: str) -> bool:
    needed = run_permission(task_name)
    return needed is None or bool(user.has_perm(needed))


class _PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    user: Any = None  # set per request by PeriodicTaskAdmin.get_form
    CATALOGUED = ("name", "description")  # the default schedules' are in the catalogue

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["task"].label = _("task name")  # beat's "Task Name" has no French
        self.fields["regtask"].widget = _TaskSelectWidget()
        # The default schedules' names and descriptions are stored in English and catalogued
        # (their migrations): shown in the reader's language, stored back in English when left
        # as shown, so English readers (and scripts that look a schedule up by name) keep them.
        for field in self.CATALOGUED:
            stored = getattr(self.instance, field)
            if stored and field in self.fields:
                self.initial[field] = gettext(stored)

    def _as_stored(self, field: str) -> str:
        value: str = self.cleaned_data.get(field) or ""
        stored = getattr(self.instance, field)
        return stored if stored and value.strip() == gettext(stored).strip() else value

    def clean_name(self) -> str:
        return self._as_stored("name")

    def clean_description(self) -> str:
        return self._as_stored("description")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()
        task = data.get("task") or ""
        if self.user is None:
            return data
        # Pointing a schedule at a task is starting it: the task's own permission, as its button.
        if task != self.instance.task and not _may_run(self.user, task):
            raise forms.ValidationError(
                gettext("You may not schedule %(task)s: it needs the permission %(permission)s.")
                % {"task": job_label(task), "permission": run_permission(task)}
            )
        # So is deciding when (or whether) it runs: only its name and description are free.
        # Pointing it at another job is taking its own job off the schedule, as disabling it.
        timing = set(self.changed_data) - {*self.CATALOGUED, "task", "regtask"}
        if task != self.instance.task:
            timing.add("task")
        if self.instance.pk and timing and not _may_run(self.user, self.instance.task):
            raise forms.ValidationError(
                gettext(
                    "You may not change when %(task)s runs: it needs the permission %(permission)s. "
                    "You may still edit its name and description."
                )
                % {"task": job_label(self.instance.task), "permission": run_permission(self.instance.task)}
            )
        return data


def _needs_change(action: Callable[..., Any]) -> Callable[..., Any]:
    """A third-party admin action offered (and run) only for users with the change permission:
    Django offers an action without `permissions` to whoever may view the list."""

    @functools.wraps(action)
    def checked(model_admin: Any, request: HttpRequest, queryset: QuerySet) -> Any:
        return action(model_admin, request, queryset)

    checked.allowed_permissions = ("change",)  # type: ignore[attr-defined]
    return checked


def _refused(model_admin: Any, request: HttpRequest, queryset: QuerySet) -> bool:
    """True, with a message saying which, when `queryset` holds schedules of jobs the user may
    not start (a backup needs `backups.run_backup`): the action then changes nothing."""
    refused = sorted(t.name for t in queryset if not _may_run(request.user, t.task))
    if refused:
        model_admin.message_user(
            request,
            gettext("Nothing was done: you may not start %(jobs)s.")
            % {"jobs": ", ".join(map(gettext, refused))},
            messages.ERROR,
        )
    return bool(refused)


def _runnable_only(action: Callable[..., Any]) -> Callable[..., Any]:
    """beat's action, run only when every selected schedule's job is one the user may start."""

    @functools.wraps(action)
    def checked(model_admin: Any, request: HttpRequest, queryset: QuerySet) -> Any:
        return None if _refused(model_admin, request, queryset) else action(model_admin, request, queryset)

    return checked


class ScheduledJobFilter(JobFilter):
    parameter_name = "task"


@admin.register(beat.PeriodicTask)
class PeriodicTaskAdmin(RefusesOddInput, DeletionInWords, beat_admin.PeriodicTaskAdmin, ModelAdmin):
    form = _PeriodicTaskForm
    list_display = ("name_shown", "enabled", "schedule", "interval", "start_time", "last_run_at", "one_off")
    list_filter = ("enabled", "one_off", ScheduledJobFilter, "start_time", "last_run_at")
    # beat's actions enable, disable, toggle or run schedules now: not for view-only users, and
    # only on jobs the user may start (see _refused).
    enable_tasks = _needs_change(_runnable_only(beat_admin.PeriodicTaskAdmin.enable_tasks))
    disable_tasks = _needs_change(_runnable_only(beat_admin.PeriodicTaskAdmin.disable_tasks))
    toggle_tasks = _needs_change(_runnable_only(beat_admin.PeriodicTaskAdmin.toggle_tasks))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    @admin.action(
        description=beat_admin.PeriodicTaskAdmin.run_tasks.short_description, permissions=["change"]
    )
    def run_tasks(self, request: HttpRequest, queryset: QuerySet) -> Any:
        """beat's "run now", only for jobs the user may start by their own buttons too (a backup
        needs `backups.run_backup`): otherwise nothing is run and the message says why."""
        if _refused(self, request, queryset):
            return None
        return beat_admin.PeriodicTaskAdmin.run_tasks(self, request, queryset)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a schedule decides that its job no longer runs: the job's own permission too.
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or _may_run(request.user, obj.task))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        if any(not _may_run(request.user, t.task) for t in queryset):
            raise PermissionDenied  # the bulk delete's confirmation lists no such schedule
        super().delete_queryset(request, queryset)

    # Read only (to whoever may only view schedules), Django would show the stored name and
    # description: the default schedules' are English, catalogued, shown as the form shows them.
    _SHOWN = {"name": "name_shown", "description": "description_shown"}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": _renamed(options["fields"], self._SHOWN)})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), *self._SHOWN.values())

    @admin.display(description=_("name"), ordering="name")
    def name_shown(self, task: beat.PeriodicTask) -> str:
        return gettext(task.name)  # the default schedules' names are in the catalogue; others as typed

    @admin.display(description=beat.PeriodicTask._meta.get_field("description").verbose_name)
    def description_shown(self, task: beat.PeriodicTask) -> str:
        return gettext(task.description) if task.description else "-"

    @admin.display(description=_("schedule"))
    def schedule(self, task: beat.PeriodicTask) -> str:
        return cron_in_words(task.crontab) if task.crontab is not None else str(task.scheduler)

    @admin.display(description=_("schedule"))
    def crontab_translation(self, task: beat.PeriodicTask) -> str:
        return cron_in_words(task.crontab) if task.crontab is not None else "-"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> Any:
        # beat's own view fills the crontab picker's words in English: ModelAdmin's, with ours.
        words = {c.id: cron_in_words(c) for c in beat.CrontabSchedule.objects.all()}
        context = {**(extra_context or {}), "readable_crontabs": words}
        return super(beat_admin.PeriodicTaskAdmin, self).changeform_view(
            request, object_id, form_url, context
        )


class TasksOfSchedule(TabularInline):
    """The tasks a schedule runs, names in the page's language (beat's inline shows them raw and
    titles itself in English: its catalogue has no French for it)."""

    model = beat.PeriodicTask
    fields = ("name_shown", "task_name", "enabled")
    readonly_fields = fields
    can_delete = False
    extra = 0
    show_change_link = True
    verbose_name = _("periodic task using this schedule")
    verbose_name_plural = _("periodic tasks using this schedule")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Each row is titled by its task's name, which names the task's schedule (its own FK).
        return super().get_queryset(request).select_related("interval", "crontab", "solar", "clocked")

    @admin.display(description=_("name"))
    def name_shown(self, task: beat.PeriodicTask) -> str:
        return gettext(task.name)

    @admin.display(description=_("job"))
    def task_name(self, task: beat.PeriodicTask) -> str:
        return job_shown(task.task)


class _ScheduleOfRunnableJobs:
    """A crontab, interval, clock or solar schedule is shared by reference: changing it re-times
    every task on it, so it takes the run permission of each of their jobs (as the task's own
    form does). Deleting it deletes those tasks: Django's delete pages ask PeriodicTaskAdmin."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed: bool = super().has_change_permission(request, obj)  # type: ignore[misc]
        tasks = obj.periodictask_set.values_list("task", flat=True) if obj is not None else []
        return allowed and all(_may_run(request.user, task) for task in tasks)


@admin.register(beat.CrontabSchedule)
class CrontabScheduleAdmin(
    RefusesOddInput, DeletionInWords, _ScheduleOfRunnableJobs, beat_admin.CrontabScheduleAdmin, ModelAdmin
):
    inlines = [TasksOfSchedule]
    list_display = ("in_words", "expression")
    fields = ("in_words", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
    readonly_fields = ("in_words",)

    @admin.display(description=_("in words"))
    def in_words(self, crontab: beat.CrontabSchedule) -> str:
        return cron_in_words(crontab)

    @admin.display(description=_("cron expression"))
    def expression(self, crontab: beat.CrontabSchedule) -> str:
        return format_html("<code>{}</code>", cron_expression(crontab))


@admin.register(beat.IntervalSchedule)
class IntervalScheduleAdmin(
    RefusesOddInput, DeletionInWords, _ScheduleOfRunnableJobs, beat_admin.IntervalScheduleAdmin, ModelAdmin
):
    inlines = [TasksOfSchedule]


@admin.register(beat.ClockedSchedule)
class ClockedScheduleAdmin(
    RefusesOddInput, DeletionInWords, _ScheduleOfRunnableJobs, beat_admin.ClockedScheduleAdmin, ModelAdmin
):
    inlines = [TasksOfSchedule]


@admin.register(beat.SolarSchedule)
class SolarScheduleAdmin(
    RefusesOddInput, DeletionInWords, _ScheduleOfRunnableJobs, beat_admin.SolarScheduleAdmin, ModelAdmin
):
    inlines = [TasksOfSchedule]
