"""Default beat schedules, installed by data migrations (editable afterwards in the admin).

Each app lists its defaults and calls `install(apps, DEFAULTS)` from a data migration. Existing
entries are left alone, so a schedule staff changed is never overwritten by a later migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TIMEZONE = "Africa/Douala"


@dataclass(frozen=True)
class Schedule:
    name: str  # human name shown in the admin (unique)
    task: str  # registered Celery task name
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    description: str = ""


def install(apps: Any, schedules: list[Schedule]) -> None:
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for s in schedules:
        if task_model.objects.filter(name=s.name).exists():
            continue
        crontab, _ = crontab_model.objects.get_or_create(
            minute=s.minute,
            hour=s.hour,
            day_of_week=s.day_of_week,
            day_of_month=s.day_of_month,
            month_of_year=s.month_of_year,
            timezone=TIMEZONE,
        )
        task_model.objects.create(name=s.name, task=s.task, crontab=crontab, description=s.description)
    _bump_change_marker(apps)


def uninstall(apps: Any, schedules: list[Schedule]) -> None:
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[s.name for s in schedules]).delete()
    _bump_change_marker(apps)


def _bump_change_marker(apps: Any) -> None:
    # Beat reloads its schedule when PeriodicTasks.last_update changes; model signals that
    # normally bump it do not fire for historical models in migrations.
    from django.utils import timezone

    marker = apps.get_model("django_celery_beat", "PeriodicTasks")
    marker.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
