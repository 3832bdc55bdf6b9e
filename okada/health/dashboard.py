"""The health alerts on the operations dashboard (okada.core.dashboard, the admin's home)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from okada.core import dashboard

from .models import Alert

LIMIT = 8


def open_alerts(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    alerts = list(Alert.objects.open().select_related("acknowledged_by").most_urgent_first()[:LIMIT])
    return {
        "alerts": alerts,
        "count": Alert.objects.open().count(),
        "list_url": reverse("admin:health_alert_changelist") + "?state=open",
        "health_url": reverse("admin:health_databasehealth_changelist"),
    }


def register() -> None:
    dashboard.register(
        dashboard.Panel(
            key="health.alerts",
            title=_("Health alerts"),
            template="admin/health/dashboard_alerts.html",
            build=open_alerts,
            permission="health.view_alert",
            order=5,
            wide=True,
        )
    )
