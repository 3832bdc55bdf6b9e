"""The backup catalog: one `Backup` per run of pg_dump, one `BackupVerification` per restore drill."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core.fields import choices_check
from okada.core.models import BaseModel


class BackupKind(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    MANUAL = "manual", _("manual")
    PRE_MIGRATION = "pre_migration", _("before migrations")


class BackupStatus(models.TextChoices):
    RUNNING = "running", _("running")
    COMPLETE = "complete", _("complete")
    FAILED = "failed", _("failed")
    PRUNED = "pruned", _("pruned (file deleted by retention)")


class VerificationOutcome(models.TextChoices):
    RUNNING = "running", _("running")
    PASSED = "passed", _("passed")
    FAILED = "failed", _("failed")


class BackupQuerySet(models.QuerySet["Backup"]):
    def complete(self) -> BackupQuerySet:
        """Backups whose file is on disk, finished and checksummed."""
        return self.filter(status=BackupStatus.COMPLETE)

    def with_last_verification(self) -> BackupQuerySet:
        """Annotate the outcome, end and restore time of each backup's latest finished drill."""
        latest = (
            BackupVerification.objects.filter(backup=OuterRef("pk"))
            .exclude(outcome=VerificationOutcome.RUNNING)
            .order_by("-started_at")
        )
        return self.annotate(
            last_verification_outcome=Subquery(latest.values("outcome")[:1]),
            last_verified_at=Subquery(latest.values("finished_at")[:1]),
            last_restore_seconds=Subquery(latest.values("restore_seconds")[:1]),
        )

    def verified(self) -> BackupQuerySet:
        """Complete backups whose latest drill passed (a later failed drill takes it back)."""
        return (
            self.complete()
            .with_last_verification()
            .filter(last_verification_outcome=VerificationOutcome.PASSED)  # type: ignore[misc]
        )


class Backup(BaseModel):
    """One run of pg_dump: where its file is, what it holds, and how the run ended."""

    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=BackupKind.choices,
        db_comment="scheduled (nightly), manual (command or admin) or pre_migration.",
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=BackupStatus.choices,
        default=BackupStatus.RUNNING,
        db_comment="running, complete (file renamed into place after its checksum), failed, or pruned.",
    )
    started_at = models.DateTimeField(
        _("started at"), default=timezone.now, db_comment="Start of the run, just before the snapshot (UTC)."
    )
    finished_at = models.DateTimeField(
        _("finished at"), null=True, blank=True, db_comment="End of the run (UTC); NULL while running."
    )
    file_name = models.CharField(
        _("file"), max_length=255, db_comment="File name under OKADA_BACKUP_DIR (.dump, or .dump.gpg)."
    )
    size_bytes = models.BigIntegerField(
        _("size (bytes)"), null=True, blank=True, db_comment="Size of the file as stored."
    )
    sha256 = models.CharField(
        _("SHA-256"), max_length=64, blank=True, default="", db_comment="SHA-256 of the file as stored (hex)."
    )
    encrypted = models.BooleanField(
        _("encrypted"),
        default=False,
        db_comment="True when the file is GPG-encrypted (OKADA_BACKUP_PASSPHRASE).",
    )
    pg_dump_version = models.CharField(
        _("pg_dump version"), max_length=200, blank=True, default="", db_comment="pg_dump --version."
    )
    server_version = models.CharField(
        _("server version"), max_length=200, blank=True, default="", db_comment="PostgreSQL server_version."
    )
    manifest = models.JSONField(
        _("row counts"),
        default=dict,
        blank=True,
        db_comment='Rows per table ("schema.table": n), counted in the snapshot pg_dump dumped.',
    )
    error = models.TextField(_("error"), blank=True, default="", db_comment="Why a failed run failed.")
    pruned_at = models.DateTimeField(
        _("pruned at"), null=True, blank=True, db_comment="When retention deleted the file (UTC)."
    )
    request_id = models.CharField(
        _("request"),
        max_length=255,
        blank=True,
        default="",
        db_comment="Celery task id: a redelivered task finds the backup it already made.",
    )

    objects = BackupQuerySet.as_manager()

    class Meta:
        db_table_comment = "Backup catalog: one row per pg_dump run (custom format) of the whole database."
        verbose_name = _("backup")
        verbose_name_plural = _("backups")
        ordering = ["-started_at"]
        default_permissions = ("view",)  # rows are written by the jobs only
        permissions = [("run_backup", _("Can start backups and restore drills"))]
        indexes = [
            models.Index(fields=["status", "-started_at"], name="backups_backup_status_started"),
            models.Index(fields=["request_id"], name="backups_backup_request", condition=~Q(request_id="")),
        ]
        constraints = [
            choices_check("kind", BackupKind.choices, "backups_backup_kind"),
            choices_check("status", BackupStatus.choices, "backups_backup_status"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=F("started_at")),
                name="backups_backup_finished_after_start",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[BackupStatus.COMPLETE, BackupStatus.PRUNED])
                | (Q(sha256__regex=r"^[0-9a-f]{64}$") & Q(size_bytes__gt=0) & Q(finished_at__isnull=False)),
                name="backups_backup_complete_has_checksum",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name or self.pk} ({self.get_status_display()})"

    @property
    def duration(self) -> Any:
        return (self.finished_at - self.started_at) if self.finished_at else None


class BackupVerification(BaseModel):
    """One restore drill of a backup: restored into a scratch database, counted, checked, dropped."""

    backup = models.ForeignKey(
        Backup,
        on_delete=models.CASCADE,
        related_name="verifications",
        verbose_name=_("backup"),
        db_comment="The backup restored.",
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_comment="Start (UTC).")
    finished_at = models.DateTimeField(
        _("finished at"), null=True, blank=True, db_comment="End (UTC); NULL while running."
    )
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=VerificationOutcome.choices,
        default=VerificationOutcome.RUNNING,
        db_comment="running, passed or failed.",
    )
    restore_seconds = models.FloatField(
        _("restore time (s)"),
        null=True,
        blank=True,
        db_comment="Seconds pg_restore took into the scratch database: the measured recovery time.",
    )
    checks = models.JSONField(
        _("checks"),
        default=dict,
        blank=True,
        db_comment="What was checked: checksum, tables and rows compared, invariants and their findings.",
    )
    error = models.TextField(_("error"), blank=True, default="", db_comment="Why the drill failed.")
    request_id = models.CharField(
        _("request"),
        max_length=255,
        blank=True,
        default="",
        db_comment="Celery task id: a redelivered task finds the drill it already ran.",
    )

    class Meta:
        db_table_comment = "Restore drills: each restores a backup into a scratch database and checks it."
        verbose_name = _("restore drill")
        verbose_name_plural = _("restore drills")
        default_permissions = ("view",)
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["backup", "-started_at"], name="backups_verif_backup_started")]
        constraints = [
            choices_check("outcome", VerificationOutcome.choices, "backups_verif_outcome"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=F("started_at")),
                name="backups_verif_finished_after_start",
            ),
            models.CheckConstraint(
                condition=Q(restore_seconds__isnull=True) | Q(restore_seconds__gte=0),
                name="backups_verif_restore_seconds_nonneg",
            ),
        ]

    def __str__(self) -> str:
        # Douala time, as the admin shows every time (the column holds UTC).
        started = timezone.localtime(self.started_at)
        return f"{self.backup} @ {started:%Y-%m-%d %H:%M} ({self.get_outcome_display()})"
