"""What database health keeps: hourly snapshots of PostgreSQL's statistics (for trends and
deltas), alerts (opened, repeated, cleared, acknowledged), and the log of what staff did to the
database from the admin (sessions cancelled or terminated, statistics reset)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from okada.core.fields import choices_check
from okada.core.models import BaseModel


class DatabaseHealth(models.Model):
    """No table: the admin entry "Database health" and its permission (the screens read
    PostgreSQL's catalog and statistics views, not a table of ours)."""

    class Meta:
        managed = False
        db_table = "health_databasehealth_no_table"
        verbose_name = _("database overview")
        verbose_name_plural = _("database overview")
        default_permissions = ()
        permissions = [("view_database_health", _("Can see the database health screens"))]

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class Snapshot(BaseModel):
    """One hourly reading of the table, index and statement statistics (their counters are
    cumulative: a trend or a delta is the difference between two snapshots)."""

    taken_at = models.DateTimeField(_("taken at"), default=timezone.now, db_comment="When it was read (UTC).")
    hour = models.DateTimeField(
        _("hour"),
        unique=True,
        db_comment="The UTC hour it stands for: one snapshot per hour (idempotent job).",
    )
    database_bytes = models.BigIntegerField(_("database size"), db_comment="pg_database_size() then.")
    stats_reset = models.DateTimeField(
        null=True,
        blank=True,
        db_comment="pg_stat_database.stats_reset: table and index counters restart then.",
    )
    statements_reset = models.DateTimeField(
        null=True, blank=True, db_comment="pg_stat_statements_info.stats_reset; NULL without the extension."
    )

    class Meta:
        db_table_comment = (
            "Hourly snapshots of PostgreSQL statistics (kept OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS)."
        )
        verbose_name = _("snapshot")
        verbose_name_plural = _("snapshots")
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["taken_at"], name="health_snapshot_taken")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} UTC"


# The statistic rows below are many (every table, index and top statement, every hour, for 90 days)
# and written once: a bigint key and no timestamps of their own (their snapshot has the time).
STAT_ID_COMMENT = "Row id (a bigint: many rows, written once; the time is the snapshot's)."


class TableStat(models.Model):
    """A table's size and counters in one snapshot. A partitioned table has a row of its own with
    its partitions' sums (`kind` p); each partition names its root in `parent`."""

    id = models.BigAutoField(primary_key=True, db_comment=STAT_ID_COMMENT)
    snapshot = models.ForeignKey(
        Snapshot, on_delete=models.CASCADE, related_name="tables", db_comment="Snapshot."
    )
    name = models.CharField(max_length=63, db_comment="Table name (current schema).")
    parent = models.CharField(
        max_length=63, blank=True, default="", db_comment="Root of a partition; '' otherwise."
    )
    kind = models.CharField(
        max_length=1, db_comment="pg_class.relkind: r table, p partitioned, m materialised view."
    )
    total_bytes = models.BigIntegerField(db_comment="Table + indexes + TOAST.")
    table_bytes = models.BigIntegerField(db_comment="Heap (with free space and visibility maps), no TOAST.")
    index_bytes = models.BigIntegerField(db_comment="All its indexes.")
    toast_bytes = models.BigIntegerField(db_comment="TOAST table and its index.")
    estimated_rows = models.BigIntegerField(
        db_comment="pg_class.reltuples (estimate; -1 before the first ANALYZE)."
    )
    dead_rows = models.BigIntegerField(db_comment="pg_stat_user_tables.n_dead_tup.")
    seq_scan = models.BigIntegerField(db_comment="Sequential scans (cumulative).")
    seq_tup_read = models.BigIntegerField(db_comment="Rows read by sequential scans (cumulative).")
    idx_scan = models.BigIntegerField(db_comment="Index scans (cumulative).")
    writes = models.BigIntegerField(db_comment="Rows inserted + updated + deleted (cumulative).")
    # Shared-buffer reads (pg_statio_user_tables, cumulative): the cache hit alert compares two
    # snapshots. NULL in snapshots taken before they were recorded, and for a partitioned table
    # (its partitions have them).
    heap_blks_hit = models.BigIntegerField(
        null=True, blank=True, db_comment="Table blocks found in shared buffers (cumulative)."
    )
    heap_blks_read = models.BigIntegerField(
        null=True, blank=True, db_comment="Table blocks read from outside shared buffers (cumulative)."
    )
    idx_blks_hit = models.BigIntegerField(
        null=True, blank=True, db_comment="Its indexes' blocks found in shared buffers (cumulative)."
    )
    idx_blks_read = models.BigIntegerField(
        null=True, blank=True, db_comment="Its indexes' blocks read from outside shared buffers (cumulative)."
    )

    class Meta:
        db_table_comment = "Per-table size and counters of a health snapshot."
        verbose_name = _("table statistics")
        verbose_name_plural = _("table statistics")
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "name"], name="health_tablestat_uniq"),
        ]
        indexes = [models.Index(fields=["name", "snapshot"], name="health_tablestat_name")]

    def __str__(self) -> str:
        return self.name


