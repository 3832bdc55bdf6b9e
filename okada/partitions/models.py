"""What partition maintenance shows staff: the partitioned tables (a view of the catalog) and the
log of every action it took."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core.fields import choices_check
from okada.core.models import BaseModel


class PartitionedTable(models.Model):
    """A range-partitioned table of the database (read from the catalog by a SQL view, migration
    0001): sizes and row counts are PostgreSQL's estimates, never a count(*)."""

    # Unmanaged: Django writes none of these comments; migrations 0001 and 0004 do (same texts).
    name = models.CharField(
        _("table"), max_length=63, primary_key=True, db_comment="Partitioned (parent) table."
    )
    partition_count = models.IntegerField(
        _("partitions"), db_comment="Partitions attached, DEFAULT included."
    )
    estimated_rows = models.BigIntegerField(
        _("estimated rows"),
        db_comment="Sum of the partitions' pg_class.reltuples (an estimate, not a count).",
    )
    total_bytes = models.BigIntegerField(
        _("size"), db_comment="Sum of the partitions' pg_total_relation_size() (table, indexes, TOAST)."
    )

    class Meta:
        managed = False
        db_table = "partitions_partitionedtable"
        db_table_comment = (
            "Partitioned tables of this schema with partition count, estimated rows and size "
            "(from the catalog)."
        )
        verbose_name = _("partitioned table")
        verbose_name_plural = _("partitioned tables")
        ordering = ["name"]
        default_permissions = ("view",)
        permissions = [("run_partition_maintenance", _("Can run partition maintenance now"))]

    def __str__(self) -> str:
        return self.name


class PartitionActionKind(models.TextChoices):
    CREATED = "created", _("created")
    RESCUED = "rescued", _("rows rescued from DEFAULT")
    FINALIZED = "finalized", _("interrupted detach finalised")
    DETACHED = "detached", _("detached")
    ARCHIVED = "archived", _("archived")
    DROPPED = "dropped", _("dropped")
    REATTACHED = "reattached", _("attached back (the retention keeps its month)")


class PartitionActionOutcome(models.TextChoices):
    SUCCESS = "success", _("success")
    DEFERRED = "deferred", _("deferred (table busy, next run retries)")
    FAILED = "failed", _("failed")


class PartitionAction(BaseModel):
    """One thing partition maintenance did (or tried) to one partition, and how it ended."""

    Kind = PartitionActionKind
    Outcome = PartitionActionOutcome

    table = models.CharField(_("table"), max_length=63, db_comment="Partitioned (parent) table.")
    partition = models.CharField(_("partition"), max_length=63, db_comment="Partition acted on.")
    kind = models.CharField(
        _("action"),
        max_length=16,
        choices=Kind.choices,
        db_comment=(
            "created, rescued (rows moved out of DEFAULT), finalized, detached, archived, dropped, "
            "reattached (detached to retire, then kept by a longer retention)."
        ),
    )
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=Outcome.choices,
        db_comment="success, deferred (lock not granted within lock_timeout) or failed.",
    )
    starts_at = models.DateTimeField(
        _("from"), null=True, blank=True, db_comment="Lower bound of the partition (UTC, included)."
    )
    ends_at = models.DateTimeField(
        _("to"), null=True, blank=True, db_comment="Upper bound of the partition (UTC, excluded)."
    )
    rows = models.BigIntegerField(
        _("rows"), null=True, blank=True, db_comment="Rows moved (rescued) or archived; NULL otherwise."
    )
    archive_path = models.CharField(
        _("archive file"), max_length=500, blank=True, default="", db_comment="pg_dump archive written."
    )
    archive_sha256 = models.CharField(
        _("archive SHA-256"), max_length=64, blank=True, default="", db_comment="SHA-256 of the archive."
    )
    archive_bytes = models.BigIntegerField(
        _("archive size"), null=True, blank=True, db_comment="Size of the archive in bytes."
    )
    attempts = models.PositiveSmallIntegerField(
        _("attempts"), default=1, db_comment="Tries made (a lock timeout is retried a few times)."
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_comment="Start (UTC).")
    finished_at = models.DateTimeField(_("finished at"), default=timezone.now, db_comment="End (UTC).")
    detail = models.TextField(_("detail"), blank=True, default="", db_comment="Error or note.")

    class Meta:
        db_table_comment = (
            "Log of partition maintenance: every partition created, rescued, archived, detached or dropped."
        )
        verbose_name = _("partition action")
        verbose_name_plural = _("partition actions")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["table", "-started_at"], name="partitions_action_table_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(finished_at__gte=models.F("started_at")),
                name="partitions_action_finished_after_start",
            ),
            choices_check("kind", PartitionActionKind.choices, "partitions_action_kind_valid"),
            choices_check("outcome", PartitionActionOutcome.choices, "partitions_action_outcome_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.partition} ({self.outcome})"
