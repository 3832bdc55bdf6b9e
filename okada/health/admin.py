"""Admin: "Database health" (overview with the marketplace beside the database, then Queries,
Activity, Storage, Indexes, Sequences, Connections), the alerts and the log of database actions.

Reading needs `health.view_database_health` (superusers, the Operations role). Cancelling or
terminating a session and resetting the query statistics are for superusers only: the services
check it on every POST, whatever the page showed. Every read runs under the health statement
timeout (okada.health.pg.reads): a section that cannot be read says why, the page still renders.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from okada.core import health_registry as registry
from okada.core.actors import Actor
from okada.core.admin import LabelledValuesFilter, ReadOnlyAdmin
from okada.core.errors import DomainError, NotAllowed
from okada.core.texts import Text

from . import pg, selectors, services
from .display import alert_text, kind_label
from .models import Alert, DatabaseAction, DatabaseHealth

log = logging.getLogger(__name__)

VIEW_PERMISSION = "health.view_database_health"
TABS = (
    ("overview", _("Overview")),
    ("queries", _("Queries")),
    ("activity", _("Activity")),
    ("storage", _("Storage")),
    ("indexes", _("Indexes")),
    ("sequences", _("Sequences")),
    ("connections", _("Connections")),
)
# ?compare=: how old the snapshot compared with is at least, in hours ("hour": the newest one).
COMPARE = {"hour": 0, "day": 24, "week": 24 * 7}


def sparkline(points: list[tuple[Any, int]], *, width: int = 120, height: int = 24) -> str:
    """SVG polyline points for a small growth chart (the smallest value at the bottom)."""
    if len(points) < 2:
        return ""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v - low) / span * height:.1f}" for i, v in enumerate(values))


def reading(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A GET of a health screen gathers everything inside `pg.reads()`: one read-only transaction
    under the health statement timeout, the marketplace panels' queries included. (Each section
    is a savepoint of its own: one that fails leaves the others standing.) POSTs act: not here."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "GET":
            return view(request, *args, **kwargs)
        with pg.reads():
            return view(request, *args, **kwargs)

    return wrapped


def cache_interval() -> dict[str, Any]:
    """The cache hit ratios the alert judges (the last interval between snapshots), for the
    Overview and Indexes screens: read in a section of their own, under the timeout."""
    return {
        "cache_interval": selectors.section(lambda cur: selectors.cache_hit_interval()),
        "cache_hit_limit": settings.OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT / 100,
    }


def id_age_thresholds() -> dict[str, Any]:
    """The wraparound alerts' thresholds, shown beside the id ages (Overview and Storage)."""
    return {
        "wraparound_alert_percent": settings.OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT,
        "multixact_alert_percent": settings.OKADA_HEALTH_MULTIXACT_ALERT_PERCENT,
    }


def idle_level(session: dict[str, Any]) -> str:
    """How a session idle inside an open transaction stands out on the Activity screen: past the
    idle-in-transaction alert's thresholds "critical" or "warning", below them "idle"; "" for a
    session that is not idle in a transaction. (An aborted transaction is shown too: its locks are
    held until the application rolls it back.)"""
    if not (session.get("state") or "").startswith("idle in transaction"):
        return ""
    seconds = session.get("state_seconds")
    if seconds is None:
        return "idle"
    if seconds >= settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES * 60:
        return "critical"
    if seconds >= settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES * 60:
        return "warning"
    return "idle"


