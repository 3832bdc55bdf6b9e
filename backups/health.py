"""What backups add to database health (okada.core.health_registry): the newest good backup's age and
the last restore drill, as a panel, two alert conditions and Prometheus gauges."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from okada.core import health_registry as registry
from okada.core.texts import Text

from .selectors import backup_status


def backups_panel() -> dict[str, Any]:
    status = backup_status()
    return {"status": status, "max_age_hours": round(status.max_age.total_seconds() / 3600)}


def backup_too_old() -> list[registry.Finding]:
    status = backup_status()
    if not status.too_old:
        return []
    hours = status.max_age.total_seconds() / 3600
    if status.newest_verified is None:
        return [
            registry.Finding(
                subject="backup",
                message=gettext_noop("No verified backup yet (the policy allows %(hours)g h)."),
                params={"hours": hours},
                severity=registry.CRITICAL,
            )
        ]
    return [
        registry.Finding(
            subject="backup",
            message=gettext_noop(
                "The newest verified backup is %(age).1f h old; the policy allows %(hours)g h."
            ),
            params={"age": (status.age.total_seconds() if status.age else 0) / 3600, "hours": hours},
            severity=registry.CRITICAL,
        )
    ]


def drill_failed() -> list[registry.Finding]:
    status = backup_status()
    if not status.last_drill_failed or status.last_drill is None:
        return []
    drill = status.last_drill
    return [
        registry.Finding(
            # Each failed drill is its own alert; a later drill that passes clears it.
            subject=str(drill.pk),
            message=gettext_noop("The restore drill of %(when)s failed: %(error)s"),
            params={
                "when": drill.finished_at.isoformat(timespec="minutes") if drill.finished_at else "-",
                "error": Text.load(drill.error),  # translated with the sentence
            },
            severity=registry.CRITICAL,
        )
    ]


def backup_metrics() -> list[registry.Metric]:
    status = backup_status()
    found = [
        registry.Metric(
            "okada_backup_max_age_seconds",
            "The backup policy's maximum age.",
            samples=[({}, status.max_age.total_seconds())],
        ),
        registry.Metric(
            "okada_backup_last_drill_failed",
            "Whether the last restore drill failed (1) or not (0).",
            samples=[({}, 1 if status.last_drill_failed else 0)],
        ),
    ]
    if status.age is not None:
        found.append(
            registry.Metric(
                "okada_backup_age_seconds",
                "Age of the newest verified backup (its drill passed).",
                samples=[({}, status.age.total_seconds())],
            )
        )
    return found


registry.register_panel(
    registry.Panel(
        key="backups.status",
        title=_("Backups and restore drills"),
        template="admin/health/panels/backups.html",
        build=backups_panel,
        order=50,
    )
)
registry.register_condition(
    registry.Condition(kind="backup_too_old", title=_("Backup too old"), evaluate=backup_too_old)
)
registry.register_condition(
    registry.Condition(kind="drill_failed", title=_("Restore drill failed"), evaluate=drill_failed)
)
registry.register_metrics("backups", backup_metrics)
