"""The backups panel of the operations dashboard: age of the newest verified backup, the last
restore drill, and what is wrong if anything is (the same status /readyz reports)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from okada.core import dashboard
from okada.core.admin import changelist_url

from .models import Backup, BackupVerification
from .selectors import backup_status


def backups_panel(request: HttpRequest, obj: Any = None) -> dict[str, Any]:
    status = backup_status()
    age = status.age
    return {
        "status": status,
        "age_hours": round(age.total_seconds() / 3600, 1) if age is not None else None,
        "max_age_hours": round(status.max_age.total_seconds() / 3600),
        "problem": status.problem,
        "backups_url": changelist_url(Backup),
        "drills_url": changelist_url(BackupVerification),
    }


def register() -> None:
    dashboard.register(
        dashboard.Panel(
            key="backups.status",
            title=_("Backups"),
            template="admin/backups/panels/status.html",
            build=backups_panel,
            permission="backups.view_backup",
            order=50,
        )
    )
