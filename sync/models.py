"""Vendor devices, the change feed they pull, the mutations they push and the conflicts staff resolve.

The change feed (`Change`, table sync_change) is written by database triggers on every synced
table (migration 0002, `sync.feed`), never by Python, so no write path escapes it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.models import Vendor
from okada.core import actors
from okada.core.fields import choices_check
from okada.core.models import BaseModel, TrackedHistory, uuid_key


class XidField(models.Field):
    """A PostgreSQL `xid8` (64-bit transaction id, never wraps), read as a Python int."""

    description = "PostgreSQL xid8"

    def db_type(self, connection: Any) -> str:
        return "xid8"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> int | None:
        return None if value is None else int(value)

    def get_prep_value(self, value: Any) -> str | None:
        return None if value is None else str(int(value))  # xid8 reads its text form only


# --- Devices ------------------------------------------------------------------------------------


class Device(BaseModel):
    """A vendor's phone or tablet running the offline app. Its id is chosen by the device."""

    id = models.UUIDField(primary_key=True, db_comment="Device id, chosen by the device (a UUID).")
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.PROTECT,
        related_name="sync_devices",
        db_comment="Vendor it syncs for.",
    )
    name = models.CharField(
        _("name"), max_length=100, db_comment="Name given by the vendor (e.g. 'Caisse 1')."
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("registered by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_comment="User whose credential registered it, when there was one.",
    )
    last_mutation_id = models.BigIntegerField(
        _("last mutation id"),
        default=0,
        db_comment="Highest pushed mutation id applied (or rejected) for this device; they go up by one.",
    )
    last_pull_at = models.DateTimeField(_("last pull"), null=True, blank=True, db_comment="Last pull (UTC).")
    last_push_at = models.DateTimeField(_("last push"), null=True, blank=True, db_comment="Last push (UTC).")
    revoked_at = models.DateTimeField(
        _("revoked at"), null=True, blank=True, db_comment="When staff revoked it; NULL while it may sync."
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
        db_comment="Staff user who revoked it.",
    )
    revoke_reason = models.CharField(
        _("revoke reason"), max_length=255, blank=True, default="", db_comment="Why it was revoked."
    )

    class Meta:
        db_table_comment = "Vendor devices that sync offline; a revoked device can no longer pull or push."
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["vendor", "name"]
        permissions = [("revoke_device", _("Can revoke sync devices"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(last_mutation_id__gte=0), name="sync_device_last_mutation_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.vendor_id})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


# --- Conflicts ----------------------------------------------------------------------------------


class ConflictKind(models.TextChoices):
    PRICE = "price", _("price changed on both sides")
    DELETE_VS_UPDATE = "delete_vs_update", _("update of a deleted product")
    STALE_COUNT = "stale_count", _("stock count on a stale stock")
    IMPOSSIBLE_STOCK = "impossible_stock", _("stock change below zero or below reservations")
    STALE_TRANSITION = "stale_transition", _("order moved meanwhile")
    # A sale, a restock or a count a suspended vendor's device recorded on the shelf: a fact, kept
    # for staff (who may write for a suspended vendor) instead of refused (sync.push).
    VENDOR_SUSPENDED = "vendor_suspended", _("stock change of a suspended vendor")


class ConflictStatus(models.TextChoices):
    OPEN = "open", _("open")
    KEPT_SERVER = "kept_server", _("server value kept")
    APPLIED_DEVICE = "applied_device", _("device value applied")


class SyncConflict(BaseModel):
    """A pushed mutation the server could not apply as it stood: both sides kept for staff."""

    Kind = ConflictKind
    Status = ConflictStatus

    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.PROTECT,
        related_name="sync_conflicts",
        db_comment="Vendor.",
    )
    device = models.ForeignKey(
        Device,
        verbose_name=_("device"),
        on_delete=models.PROTECT,
        related_name="conflicts",
        db_comment="Device that pushed it.",
    )
    mutation_id = models.BigIntegerField(_("mutation id"), db_comment="The device's mutation id.")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, db_comment="What clashed.")
    entity = models.CharField(
        _("table"), max_length=20, db_comment="Synced table of the row: products, stock or orders."
    )
    row_id = models.UUIDField(_("row"), db_comment="Id of the row in that table.")
    base_version = models.BigIntegerField(
        _("base version"),
        null=True,
        blank=True,
        db_comment="Version (or status) the device based its change on.",
    )
    device_value = models.JSONField(_("device value"), db_comment="What the device asked for.")
    server_value = models.JSONField(_("server value"), db_comment="The server's values when it arrived.")
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=Status.choices,
        default=Status.OPEN,
        db_comment="open, kept_server or applied_device.",
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_comment="Staff user who resolved it.",
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True, db_comment="When (UTC).")
    resolution_note = models.TextField(
        _("resolution note"), blank=True, default="", db_comment="Why staff chose this."
    )

    history = TrackedHistory(get_user=actors.history_user, excluded_fields=["updated_at"])

    class Meta:
        db_table = "sync_conflict"
        db_table_comment = (
            "Pushed changes that clashed with the server's data, kept with both sides for staff."
        )
        verbose_name = _("sync conflict")
        verbose_name_plural = _("sync conflicts")
        ordering = ["-created_at"]
        permissions = [("resolve_syncconflict", _("Can resolve sync conflicts"))]
        # Never pruned: hundreds of thousands in a year of a busy marketplace. The admin's list
        # (newest first: created_at, then the key) reads each of its pages through an index in
        # that order: all of them, a status's, a kind's, a vendor's, a range of days; a search
        # by a row's id finds its few (sync migration 0013).
        indexes = [
            models.Index(fields=["status", "-created_at"], name="sync_conflict_status"),
            models.Index(fields=["vendor", "-created_at"], name="sync_conflict_vendor"),
            models.Index(fields=["-created_at", "-id"], name="sync_conflict_created"),
            models.Index(fields=["kind", "-created_at"], name="sync_conflict_kind"),
            models.Index(fields=["row_id"], name="sync_conflict_row"),
        ]
        constraints = [
            choices_check("kind", ConflictKind.choices, "sync_conflict_kind_valid"),
            choices_check("status", ConflictStatus.choices, "sync_conflict_status_valid"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(resolved_at__isnull=False),
                name="sync_conflict_resolved_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.entity} {self.row_id})"


# --- Pushed mutations ---------------------------------------------------------------------------


class MutationStatus(models.TextChoices):
    APPLIED = "applied", _("applied")
    REJECTED = "rejected", _("rejected")
    CONFLICT = "conflict", _("conflict")


class Mutation(BaseModel):
    """One pushed mutation and its result, stored so a retry replays it instead of applying it again."""

    Status = MutationStatus

    device = models.ForeignKey(
        Device,
        verbose_name=_("device"),
        on_delete=models.CASCADE,
        related_name="mutations",
        db_index=False,
        db_comment="Device.",
    )
    mutation_id = models.BigIntegerField(
        _("mutation id"), db_comment="The device's id for it: 1, 2, 3... per device."
    )
    name = models.CharField(_("mutation"), max_length=40, db_comment="stock.adjust, product.update...")
    args = models.JSONField(_("arguments"), default=dict, db_comment="Arguments as pushed.")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, db_comment="applied, rejected or conflict."
    )
    code = models.CharField(
        _("code"), max_length=40, blank=True, default="", db_comment="Error code of a rejection or conflict."
    )
    message = models.TextField(_("message"), blank=True, default="", db_comment="Why it was rejected.")
    conflict = models.ForeignKey(
        SyncConflict,
        verbose_name=_("conflict"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_comment="The conflict it raised.",
    )

    class Meta:
        db_table_comment = "Mutations pushed by devices with their results, replayed on retries."
        verbose_name = _("pushed mutation")
        verbose_name_plural = _("pushed mutations")
        constraints = [
            models.UniqueConstraint(fields=["device", "mutation_id"], name="sync_mutation_device_id_uniq"),
            choices_check("status", MutationStatus.choices, "sync_mutation_status_valid"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="sync_mutation_created"),
            # The admin's list of rejections or conflicts, and its search by code: partial, of
            # the pushes not applied (a few percent), so an applied one, most of them, writes
            # neither (migration 0012).
            models.Index(
                fields=["status", "-id"], name="sync_mutation_unapplied", condition=~Q(status="applied")
            ),
            models.Index(fields=["code"], name="sync_mutation_code", condition=~Q(code="")),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}#{self.mutation_id} {self.name} ({self.get_status_display()})"


# --- The change feed ----------------------------------------------------------------------------


class Change(models.Model):
    """Rows of one synced table changed by one statement, written by the capture triggers.

    Range-partitioned by month on created_at (migration 0001); pruned past the retention
    (`sync.services.feed_maintain`). A pull serves rows by (xid, id) below the snapshot horizon.
    """

    # Django sees `id` as the key; the table has no primary key index (migration 0001: nothing
    # looks a feed row up by id, and each order placed would pay for maintaining one).
    id = uuid_key("Change id (UUID v7); breaks ties between rows of one transaction.")
    created_at = models.DateTimeField(
        default=timezone.now, db_comment="Start of the writing transaction (UTC); partition key."
    )
    xid = XidField(db_comment="Writing transaction (pg_current_xact_id()); the feed's order.")
    vendor_id = models.UUIDField(
        null=True, blank=True, db_comment="Vendor whose devices receive it; NULL: every device (shared rows)."
    )
    priority = models.SmallIntegerField(
        db_comment="0 orders/items/stock, 1 products/categories/zones, 2 the rest."
    )
    entity = models.SmallIntegerField(db_comment="Synced table (code in sync.feed.ENTITIES).")
    row_ids = ArrayField(
        models.UUIDField(), db_comment="Ids of the rows one statement changed (at most sync.feed.CHUNK)."
    )

    class Meta:
        db_table_comment = (
            "Change feed of the synced tables for offline devices, append-only, partitioned by month."
        )
        verbose_name = _("change")
        verbose_name_plural = _("changes")
        indexes = [
            models.Index(fields=["vendor_id", "priority", "xid", "id"], name="sync_change_pull"),
        ]

    def __str__(self) -> str:
        return f"{self.entity}:{len(self.row_ids)}@{self.xid}"


class FeedState(models.Model):
    """One row: the database's sync generation and how much of the feed was pruned.

    `generation` changes when the data is restored from a backup (`sync.services.generation_rotate`),
    which tells every device to download again. `pruned_xid`/`pruned_id` is the highest feed
    position (xid, id) removed by pruning: a cursor below it has lost changes. `home` names the
    database and table it was last written in: a restore re-creates them (`generation_current`).
    """

    id = models.SmallIntegerField(primary_key=True, default=1, db_comment="Always 1.")
    generation = models.UUIDField(db_comment="Changes on restore: cursors of another generation reset.")
    pruned_xid = XidField(null=True, blank=True, db_comment="Highest pruned feed position: xid.")
    pruned_id = models.UUIDField(null=True, blank=True, db_comment="Highest pruned feed position: id.")
    home = models.TextField(
        null=True,
        blank=True,
        db_comment="Database oid and this table's oid when the feed was last numbered here; other ones mean "
        "a restore (it re-creates the table): the feed is started afresh.",
    )
    updated_at = models.DateTimeField(auto_now=True, db_comment="Last change (UTC).")

    class Meta:
        db_table_comment = "Sync generation (rotated by restores) and the feed's pruned horizon."
        verbose_name = _("sync feed state")
        verbose_name_plural = _("sync feed states")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="sync_feedstate_single_row")]

    def __str__(self) -> str:
        return str(self.generation)