class IndexStat(models.Model):
    """An index's size and scans in one snapshot."""

    id = models.BigAutoField(primary_key=True, db_comment=STAT_ID_COMMENT)
    snapshot = models.ForeignKey(
        Snapshot, on_delete=models.CASCADE, related_name="indexes", db_comment="Snapshot."
    )
    table = models.CharField(max_length=63, db_comment="Its table.")
    name = models.CharField(max_length=63, db_comment="Index name.")
    bytes = models.BigIntegerField(db_comment="Size.")
    idx_scan = models.BigIntegerField(db_comment="Scans (cumulative).")

    class Meta:
        db_table_comment = "Per-index size and scans of a health snapshot."
        verbose_name = _("index statistics")
        verbose_name_plural = _("index statistics")
        constraints = [models.UniqueConstraint(fields=["snapshot", "name"], name="health_indexstat_uniq")]

    def __str__(self) -> str:
        return self.name


class QueryText(models.Model):
    """The normalised text of a statement (pg_stat_statements), kept once per query id."""

    queryid = models.BigIntegerField(primary_key=True, db_comment="pg_stat_statements.queryid.")
    text = models.TextField(db_comment="Normalised text ($1 for constants), cut at 10,000 characters.")
    last_seen = models.DateTimeField(default=timezone.now, db_comment="Last snapshot that held it (UTC).")

    class Meta:
        db_table_comment = "Normalised statement texts of the snapshots, one per query id."
        verbose_name = _("query text")
        verbose_name_plural = _("query texts")

    def __str__(self) -> str:
        return self.text[:80]


class QueryStat(models.Model):
    """A statement's cumulative counters in one snapshot (the top ones by total time)."""

    id = models.BigAutoField(primary_key=True, db_comment=STAT_ID_COMMENT)
    snapshot = models.ForeignKey(
        Snapshot, on_delete=models.CASCADE, related_name="queries", db_comment="Snapshot."
    )
    queryid = models.BigIntegerField(db_comment="pg_stat_statements.queryid (text in health_querytext).")
    calls = models.BigIntegerField(db_comment="Executions (cumulative since the statistics' reset).")
    total_ms = models.FloatField(db_comment="Total execution time, ms (cumulative).")
    rows = models.BigIntegerField(db_comment="Rows returned or affected (cumulative).")
    blocks_hit = models.BigIntegerField(db_comment="Shared buffer hits (cumulative).")
    blocks_read = models.BigIntegerField(db_comment="Shared blocks read from disk or OS cache (cumulative).")

    class Meta:
        db_table_comment = "Per-statement counters of a health snapshot (pg_stat_statements)."
        verbose_name = _("query statistics")
        verbose_name_plural = _("query statistics")
        constraints = [models.UniqueConstraint(fields=["snapshot", "queryid"], name="health_querystat_uniq")]
        indexes = [models.Index(fields=["queryid", "snapshot"], name="health_querystat_query")]

    def __str__(self) -> str:
        return str(self.queryid)


class AlertQuerySet(models.QuerySet["Alert"]):
    def open(self) -> AlertQuerySet:
        return self.filter(cleared_at__isnull=True)

    def unacknowledged(self) -> AlertQuerySet:
        return self.filter(acknowledged_at__isnull=True)

    def most_urgent_first(self, *, unacknowledged_first: bool = False) -> AlertQuerySet:
        """Critical before warning, then newest first; with `unacknowledged_first`, the alerts
        nobody took before all others. (Severity is a word: "-severity" would put "warning"
        first, and acknowledged_at ascending puts its NULLs last: the lists are cut short.)"""
        rank = Case(When(severity=AlertSeverity.CRITICAL, then=Value(0)), default=Value(1))
        order = [rank.asc(), F("opened_at").desc()]
        if unacknowledged_first:
            taken = Case(When(acknowledged_at__isnull=True, then=Value(0)), default=Value(1))
            order.insert(0, taken.asc())
        return self.order_by(*order)


