"""The operations dashboard (admin home) and the panels of other pages, as a registry.

`okada.core` imports no domain app, so each app contributes its own panels from its AppConfig's
`ready()`::

    from okada.core import dashboard

    dashboard.register(dashboard.Panel(
        key="orders.open",                     # unique; registering the key again replaces it
        title=_("Open orders"),
        template="admin/orders/panels/open_orders.html",
        build=open_orders_context,             # build(request, obj) -> dict for the template
        permission="orders.view_order",        # shown only to users who have it (None: all staff)
        order=10,                              # position on the page
        page="home",                           # "home", or another page such as "catalog.vendor"
    ))

The backups app adds its "last backup / last restore drill" panel the same way. A panel that
fails is shown as unavailable (and logged); the rest of the page still renders.

Figures that read many rows (the 14-day chart, today's figures, low stock) go through
`cached_figure`: computed at most once per OKADA_DASHBOARD_CACHE_SECONDS for every web process
(in Redis), and shown with the time they were computed (`admin/core/panels/as_of.html`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from okada.core.db import database_cache_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Panel:
    key: str
    title: Any
    template: str
    build: Callable[[HttpRequest, Any], dict[str, Any]]
    permission: str | None = None
    order: int = 100
    page: str = "home"
    wide: bool = False


@dataclass
class RenderedPanel:
    panel: Panel
    data: dict[str, Any] = field(default_factory=dict)
    failed: bool = False

    @property
    def key(self) -> str:
        return self.panel.key

    @property
    def title(self) -> Any:
        return self.panel.title

    @property
    def template(self) -> str:
        return self.panel.template


_registry: dict[str, Panel] = {}


def register(panel: Panel) -> Panel:
    _registry[panel.key] = panel
    return panel


def unregister(key: str) -> None:
    _registry.pop(key, None)


def registered(page: str = "home") -> list[Panel]:
    return sorted((p for p in _registry.values() if p.page == page), key=lambda p: (p.order, p.key))


def panels(request: HttpRequest, *, page: str = "home", obj: Any = None) -> list[RenderedPanel]:
    """The panels of `page` this user may see, each with its data built now."""
    shown = []
    for panel in registered(page):
        if panel.permission and not request.user.has_perm(panel.permission):
            continue
        try:
            shown.append(RenderedPanel(panel, panel.build(request, obj)))
        except Exception:  # one broken figure must not take the home page down
            log.exception("dashboard panel %s failed", panel.key)
            shown.append(RenderedPanel(panel, failed=True))
    return shown


T = TypeVar("T")


@dataclass(frozen=True)
class Figure(Generic[T]):
    """A value computed for the dashboard, with when it was computed and how long it is kept."""

    value: T
    as_of: dt.datetime
    seconds: int


def cached_figure(key: str, compute: Callable[[], T]) -> Figure[T]:
    """`compute()`, or its value from Redis if it was computed less than
    OKADA_DASHBOARD_CACHE_SECONDS ago (0: computed on every view). `key` names the figure and
    what it depends on (a day, a threshold); the key is the database's (`database_cache_key`)."""
    seconds = settings.OKADA_DASHBOARD_CACHE_SECONDS
    if seconds <= 0:
        return Figure(compute(), timezone.now(), 0)
    full_key = database_cache_key("dashboard", key)
    found = cache.get(full_key)
    if found is None:
        found = (timezone.now(), compute())
        cache.set(full_key, found, seconds)
    as_of, value = found
    return Figure(value, as_of, seconds)


def dashboard_callback(request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """unfold's DASHBOARD_CALLBACK: the admin index gets the home page's panels."""
    context["okada_panels"] = panels(request, page="home")
    return context


# --- The core's own panel: scheduled jobs -------------------------------------------------------


def job_runs(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    """The last run of each job, failed and abandoned ones first."""
    from .admin import changelist_url
    from .models import JobRun

    last = list(JobRun.objects.order_by("name", "-started_at").distinct("name")[:50])
    bad = {JobRun.Outcome.FAILED, JobRun.Outcome.ABANDONED}
    last.sort(key=lambda r: (r.outcome not in bad, r.name))
    return {
        "runs": [
            {"run": r, "bad": r.outcome in bad, "url": changelist_url(JobRun, name__exact=r.name)}
            for r in last
        ],
        "failed_url": changelist_url(JobRun, outcome__exact=JobRun.Outcome.FAILED),
    }


def register_core_panels() -> None:
    from django.utils.translation import gettext_lazy as _

    register(
        Panel(
            key="core.job_runs",
            title=_("Scheduled jobs"),
            template="admin/core/panels/job_runs.html",
            build=job_runs,
            permission="core.view_jobrun",
            order=60,
        )
    )