@admin.register(DatabaseHealth)
class DatabaseHealthAdmin(ReadOnlyAdmin):
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(VIEW_PERMISSION)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_urls(self) -> list[Any]:
        def wrap(view: Callable[..., HttpResponse]) -> Any:
            return self.admin_site.admin_view(reading(view))

        return [
            path("", wrap(self.changelist_view), name="health_databasehealth_changelist"),
            path("queries/", wrap(self.queries_view), name="health_queries"),
            path("queries/reset/", wrap(self.reset_view), name="health_queries_reset"),
            path("activity/", wrap(self.activity_view), name="health_activity"),
            path("activity/<int:pid>/<str:kind>/", wrap(self.signal_view), name="health_signal"),
            path("storage/", wrap(self.storage_view), name="health_storage"),
            path("indexes/", wrap(self.indexes_view), name="health_indexes"),
            path("sequences/", wrap(self.sequences_view), name="health_sequences"),
            path("connections/", wrap(self.connections_view), name="health_connections"),
        ]

    # --- Rendering ---------------------------------------------------------------------------

    def _render(self, request: HttpRequest, tab: str, template: str, context: dict[str, Any]) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        title = dict(TABS).get(tab, "")
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("Database health: %(tab)s") % {"tab": title},
                "tabs": TABS,
                "tab": tab,
                "can_act": request.user.is_superuser,
                "statement_timeout_ms": settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS,
                "server_ms": round((time.monotonic() - request._health_started) * 1000, 1),  # type: ignore[attr-defined]
                **context,
            },
        )

    def _start(self, request: HttpRequest) -> None:
        request._health_started = time.monotonic()  # type: ignore[attr-defined]
        if not self.has_view_permission(request):
            raise PermissionDenied

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Overview: open alerts, connections, the database's key figures and the marketplace."""
        self._start(request)
        panels = []
        for panel in registry.panels():
            try:
                with pg.reads():  # a savepoint: a panel that times out spoils no other
                    data = panel.build()
                panels.append({"panel": panel, "data": data, "failed": False})
            except Exception:  # one broken figure must not take the page down
                log.exception("health panel %s failed", panel.key)
                panels.append({"panel": panel, "data": {}, "failed": True})
        context = {
            "alerts": list(Alert.objects.open().select_related("acknowledged_by").most_urgent_first()[:50]),
            "connections": selectors.section(pg.connections),
            "database": selectors.section(pg.database),
            "hit_ratios": selectors.section(pg.cache_hit_ratios),
            **cache_interval(),
            "xid_limit": pg.XID_LIMIT,
            **id_age_thresholds(),
            "panels": panels,
        }
        return self._render(request, "overview", "admin/health/overview.html", context)

    def queries_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        order = request.GET.get("order", "total")
        order = order if order in pg.STATEMENT_ORDER else "total"
        compare = request.GET.get("compare", "day")
        compare = compare if compare in COMPARE else "day"

        def read(cur: Any) -> dict[str, Any]:
            # The snapshot to compare with is read in the section too: under its timeout.
            since = selectors.previous_snapshot(hours=COMPARE[compare]) or selectors.previous_snapshot()
            return selectors.statement_deltas(cur, order=order, limit=50, since=since)

        report = selectors.section(read)
        return self._render(
            request,
            "queries",
            "admin/health/queries.html",
            {"report": report, "order": order, "compare": compare},
        )

    def activity_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        sessions = selectors.section(pg.activity)
        if sessions.ok and not request.user.is_superuser:  # values in the SQL may be secrets
            for s in sessions.data:
                s["query"] = pg.without_literals(s["query"])
        if sessions.ok:
            for s in sessions.data:
                s["idle_level"] = idle_level(s)
        tree = selectors.blocking_tree(sessions.data) if sessions.ok else []
        return self._render(
            request,
            "activity",
            "admin/health/activity.html",
            {
                "sessions": sessions,
                "tree": tree,
                "idle_minutes": settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES,
                "idle_critical_minutes": settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES,
            },
        )

    def storage_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        storage = selectors.section(selectors.storage)
        # The growth lines read the snapshots: a section of their own, under the timeout too.
        growth = selectors.section(lambda cur: selectors.table_growth(days=30))
        if storage.ok:
            for t in storage.data["tables"]:
                series = growth.data.get(t["name"], []) if growth.ok else []
                t["growth"] = sparkline(series)
                t["growth_bytes"] = (series[-1][1] - series[0][1]) if len(series) > 1 else None
        return self._render(
            request,
            "storage",
            "admin/health/storage.html",
            {
                "storage": storage,
                "growth": growth,
                **id_age_thresholds(),
            },
        )

    def indexes_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        return self._render(
            request,
            "indexes",
            "admin/health/indexes.html",
            {"report": selectors.section(selectors.index_report), **cache_interval()},
        )

    def sequences_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        return self._render(
            request,
            "sequences",
            "admin/health/sequences.html",
            {
                "sequences": selectors.section(pg.sequences),
                "alert_percent": settings.OKADA_HEALTH_SEQUENCE_ALERT_PERCENT,
            },
        )

    def connections_view(self, request: HttpRequest) -> HttpResponse:
        self._start(request)
        return self._render(
            request,
            "connections",
            "admin/health/connections.html",
            {"connections": selectors.section(pg.connections)},
        )

    # --- Actions (superusers; the services check) --------------------------------------------

    def _act(
        self, request: HttpRequest, back: str, do: Callable[[Actor], str], confirm: dict[str, Any]
    ) -> HttpResponse:
        """GET: a confirmation page (superusers only). POST: `do(actor)` -> the message to show;
        a refusal from the service is a 403, any other domain error a message."""
        if request.method != "POST":
            if not request.user.is_superuser:
                raise PermissionDenied
            return self._render(
                request, confirm.pop("tab"), "admin/health/confirm.html", {"back": back, **confirm}
            )
        try:
            self.message_user(request, do(Actor.for_staff_user(request.user)), messages.SUCCESS)
        except NotAllowed as exc:
            raise PermissionDenied(str(exc)) from None
        except DomainError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(back)

    def signal_view(self, request: HttpRequest, pid: int, kind: str) -> HttpResponse:
        """Cancel a session's query or terminate the session: confirmed, then done (logged)."""
        self._start(request)
        if kind not in (DatabaseAction.Kind.CANCEL, DatabaseAction.Kind.TERMINATE):
            raise PermissionDenied

        def do(actor: Actor) -> str:
            action = services.session_signal(pid=pid, kind=kind, actor=actor)
            if not action.succeeded:
                return gettext("Session %(pid)s was already gone.") % {"pid": pid}
            return gettext("Done: %(what)s %(pid)s.") % {"what": action.get_kind_display(), "pid": pid}

        question = (
            _("Cancel the running query of session %(pid)s?")
            if kind == DatabaseAction.Kind.CANCEL
            else _("Terminate session %(pid)s (its open transaction is rolled back)?")
        )
        confirm = {"tab": "activity", "question": question % {"pid": pid}, "danger": kind == "terminate"}
        if request.method != "POST":
            target = confirm["target"] = selectors.section(pg.session, pid)
            if target.ok and target.data:  # say a refusal before anyone confirms
                confirm["refusal"] = services.signal_refusal(target.data)
        return self._act(request, reverse("admin:health_activity"), do, confirm)

    def reset_view(self, request: HttpRequest) -> HttpResponse:
        """Reset pg_stat_statements: confirmed, then done (logged)."""
        self._start(request)

        def do(actor: Actor) -> str:
            services.statements_reset(actor=actor)
            return gettext("Query statistics were reset.")

        question = _("Reset the statistics of every query? Deltas and trends start again from zero.")
        return self._act(
            request,
            reverse("admin:health_queries"),
            do,
            {"tab": "queries", "question": question, "danger": True},
        )


class OpenFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("open", _("Open")), ("cleared", _("Cleared"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "open":
            return queryset.filter(cleared_at__isnull=True)
        if self.value() == "cleared":
            return queryset.filter(cleared_at__isnull=False)
        return queryset


class KindFilter(LabelledValuesFilter):
    title = _("kind")
    parameter_name = "kind"

    def label(self, value: str) -> str:
        return kind_label(value)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        "opened_at",
        "severity",
        "kind_shown",
        "text",
        "repeats",
        "last_seen_at",
        "cleared_at",
        "acknowledged",
    )
    list_filter = (OpenFilter, "severity", KindFilter)
    search_fields = ("key", "message")
    date_hierarchy = "opened_at"
    actions = ["acknowledge"]

    shown_as = {"kind": "kind_shown", "message": "text", "data": "details"}

    @admin.display(description=_("kind"), ordering="kind")
    def kind_shown(self, obj: Alert) -> str:
        return format_html('<span title="{}">{}</span>', obj.kind, kind_label(obj.kind))

    @admin.display(description=_("message"))
    def text(self, obj: Alert) -> str:
        return alert_text(obj)

    @admin.display(description=_("details"))
    def details(self, obj: Alert) -> str:
        """The figures behind the message (its parameters, as data), a stored text among them
        (a drill's error) in the page's language, a decimal in the page's number format."""
        params = obj.data.get("params") if isinstance(obj.data, dict) else None
        if not isinstance(params, dict) or not params:
            return "-"
        values = Text.from_json({"msgid": "", "params": params}).params

        def readable(value: Any) -> Any:
            if isinstance(value, Text):
                return value.render()
            if isinstance(value, float):
                return formats.localize(round(value, 2))
            return value

        return json.dumps({name: readable(value) for name, value in values.items()}, ensure_ascii=False)

    @admin.display(description=_("acknowledged"))
    def acknowledged(self, obj: Alert) -> str:
        if obj.acknowledged_at is None:
            return "-"
        # Douala time, as every time the admin shows (the column holds UTC).
        when = formats.date_format(timezone.localtime(obj.acknowledged_at), "SHORT_DATETIME_FORMAT")
        return f"{obj.acknowledged_by or '?'} ({when})"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("acknowledged_by")

    @admin.action(description=_("Acknowledge the selected alerts"))
    def acknowledge(self, request: HttpRequest, queryset: Any) -> None:
        actor = Actor.for_staff_user(request.user)
        done = 0
        for alert in queryset:
            try:
                services.alert_acknowledge(alert=alert, actor=actor)
            except NotAllowed as exc:
                raise PermissionDenied(str(exc)) from None
            done += 1
        self.message_user(
            request,
            ngettext("%(n)d alert acknowledged.", "%(n)d alerts acknowledged.", done) % {"n": done},
            messages.SUCCESS,
        )

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if not request.user.has_perm(services.ACKNOWLEDGE_PERMISSION):
            actions.pop("acknowledge", None)
        return actions


@admin.register(DatabaseAction)
class DatabaseActionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "user", "pid", "succeeded", "target")
    list_filter = ("kind", "succeeded")
    search_fields = ("target",)
    date_hierarchy = "created_at"