class AlertSeverity(models.TextChoices):
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")


class Alert(BaseModel):
    """A condition staff must know about (a stale backup, a sequence near its end ...), from the
    moment it was first seen to the moment it went away. Seen again while open, it is the same
    row (`repeats`); once cleared, a new occurrence is a new row."""

    Severity = AlertSeverity

    key = models.CharField(
        _("key"), max_length=200, db_comment="Condition and subject, e.g. sequence:orders_order_number_seq."
    )
    kind = models.CharField(_("kind"), max_length=50, db_comment="Condition, e.g. sequence_near_max.")
    severity = models.CharField(
        _("severity"), max_length=10, choices=Severity.choices, db_comment="warning or critical."
    )
    message = models.TextField(
        _("message"), db_comment="What was wrong when last seen (English; shown translated)."
    )
    data = models.JSONField(
        _("details"), default=dict, blank=True, db_comment="The figures behind the message."
    )
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now, db_comment="First seen (UTC).")
    last_seen_at = models.DateTimeField(
        _("last seen at"), default=timezone.now, db_comment="Last seen (UTC)."
    )
    repeats = models.PositiveIntegerField(_("times seen"), default=1, db_comment="Evaluations that found it.")
    cleared_at = models.DateTimeField(
        _("cleared at"),
        null=True,
        blank=True,
        db_comment="When an evaluation found it gone (UTC); NULL while open.",
    )
    acknowledged_at = models.DateTimeField(
        _("acknowledged at"), null=True, blank=True, db_comment="When a staff member took it (UTC)."
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
        db_comment="Who took it.",
    )
    emailed_at = models.DateTimeField(
        _("emailed at"), null=True, blank=True, db_comment="When the Operations group was emailed."
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        db_table_comment = "Health alerts: opened, repeated, cleared and acknowledged."
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-opened_at"]
        permissions = [("acknowledge_alert", _("Can acknowledge health alerts"))]
        default_permissions = ("view",)
        constraints = [
            # At most one open alert per condition and subject.
            models.UniqueConstraint(
                fields=["key"], condition=Q(cleared_at__isnull=True), name="health_alert_open_key"
            ),
            choices_check("severity", AlertSeverity.choices, "health_alert_severity_valid"),
        ]
        indexes = [models.Index(fields=["-opened_at"], name="health_alert_opened")]

    def __str__(self) -> str:
        # Its condition's title in the reader's language and its subject ("table"), not the key.
        from okada.core import health_registry

        condition = health_registry.condition(self.kind)
        title = str(condition.title) if condition is not None else self.kind
        subject = self.key.split(":", 1)[1] if ":" in self.key else ""
        return f"{title} ({subject})" if subject else title

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class DatabaseActionKind(models.TextChoices):
    CANCEL = "cancel", _("query cancelled")
    TERMINATE = "terminate", _("session terminated")
    RESET_STATEMENTS = "reset_statements", _("query statistics reset")


class DatabaseAction(BaseModel):
    """Something a superuser did to the database from the health screens, and how it went."""

    Kind = DatabaseActionKind

    kind = models.CharField(
        _("action"), max_length=20, choices=Kind.choices, db_comment="cancel, terminate, reset_statements."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("user"),
        db_comment="Who did it (NULL: a command or the system).",
    )
    pid = models.IntegerField(_("backend pid"), null=True, blank=True, db_comment="Backend process acted on.")
    target = models.TextField(
        _("target"),
        blank=True,
        default="",
        db_comment="The session's user, application and query at the time.",
    )
    succeeded = models.BooleanField(
        _("succeeded"), db_comment="What PostgreSQL answered (false: already gone)."
    )

    class Meta:
        db_table_comment = "Log of sessions cancelled or terminated and statistics reset from the admin."
        verbose_name = _("database action")
        verbose_name_plural = _("database actions")
        ordering = ["-created_at"]
        default_permissions = ("view",)
        constraints = [choices_check("kind", DatabaseActionKind.choices, "health_dbaction_kind_valid")]

    def __str__(self) -> str:
        return f"{self.kind} {self.pid or ''}".strip()
