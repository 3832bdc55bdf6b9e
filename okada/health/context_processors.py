"""The open-alerts banner of the admin: every page shows the open alerts to staff who may see
them (read lazily: only pages whose template asks pay the one small query)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

VIEW_PERMISSION = "health.view_alert"
BANNER_LIMIT = 5


def open_alerts(request: HttpRequest) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        from .models import Alert

        user = getattr(request, "user", None)
        if user is None or not user.is_active or not user.is_staff or not user.has_perm(VIEW_PERMISSION):
            return {"count": 0, "alerts": []}
        alerts = list(Alert.objects.open().most_urgent_first(unacknowledged_first=True)[: BANNER_LIMIT + 1])
        unacknowledged = Alert.objects.open().unacknowledged().count()
        return {"count": unacknowledged, "alerts": alerts[:BANNER_LIMIT], "more": len(alerts) > BANNER_LIMIT}

    return {"health_alerts": SimpleLazyObject(read)}
