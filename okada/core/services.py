"""Shared write paths: bulk writes that keep history, and core housekeeping."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.core.management import call_command
from django.db import models
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from . import actors
from .models import JobRun

M = TypeVar("M", bound=models.Model)


def bulk_create_tracked(model: type[M], objs: Sequence[M], *, batch_size: int = 1000) -> list[M]:
    """bulk_create that also writes one `+` history row per object, as the acting user/reason."""
    acting = actors.current()
    return bulk_create_with_history(
        list(objs),
        model,
        batch_size=batch_size,
        default_user=acting.user,
        default_change_reason=acting.reason or "bulk create",
    )


def bulk_update_tracked(
    model: type[M], objs: Sequence[M], fields: Sequence[str], *, batch_size: int = 1000
) -> int:
    """bulk_update that also writes one `~` history row per object (plain bulk_update writes none)."""
    acting = actors.current()
    now = timezone.now()
    if "updated_at" not in fields and any(f.name == "updated_at" for f in model._meta.fields):
        for obj in objs:
            obj.updated_at = now  # type: ignore[attr-defined]
        fields = [*fields, "updated_at"]
    return bulk_update_with_history(
        list(objs),
        model,
        list(fields),
        batch_size=batch_size,
        default_user=acting.user,
        default_change_reason=acting.reason or "bulk update",
        manager=model.all_objects if hasattr(model, "all_objects") else None,  # type: ignore[attr-defined]
    )


def job_runs_prune(*, days: int | None = None) -> int:
    """Delete JobRun rows older than the retention (OKADA_JOB_RUN_RETENTION_DAYS)."""
    keep = days if days is not None else settings.OKADA_JOB_RUN_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=keep)
    deleted, _ = JobRun.objects.filter(started_at__lt=cutoff).exclude(outcome=JobRun.Outcome.RUNNING).delete()
    return deleted


def history_clean_duplicates(*, days: int) -> dict[str, str]:
    """Drop history rows identical to their predecessor (simple-history's own command)."""
    out = io.StringIO()
    call_command("clean_duplicate_history", auto=True, minutes=days * 24 * 60, stdout=out)
    return {"output": out.getvalue().strip()[-2000:]}
