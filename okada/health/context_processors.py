"""The open-alerts banner of the admin: every page shows the open alerts to staff who may see
them (read lazily: only pages whose template asks pay the one small query)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from . import pg

log = logging.getLogger(__name__)

VIEW_PERMISSION = "health.view_alert"
BANNER_LIMIT = 5


def open_alerts(request: HttpRequest) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        from .models import Alert

        user = getattr(request, "user", None)
        if user is None or not user.is_active or not user.is_staff or not user.has_perm(VIEW_PERMISSION):
            return {"count": 0, "alerts": []}
        try:
            # Under the health screens' short timeouts: with the alert table locked (a migration,
            # a VACUUM FULL) every admin page would wait for it; it shows without the banner.
            with pg.reads():
                alerts = list(
                    Alert.objects.open().most_urgent_first(unacknowledged_first=True)[: BANNER_LIMIT + 1]
                )
                unacknowledged = Alert.objects.open().unacknowledged().count()
        except DatabaseError:
            log.warning("open alerts could not be read for the admin banner", exc_info=True)
            return {"count": 0, "alerts": []}
        return {"count": unacknowledged, "alerts": alerts[:BANNER_LIMIT], "more": len(alerts) > BANNER_LIMIT}

    return {"health_alerts": SimpleLazyObject(read)}
