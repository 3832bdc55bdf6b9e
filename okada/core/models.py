"""The bases every domain model stands on, and the scheduled-job log."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q, UniqueConstraint
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from safedelete.config import HARD_DELETE, SOFT_DELETE_CASCADE
from safedelete.managers import SafeDeleteAllManager, SafeDeleteDeletedManager, SafeDeleteManager
from safedelete.models import SafeDeleteModel
from safedelete.queryset import SafeDeleteQueryset
from simple_history.models import HistoricalRecords
from simple_history.utils import get_change_reason_from_object

from . import actors
from .fields import choices_check
from .ids import uuid7


def uuid_key(comment: str = "Primary key (UUID v7, time-ordered).") -> models.UUIDField:
    """A UUID v7 primary key (`okada.core.ids`): the millisecond it was made, then random bits.

    Ids made later sort later, so an insert writes the right edge of the key's index (and of
    indexes that lead with a foreign key to a new row) instead of a random page: fewer pages to
    keep in memory, and fewer to copy whole into the WAL after each checkpoint. SQL inserts use
    okada_uuid7() (orders migration 0010), which makes the same kind of id.
    """
    return models.UUIDField(primary_key=True, default=uuid7, editable=False, db_comment=comment)


class BaseModel(models.Model):
    """UUID primary key and UTC timestamps: every domain table has them."""

    id = uuid_key()
    created_at = models.DateTimeField(
        _("created at"), default=timezone.now, editable=False, db_comment="When the row was created (UTC)."
    )
    updated_at = models.DateTimeField(
        _("updated at"), auto_now=True, db_comment="When the row was last changed (UTC)."
    )

    class Meta:
        abstract = True


# The data dictionary of the history tables (DESIGN.md section 3): simple-history makes these
# columns itself, without comments.
HISTORY_COLUMN_COMMENTS = {
    "history_id": "History row id.",
    "history_date": "When the change was made (UTC).",
    "history_change_reason": (
        "Why: the reason given, else the acting context (e.g. soft delete, order placed "
        "[storefront:web]); NULL if none."
    ),
    "history_type": "+ created, ~ changed (soft deletes and restores too), - deleted for good (hard delete).",
    "history_user": "User who made the change; NULL when no user did (the reason then names the actor).",
}


class TrackedHistory(HistoricalRecords):
    """simple-history that takes the change reason from the acting context when none is set,
    and comments the history tables and their columns like every other table."""

    def get_change_reason_for_object(self, instance: Any, history_type: str, using: Any) -> Any:
        return get_change_reason_from_object(instance) or actors.current().reason or None

    def copy_fields(self, model: Any) -> dict[str, Any]:
        # History is read by row (`id`) and by date; an index on each copied foreign key or
        # indexed column would cost every write of the tracked table and serve nothing.
        fields: dict[str, Any] = super().copy_fields(model)
        for name, field in fields.items():
            if name != model._meta.pk.name:
                field.db_index = False
            else:  # copied columns keep the model's comments, but here the key is not one
                field.db_comment = f"Id of the {model._meta.db_table} row this is a version of."
        return fields

    def get_extra_fields(self, model: Any, fields: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = super().get_extra_fields(model, fields)
        for name, comment in HISTORY_COLUMN_COMMENTS.items():
            if isinstance(extra.get(name), models.Field):
                extra[name].db_comment = comment
        return extra

    def _get_history_user_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super()._get_history_user_fields()
        user = fields.get("history_user")
        if isinstance(user, models.ForeignKey):
            user.db_index = False  # type: ignore[attr-defined]  # a partial index in get_meta_options
        return fields

    def get_meta_options(self, model: Any) -> dict[str, Any]:
        """History rows are indexed by row id (copy_fields), by date with a BRIN index (rows are
        appended in date order, so a few pages of ranges serve any date filter at a fraction of
        a btree's cost per insert), and by user only where there is one: most changes come from
        the storefront, devices and jobs, whose history rows name no user."""
        meta: dict[str, Any] = super().get_meta_options(model)
        meta["db_table_comment"] = (
            f"History of {model._meta.db_table}: the row as it was after each change (before a hard "
            "delete), with when, who and why (django-simple-history)."
        )
        prefix = f"{model._meta.app_label}_h{model._meta.model_name}"[:24]
        meta["indexes"] = (
            *meta.get("indexes", ()),
            BrinIndex(fields=["history_date"], name=f"{prefix}_date"),
            models.Index(
                fields=["history_user"], name=f"{prefix}_user", condition=Q(history_user__isnull=False)
            ),
        )
        return meta

    def fields_included(self, model: Any) -> list[Any]:
        # Generated columns (e.g. search vectors) are derived data, not history.
        return [f for f in super().fields_included(model) if not isinstance(f, models.GeneratedField)]


class TrackedQuerySet(SafeDeleteQueryset):
    """Base queryset of tracked models; domain querysets extend it with chainable filters."""


class TrackedManager(SafeDeleteManager.from_queryset(TrackedQuerySet)):  # type: ignore[misc]
    """Hides soft-deleted rows (the default manager)."""


class TrackedAllManager(SafeDeleteAllManager.from_queryset(TrackedQuerySet)):  # type: ignore[misc]
    """Live and soft-deleted rows."""


class TrackedDeletedManager(SafeDeleteDeletedManager.from_queryset(TrackedQuerySet)):  # type: ignore[misc]
    """Soft-deleted rows only."""


def tracked_managers(queryset: type[TrackedQuerySet]) -> tuple[Any, Any, Any]:
    """`objects, all_objects, deleted_objects = tracked_managers(ProductQuerySet)` in a model:
    the three managers of a tracked model, all with the model's own chainable queryset."""
    return (
        TrackedManager.from_queryset(queryset)(),
        TrackedAllManager.from_queryset(queryset)(),
        TrackedDeletedManager.from_queryset(queryset)(),
    )


def deleted_rows_index(name: str) -> models.Index:
    """An index of the soft-deleted rows only, for the "deleted" filter and restore screens.

    Live rows (NULL deleted_at: nearly all of them) stay out of it, so inserting or updating a
    live row writes no entry; a full index on deleted_at cost every write of the table and
    served no query. Tracked models declare it in Meta.indexes (system check `okada.E002`).
    """
    return models.Index(fields=["deleted_at"], name=name, condition=Q(deleted_at__isnull=False))


def live_unique(*fields: str, name: str, **kwargs: Any) -> UniqueConstraint:
    """A UNIQUE constraint over live rows only, so a soft-deleted row never blocks re-creation.

    Tracked models must declare uniqueness through this helper; the `okada.E001` system check
    refuses a tracked model with a plain unique field or constraint.
    """
    condition = Q(deleted_at__isnull=True)
    if "condition" in kwargs:
        condition &= kwargs.pop("condition")
    return UniqueConstraint(fields=fields, condition=condition, name=name, **kwargs)


class TrackedModel(SafeDeleteModel, BaseModel):
    """Soft delete (django-safedelete) + full history (django-simple-history).

    - `objects` hides deleted rows; `all_objects` and `deleted_objects` show them.
    - `delete()` soft-deletes, cascading to dependent tracked rows; `restore()` brings back the
      row and only the dependents that this cascade deleted; `hard_delete()` is the only way to
      remove a row for good.
    - Saving a deleted object keeps it deleted (safedelete would silently restore it).
    - Every save, soft delete and restore writes a history row naming the acting user and reason
      (see `okada.core.actors`).
    """

    _safedelete_policy = SOFT_DELETE_CASCADE

    deleted_at = models.DateTimeField(
        _("deleted at"),
        editable=False,
        null=True,
        blank=True,
        db_comment="Soft delete: when the row was deleted; NULL for live rows.",
    )
    deleted_by_cascade = models.BooleanField(
        _("deleted with its parent"),
        editable=False,
        default=False,
        db_comment="True when the row was soft-deleted by the cascade of a parent's delete.",
    )

    objects = TrackedManager()  # type: ignore[misc]
    all_objects = TrackedAllManager()  # type: ignore[misc]
    deleted_objects = TrackedDeletedManager()  # type: ignore[misc]
    history = TrackedHistory(inherit=True, get_user=actors.history_user)

    tracked: ClassVar[bool] = True

    class Meta:
        abstract = True

    def save(self, *args: Any, keep_deleted: bool = True, **kwargs: Any) -> None:
        # safedelete restores a deleted row on any save; we only restore through restore().
        super().save(*args, keep_deleted=keep_deleted, **kwargs)  # type: ignore[misc]

    def delete(self, force_policy: int | None = None, *, reason: str | None = None, **kwargs: Any):  # type: ignore[override]
        if force_policy == HARD_DELETE:
            raise ValueError("a tracked row is removed for good only through hard_delete()")
        with actors.acting_as(reason=reason or actors.current().reason or "soft delete"):
            return super().delete(force_policy=force_policy, **kwargs)

    def restore(self, *, reason: str | None = None) -> tuple[int, dict[str, int]]:
        """Undo a soft delete, with the rows its cascade deleted (not those deleted before)."""
        if self.deleted_at is None:
            raise ValueError(f"{self._meta.label} {self.pk} is not deleted")
        with actors.acting_as(reason=reason or actors.current().reason or "restore"):
            return self.undelete()

    def hard_delete(self, *, reason: str | None = None) -> tuple[int, dict[str, int]]:
        """Remove the row (and its cascade) from the database for good; history keeps a `-` row."""
        with actors.acting_as(reason=reason or actors.current().reason or "hard delete"):
            return super().delete(force_policy=HARD_DELETE)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class JobRun(BaseModel):
    """One run of a scheduled job: what staff read to know the jobs ran, and how."""

    class Outcome(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCESS = "success", _("success")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped (already running)")
        ABANDONED = "abandoned", _("abandoned (worker died)")

    name = models.CharField(_("job"), max_length=100, db_comment="Task name, e.g. backups.run_backup.")
    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_comment="Start (UTC).")
    finished_at = models.DateTimeField(
        _("finished at"), null=True, blank=True, db_comment="End (UTC); NULL while running."
    )
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=Outcome.choices,
        default=Outcome.RUNNING,
        db_comment="running, success, failed, skipped (lock held elsewhere) or abandoned.",
    )
    summary = models.JSONField(
        _("summary"), null=True, blank=True, db_comment="What the run did (counts, names)."
    )
    error = models.TextField(_("error"), blank=True, default="", db_comment="Traceback of a failed run.")
    host = models.CharField(
        _("host"), max_length=255, blank=True, default="", db_comment="hostname:pid of the worker."
    )

    class Meta:
        db_table_comment = "One row per run of a scheduled job (Celery task) and how it ended."
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["name", "-started_at"], name="core_jobrun_name_started")]
        constraints = [
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=models.F("started_at")),
                name="core_jobrun_finished_after_start",
            ),
        ]

    def __str__(self) -> str:
        from .display import job_label  # the job's label in the page's language

        return f"{job_label(self.name)} @ {self.started_at:%Y-%m-%d %H:%M} ({self.get_outcome_display()})"

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None


