"""Partition screens: each partitioned table with its partitions, archives, action log, plan, and
"run maintenance now" (queued to Celery; permission checked by the service)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from okada.core.actors import Actor
from okada.core.admin import ReadOnlyAdmin
from okada.core.errors import NotAllowed
from okada.core.forbidden import post_only_page

from . import registry, selectors, services
from .models import PartitionAction, PartitionedTable

RUN_PERMISSION = "partitions.run_partition_maintenance"


@admin.register(PartitionedTable)
class PartitionedTableAdmin(ReadOnlyAdmin):
    list_display = ("name", "policy_label", "retention", "partition_count", "rows", "size")
    show_full_result_count = False

    @admin.display(description=_("policy"))
    def policy_label(self, obj: PartitionedTable) -> Any:
        policy = registry.policy_for(obj.name)
        return policy.label if policy is not None else registry.NO_POLICY

    @admin.display(description=_("retention"))
    def retention(self, obj: PartitionedTable) -> Any:
        policy = registry.policy_for(obj.name)
        return retention_text(policy) if policy is not None else "-"

    @admin.display(description=_("estimated rows"), ordering="estimated_rows")
    def rows(self, obj: PartitionedTable) -> int:
        return obj.estimated_rows

    @admin.display(description=_("size"), ordering="total_bytes")
    def size(self, obj: PartitionedTable) -> str:
        return str(filesizeformat(obj.total_bytes))

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("run/", wrap(self.run_view), name="partitions_run"),
            path("<str:object_id>/plan/", wrap(self.plan_view), name="partitions_plan"),
            *super().get_urls(),
        ]

    def _table_or_404(self, request: HttpRequest, object_id: str) -> PartitionedTable:
        # A table's screen and its plan change nothing: a POST to them is refused, as Django
        # refuses one to the page of a record the reader may not change (they answered it as a
        # GET, so a form pointed at them seemed to have done something).
        if not self.has_view_permission(request) or request.method == "POST":
            raise PermissionDenied
        table = PartitionedTable.objects.filter(pk=unquote(object_id)).first()
        if table is None:
            raise Http404(object_id)
        return table

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        table = self._table_or_404(request, object_id)
        policy = registry.policy_for(table.name)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": table.name,
            "table": table,
            "policy": policy,
            "retention": retention_text(policy) if policy is not None else None,
            "no_policy": registry.NO_POLICY,
            "partitions": selectors.partition_list(table.name),
            "archives": selectors.archived_partitions(table.name)[:100],
            "actions": selectors.recent_actions(table.name),
            "can_run": request.user.has_perm(RUN_PERMISSION),
        }
        return TemplateResponse(request, "admin/partitions/partitionedtable/detail.html", context)

    def plan_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The dry run for one table: what the next run would do, changing nothing."""
        table = self._table_or_404(request, object_id)
        plan = services.maintenance_plan()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Maintenance plan: %(t)s") % {"t": table.name},
            "table": table,
            "plan": plan,
            "steps": [s for s in plan.steps if s.table == table.name],
            "warnings": [w for w in plan.warnings if table.name in w.english()],
            "can_run": request.user.has_perm(RUN_PERMISSION),
        }
        return TemplateResponse(request, "admin/partitions/partitionedtable/plan.html", context)

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a maintenance run now (all tables). The service checks the permission."""
        if request.method != "POST":
            return post_only_page(request, reverse("admin:partitions_partitionedtable_changelist"))
        try:
            services.maintenance_request(actor=Actor.for_staff_user(request.user))
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        self.message_user(
            request,
            _("Partition maintenance was queued: its actions will appear in the log below."),
            messages.SUCCESS,
        )
        back = request.POST.get("table") or ""
        if PartitionedTable.objects.filter(pk=back).exists():
            return HttpResponseRedirect(
                reverse("admin:partitions_partitionedtable_change", args=[quote(back)])
            )
        return HttpResponseRedirect(reverse("admin:partitions_partitionedtable_changelist"))


def retention_text(policy: registry.PartitionPolicy | None) -> str:
    if policy is None or policy.retention_months is None:
        return str(_("kept forever"))
    if policy.archive:
        return str(_("%(n)d months, archived then dropped") % {"n": policy.retention_months})
    return str(_("%(n)d months, then dropped") % {"n": policy.retention_months})


@admin.register(PartitionAction)
class PartitionActionAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "table", "partition", "kind", "outcome", "rows", "attempts", "archive_path")
    list_filter = ("outcome", "kind", "table")
    search_fields = ("partition", "detail")
    stored_texts = ("detail",)
    date_hierarchy = "started_at"
    show_full_result_count = False
