"""The backup catalog in the admin: read-only rows, "back up now" and "verify now" queued to Celery."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import formats
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from okada.core.actors import Actor
from okada.core.admin import ReadOnlyAdmin, row_refused, stored_text_display
from okada.core.errors import DomainError, NotAllowed
from okada.core.forbidden import post_only_page

from .models import Backup, BackupVerification, VerificationOutcome
from .selectors import backup_status
from .services import RUN_PERMISSION, backup_request, verification_request


class VerificationInline(admin.TabularInline):
    model = BackupVerification
    fields = ("started_at", "finished_at", "outcome", "restore_seconds", "checks", "error_shown")
    readonly_fields = fields
    error_shown = staticmethod(stored_text_display(BackupVerification, "error"))
    extra = 0
    can_delete = False
    ordering = ("-started_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    stored_texts = ("error",)
    list_display = ("started_at", "kind", "status", "size", "age", "checksum", "verified", "restore_time")
    list_filter = ("status", "kind")
    search_fields = ("file_name", "sha256")
    inlines = [VerificationInline]
    actions = ["verify_now"]
    change_list_template = "admin/backups/backup/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_last_verification()

    @admin.display(description=_("size"), ordering="size_bytes")
    def size(self, obj: Backup) -> str:
        return filesizeformat(obj.size_bytes) if obj.size_bytes else "-"

    @admin.display(description=_("age"), ordering="-started_at")
    def age(self, obj: Backup) -> str:
        return timesince(obj.started_at)

    @admin.display(description=_("SHA-256"))
    def checksum(self, obj: Backup) -> str:
        return f"{obj.sha256[:12]}…" if obj.sha256 else "-"

    @admin.display(description=_("last drill"))
    def verified(self, obj: Any) -> str:
        if not obj.last_verification_outcome:
            return str(_("never"))
        outcome = VerificationOutcome(obj.last_verification_outcome).label
        return f"{outcome} ({timesince(obj.last_verified_at)})"

    @admin.display(description=_("restore time"))
    def restore_time(self, obj: Any) -> str:
        if obj.last_restore_seconds is None:
            return "-"
        return f"{formats.number_format(obj.last_restore_seconds, 1)} s"  # "12,5 s" in French

    def has_run_backup_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(RUN_PERMISSION))

    @admin.action(description=_("Verify now (restore drill)"), permissions=["run_backup"])
    def verify_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.for_staff_user(request.user)
        queued = 0
        for backup in queryset:
            try:
                verification_request(backup=backup, actor=actor)
                queued += 1
            except DomainError as exc:
                self.message_user(request, row_refused(backup, exc), messages.ERROR)
        if queued:
            self.message_user(
                request,
                ngettext(
                    "%(n)d restore drill queued: the result shows here when it is done.",
                    "%(n)d restore drills queued: the result shows here when it is done.",
                    queued,
                )
                % {"n": queued},
                messages.SUCCESS,
            )

    def get_urls(self) -> list[Any]:
        back_up_now = self.admin_site.admin_view(self.back_up_now_view)
        return [path("back-up-now/", back_up_now, name="backups_backup_back_up_now"), *super().get_urls()]

    def back_up_now_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return post_only_page(request, reverse("admin:backups_backup_changelist"))
        try:
            backup_request(actor=Actor.for_staff_user(request.user))
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        self.message_user(request, _("A backup was queued: it shows here when it is done."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:backups_backup_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {
            "backup_status": backup_status(),
            "can_run_backup": self.has_run_backup_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)


@admin.register(BackupVerification)
class BackupVerificationAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "backup", "outcome", "restore_seconds", "error_shown")
    stored_texts = ("error",)
    list_filter = ("outcome",)
    list_select_related = ("backup",)