class IdempotencyState(models.TextChoices):
    IN_FLIGHT = "in_flight", _("in flight")
    DONE = "done", _("done")


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of one credential: the request it named and the answer it got.

    Written by `okada.core.api.idempotency` only (raw SQL: one INSERT ... ON CONFLICT, with the
    answer, in the request's transaction); pruned after OKADA_IDEMPOTENCY_TTL_HOURS by
    `core.prune_idempotency_keys`. `state` and `locked_until` served the previous version's claim
    committed ahead of the request: records are now written `done`, and an `in_flight` one can
    only be such a claim (honoured during a rolling deploy).
    """

    State = IdempotencyState

    id = uuid_key("Record id (UUID v7).")
    scope = models.CharField(
        max_length=100, db_comment="The credential that sent the key (key:<uuid>, token:<uuid>...)."
    )
    key = models.CharField(max_length=255, db_comment="The Idempotency-Key header, as sent.")
    request_hash = models.CharField(
        max_length=64, db_comment="SHA-256 of method, path and body: a reuse for another request is refused."
    )
    method = models.CharField(max_length=10, db_comment="HTTP method.")
    path = models.CharField(max_length=500, db_comment="Request path and query string.")
    state = models.CharField(
        max_length=16,
        choices=IdempotencyState.choices,
        db_comment="in_flight while the first request runs, then done.",
    )
    locked_until = models.DateTimeField(
        db_comment="An in-flight record older than this was abandoned (crashed worker): it may be retaken."
    )
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, db_comment="HTTP status of the first answer."
    )
    response_headers = models.JSONField(
        default=dict, blank=True, db_comment="Headers replayed with it (Content-Type, Location...)."
    )
    response_body = models.BinaryField(null=True, blank=True, db_comment="Body of the first answer, as sent.")
    created_at = models.DateTimeField(default=timezone.now, db_comment="When the key was first used (UTC).")

    class Meta:
        db_table_comment = "Idempotency-Key records of API POSTs: replayed for 24 h, then pruned."
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="core_idempotency_scope_key_uniq"),
            choices_check("state", IdempotencyState.choices, "core_idempotency_state_valid"),
        ]
        indexes = [models.Index(fields=["created_at"], name="core_idempotency_created")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.state})"
