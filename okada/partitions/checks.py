"""System checks: the partition settings name declared tables and hold values that make sense."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils import translation

from . import registry


@checks.register("partitions")
def partition_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if int(settings.OKADA_PARTITION_PREMAKE_MONTHS) < 1:
        errors.append(
            checks.Error(
                "OKADA_PARTITION_PREMAKE_MONTHS must be at least 1: next month must exist before it starts.",
                id="okada.partitions.E001",
            )
        )
    declared = registry.declared()
    for table, value in settings.OKADA_PARTITION_RETENTION_MONTHS.items():
        policy = declared.get(table)
        if policy is None:
            errors.append(
                checks.Error(
                    f"OKADA_PARTITION_RETENTION_MONTHS names {table}, which has no partition policy.",
                    hint=f"Declared tables: {', '.join(sorted(declared)) or 'none'}.",
                    id="okada.partitions.E002",
                )
            )
        elif not policy.retention_configurable:
            errors.append(
                checks.Error(
                    f"OKADA_PARTITION_RETENTION_MONTHS may not set a retention for {table}: "
                    f"{_english(policy.note)}",
                    id="okada.partitions.E003",
                )
            )
        else:
            try:
                months = int(str(value).strip())
            except ValueError:
                months = None
            if months is not None and months < registry.MIN_RETENTION_MONTHS:
                errors.append(
                    checks.Error(
                        f"OKADA_PARTITION_RETENTION_MONTHS[{table!r}] = {value!r}: the retention is at "
                        f"least {registry.MIN_RETENTION_MONTHS} month (a shorter one would keep only the "
                        "current month and retire every earlier one); or 'forever' to keep every month.",
                        id="okada.partitions.E005",
                    )
                )
                continue
            try:
                registry.retention_setting(value)
            except ValueError:
                errors.append(
                    checks.Error(
                        f"OKADA_PARTITION_RETENTION_MONTHS[{table!r}] = {value!r}: a whole number of "
                        "months, or 'forever'.",
                        id="okada.partitions.E004",
                    )
                )
    return errors


def _english(text: Any) -> str:
    """Check messages are English, like the commands that print them (manage.py runs the checks
    before its English-only handle(), in the default language)."""
    with translation.override(None):
        return str(text)
