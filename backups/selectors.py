"""Reads of the backup catalog: how fresh the newest verified backup is, and how the last drill went.

`backup_status()` is what /readyz's `backup` check, the backup admin's banner and the operations
dashboard show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _

from okada.core.texts import shown

from .models import Backup, BackupVerification, VerificationOutcome

CLOCK_SKEW = timedelta(minutes=15)  # how far ahead of now a backup's date may be and still count


@dataclass(frozen=True)
class BackupStatus:
    now: datetime
    max_age: timedelta
    newest: Backup | None  # the newest complete backup, verified or not
    newest_verified: Backup | None  # the newest complete backup whose latest drill passed (not
    # dated more than CLOCK_SKEW in the future)
    last_drill: BackupVerification | None  # the latest finished drill, of any backup
    grace_until: datetime | None  # a new install without a verified backup is ready until then

    @property
    def age(self) -> timedelta | None:
        """Age of the newest verified backup (from the moment its snapshot was taken)."""
        return self.now - self.newest_verified.started_at if self.newest_verified else None

    @property
    def newest_age(self) -> timedelta | None:
        return self.now - self.newest.started_at if self.newest else None

    @property
    def in_grace(self) -> bool:
        return self.newest_verified is None and self.grace_until is not None and self.now < self.grace_until

    @property
    def too_old(self) -> bool:
        """No verified backup younger than OKADA_BACKUP_MAX_AGE_HOURS (a new install's grace aside)."""
        if self.newest_verified is None:
            return not self.in_grace
        return self.age is not None and self.age > self.max_age

    @property
    def last_drill_failed(self) -> bool:
        return self.last_drill is not None and self.last_drill.outcome == VerificationOutcome.FAILED

    @property
    def problem(self) -> str | None:
        """What is wrong, in a sentence (None: backups are fine): /readyz's detail, the admin banner."""
        problems = []
        if self.last_drill is not None and self.last_drill_failed:
            problems.append(
                _("The last restore drill (%(when)s) failed: %(error)s")
                % {"when": _stamp(self.last_drill.finished_at), "error": shown(self.last_drill.error)[:300]}
            )
        if self.too_old:
            hours = self.max_age.total_seconds() / 3600
            if self.newest_verified is None:
                problems.append(
                    _("No verified backup yet (the policy allows %(hours)g h).") % {"hours": hours}
                )
            else:
                problems.append(
                    _(
                        "The newest verified backup is %(age)s h old (taken %(when)s); "
                        "the policy allows %(hours)g h."
                    )
                    % {
                        "age": round((self.age or timedelta()).total_seconds() / 3600, 1),
                        "when": _stamp(self.newest_verified.started_at),
                        "hours": hours,
                    }
                )
        return " ".join(problems) or None


def _stamp(when: datetime | None) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M") if when else "-"


def backup_status(*, now: datetime | None = None) -> BackupStatus:
    """The freshness of the backups against OKADA_BACKUP_MAX_AGE_HOURS, and the last drill.

    A brand-new install has no backup yet: it is given the policy's own age as grace, counted
    from its first migration, to take and verify one (the nightly backup and drill, or a
    `make run`), so a fresh database is not "not ready" from its first minute.
    """
    now = now or timezone.now()
    max_age = timedelta(hours=settings.OKADA_BACKUP_MAX_AGE_HOURS)
    # A backup dated in the future (taken while the clock was ahead) has a negative age: it would
    # count as fresh until the clock caught up, whatever became of the backups since. Only a
    # clock a little off between hosts is allowed for.
    newest_verified = (
        Backup.objects.verified().filter(started_at__lte=now + CLOCK_SKEW).order_by("-started_at").first()
    )
    grace_until = None
    if newest_verified is None:
        installed = MigrationRecorder.Migration.objects.aggregate(first=Min("applied"))["first"]
        grace_until = installed + max_age if installed else None
    return BackupStatus(
        now=now,
        max_age=max_age,
        newest=Backup.objects.complete().order_by("-started_at").first(),
        newest_verified=newest_verified,
        last_drill=BackupVerification.objects.exclude(outcome=VerificationOutcome.RUNNING)
        .select_related("backup")
        .order_by("-finished_at")
        .first(),
        grace_until=grace_until,
    )


def backup_readiness() -> str | None:
    """The `backup` check of /readyz: None when backups are fine, else what is wrong."""
    return backup_status().problem
