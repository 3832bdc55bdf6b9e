"""Shared write paths: bulk writes that keep history, and core housekeeping."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, connection, models, transaction
from django.db.models import PROTECT, ProtectedError, RestrictedError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from . import actors
from .actors import Actor
from .api.auth import credentials_changed
from .errors import InUse, InvalidInput, NotAllowed, NotFound, validation_text
from .fields import normalize_cm_phone
from .models import JobRun, TrackedModel
from .texts import Text

# The reasons this module writes into history and the ledger (stored in English, shown
# translated by okada.core.display.reason_label).
CHANGE_REASONS = (
    gettext_noop("deleted for good"),
    gettext_noop("soft delete"),
    gettext_noop("restore"),
    gettext_noop("hard delete"),
    gettext_noop("bulk create"),
    gettext_noop("bulk update"),
    gettext_noop("seed_demo"),
)

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


# Columns a save moves whether or not anything changed: no change of their own in history.
HISTORY_BOOKKEEPING = frozenset({"updated_at"})

# The `~` versions since %(since)s equal, column for column, to the version of the row just
# before them (lag over all of the row's history, so the first of the window is compared too).
# Versions in the order they were written (history_id: a row's changes take its lock in turn,
# each then draws its id), not by history_date: that is the writing server's clock, and a server
# behind would put a change back to an earlier value next to that value, as a copy of it.
_DUPLICATE_VERSIONS = """
DELETE FROM {table} WHERE history_id IN (
    SELECT history_id FROM (
        SELECT history_id, history_type, history_date, ROW({columns}) AS version,
               lag(ROW({columns})) OVER (PARTITION BY {key} ORDER BY history_id) AS previous
        FROM {table}
        WHERE {key} IN (SELECT {key} FROM {table} WHERE history_date >= %(since)s)
    ) versions
    WHERE history_date >= %(since)s AND history_type = '~' AND version IS NOT DISTINCT FROM previous
)
"""


def history_clean_duplicates(*, days: int) -> dict[str, int]:
    """Delete the history rows of the last `days` that record no change: a `~` version equal,
    column for column (`updated_at` aside), to the version before it of the same row. One
    statement per history table.

    Not simple-history's `clean_duplicate_history`: it compares editable fields only, so a soft
    delete or a restore (they change `deleted_at`, which no form edits) and a hard delete (`-`,
    the row as it was) looked like duplicates and were erased with who made them and why; and it
    read the rows through the default manager, which hides soft-deleted ones. Creations (`+`)
    and hard deletes (`-`) are never deleted here."""
    from simple_history.models import registered_models

    quote = connection.ops.quote_name
    since = timezone.now() - timedelta(days=days)
    deleted = 0
    with connection.cursor() as cursor:
        for model in sorted(registered_models.values(), key=lambda m: m._meta.db_table):
            history: Any = model.history.model
            columns = [quote(f.column) for f in history.tracked_fields if f.name not in HISTORY_BOOKKEEPING]
            sql = _DUPLICATE_VERSIONS.format(
                table=quote(history._meta.db_table),
                columns=", ".join(columns),
                key=quote(model._meta.pk.column),
            )
            cursor.execute(sql, {"since": since})
            deleted += cursor.rowcount
    return {"deleted": deleted}


# --- Soft delete, restore, hard delete: the shared steps of every domain's services -------------


def locked(
    rows: Any, key: Any, *, by: str = "pk", gone: Text | str | None = None, no_key: bool = False
) -> Any:
    """The row of `rows` (a manager or queryset) whose `by` is `key` (its primary key unless
    told: a stock row by its product_id), re-read under FOR UPDATE, or NotFound.

    `no_key=True` takes FOR NO KEY UPDATE: for an edit of a row's details, which then does not
    wait for (nor hold up) writers that only point at the row (an order placement's FOR KEY
    SHARE of its vendor, zone and customer). A delete keeps FOR UPDATE: it must wait for them.

    Services look a row up, then lock it. Between the two a concurrent request may soft-delete
    the row (the default manager no longer sees it once that commits), delete it for good, or,
    for `deleted_objects`, restore it: the caller gets a clear 404 (`gone`, or "... no longer
    exists"), never Django's DoesNotExist (a 500). Every `select_for_update().get()` of a
    service goes through here.
    """
    try:
        return rows.select_for_update(no_key=no_key).get(**{by: key})
    except ObjectDoesNotExist:
        raise gone_meanwhile(rows.model, gone) from None


def gone_meanwhile(model: Any, gone: Text | str | None = None) -> NotFound:
    """What `locked` raises when the row to lock was deleted since it was looked up."""
    meta = model._meta
    message = gone or Text(
        gettext_noop("%(what)s no longer exists: it was deleted meanwhile."),
        what=Text.of(meta.verbose_name),
    )
    return NotFound(message, model=meta.label)


def live_share_locked(model: Any, key: Any, *, strength: str = "KEY SHARE") -> Any:
    """The live row of `model` (a tracked model) whose primary key is `key`, share-locked until
    the transaction ends; None when it is deleted or unknown, or was deleted while this waited.

    For a service that checks a row it will point at (a product's vendor, a customer's zone):
    `soft_delete` locks the row FOR UPDATE, then looks for live rows using it. Foreign keys are
    checked at commit (deferred), so a plain read lets a delete in flight go unseen both ways:
    the new row ends up live under a deleted one. With this lock, a delete in flight finishes
    first (and the row is not found here), or one that comes later waits for this transaction
    and then finds the new row (in_use). FOR KEY SHARE, the lock the foreign key takes anyway,
    lets concurrent writers pointing at the same row go on together; `strength="SHARE"` also
    waits for updates of the row (a category's own moves).
    """
    return next(iter(live_share_locked_many(model, [key], strength=strength).values()), None)


def live_share_locked_many(model: Any, keys: Iterable[Any], *, strength: str = "KEY SHARE") -> dict[Any, Any]:
    """`live_share_locked` for several rows in one query (in key order): {key: row} of those
    live; a key missing from it is deleted or unknown."""
    if strength not in ("KEY SHARE", "SHARE"):
        raise ValueError(f"not a share lock: {strength}")
    pks = sorted({getattr(key, "pk", key) for key in keys})
    if not pks:
        return {}
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.pk.column)
    key_type = model._meta.pk.db_type(connection)  # keys given as text are cast, as `= %s` would
    rows = model.objects.raw(
        f"SELECT * FROM {table} WHERE {column} = ANY(%s::{key_type}[]) AND deleted_at IS NULL"  # noqa: S608 (names from the model)
        f" ORDER BY {column} FOR {strength}",
        [pks],
    )
    return {row.pk: row for row in rows}


def update_rows(model: type[M], objs: Sequence[M], fields: Sequence[str]) -> int:
    """Write `fields` of each of `objs` (found by primary key) in one UPDATE ... FROM (VALUES ...).

    What `bulk_update` does, without its `CASE WHEN id = ... THEN ...` over every object for
    each column (evaluated for each row: quadratic in the number of objects). No history: the
    caller writes it (a tracked model's bulk write keeps history, see bulk_update_tracked).
    """
    if not objs:
        return 0
    quote = connection.ops.quote_name
    columns: list[Any] = [model._meta.pk, *(model._meta.get_field(name) for name in fields)]
    # Each value cast to its column's type: VALUES would otherwise guess (text, numeric). But
    # varchar without its length: an explicit cast to varchar(n) cuts a longer text silently,
    # the assignment to the column refuses it (DataError), as an UPDATE or bulk_update does.
    types = [re.sub(r"\bvarchar\(\d+\)", "varchar", str(field.db_type(connection))) for field in columns]
    row = "(" + ", ".join(f"%s::{db_type}" for db_type in types) + ")"
    params = [
        field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs for field in columns
    ]
    names = [quote(field.column) for field in columns]
    pk = names[0]
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS t SET "  # noqa: S608 (names from the model)
        + ", ".join(f"{name} = v.{name}" for name in names[1:])
        + f" FROM (VALUES {', '.join([row] * len(objs))}) AS v({', '.join(names)}) WHERE t.{pk} = v.{pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def in_use_relations(model: Any) -> list[tuple[Any, Any, bool]]:
    """(the key, the model that has it, tracked?) of each protected key pointing at `model`: while
    rows use a row through one (live rows of a tracked model, any row of another), its soft delete
    is refused (`refuse_if_in_use`; the admin's delete pages say so up front from the same list,
    okada.core.deletion.soft_delete_refusals)."""
    return [
        (rel.field, rel.related_model, bool(getattr(rel.related_model, "tracked", False)))
        for rel in model._meta.related_objects
        if not rel.many_to_many and rel.on_delete is PROTECT
    ]


def refuse_if_in_use(obj: TrackedModel) -> None:
    """InUse when rows point at `obj` through a protected key: live tracked rows (a vendor's
    products, a zone's customers: deleting it would leave them pointing at a deleted row), or
    records that are never deleted (an order's payments, a vendor's devices and sync conflicts:
    they keep it live; safedelete's cascade would raise ProtectedError, a 500)."""
    for key, related, tracked in in_use_relations(type(obj)):
        rows = related.objects if tracked else related._default_manager
        if rows.filter(**{key.name: obj}).exists():
            message = (
                gettext_noop("%(obj)s is still used by live %(rows)s: delete or move them first.")
                if tracked
                else gettext_noop("%(obj)s has %(rows)s, which are kept for good: it cannot be deleted.")
            )
            raise InUse(
                Text(message, obj=str(obj), rows=Text.of(related._meta.verbose_name_plural)),
                model=related._meta.label,
            )


def soft_delete(obj: TrackedModel, *, actor: Actor, reason: str) -> TrackedModel:
    """Lock the live row, refuse while live rows depend on it, soft-delete it with history."""
    model = type(obj)
    with transaction.atomic(), actors.acting_for(actor, reason):
        row = locked(model.objects, obj.pk)
        refuse_if_in_use(row)
        row.delete()
    return row


def restore(obj: TrackedModel, *, actor: Actor, reason: str) -> TrackedModel:
    """Lock the deleted row and bring it back (and what its delete cascaded to), with history.

    Callers check their unique values first; a race on one still ends as an IntegrityError,
    which they map with `okada.core.errors.unique_or`.
    """
    model = type(obj)
    with transaction.atomic(), actors.acting_for(actor, reason):
        row = locked(model.deleted_objects, obj.pk, gone=not_deleted(model))
        row.restore()
    return row


def not_deleted(model: Any) -> Text:
    """The NotFound message of a restore whose row is no longer deleted (see `locked`)."""
    return Text(
        gettext_noop("%(what)s is not deleted (it was restored meanwhile) or no longer exists."),
        what=Text.of(model._meta.verbose_name),
    )


def tracked_hard_delete(*, obj: TrackedModel, actor: Actor, reason: str = "deleted for good") -> None:
    """Remove a row for good (history keeps a `-` row): superusers only, and never a row that
    others still reference (orders keep their products, the ledger its vendor...)."""
    if actor.role != Actor.SYSTEM and not getattr(actor.user, "is_superuser", False):
        raise NotAllowed(_("Only superusers may delete records for good."))
    try:
        with transaction.atomic(), actors.acting_for(actor, reason):
            obj.hard_delete()
            _check_foreign_keys_now()
            # The cascade may take API keys or tokens with it (a vendor's): processes drop the
            # ones they kept, as after a revoke.
            credentials_changed()
    except (ProtectedError, RestrictedError, IntegrityError):
        raise InUse(
            Text(
                gettext_noop("%(obj)s is still referenced by other records: it cannot be deleted for good."),
                obj=str(obj),
            )
        ) from None


def _check_foreign_keys_now() -> None:
    """Check now the foreign keys the transaction's writes so far must satisfy, not at commit.

    Django's foreign keys are DEFERRABLE INITIALLY DEFERRED (every deferrable constraint here
    is one): inside a caller's transaction (the admin's confirmation) a row still referenced by
    a key with no on_delete rule Django follows (an order item's product, DO_NOTHING) failed at
    that transaction's commit, past the `except` that says in_use: a 500. IMMEDIATE runs the
    pending checks at once; DEFERRED puts the keys back as they were."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def model_fields_update(obj: Any, data: dict[str, Any]) -> list[str]:
    """Set the values in `data` that differ on `obj`; return the names of the fields changed."""
    changed = [f for f, v in data.items() if getattr(obj, f) != v]
    for field in changed:
        setattr(obj, field, data[field])
    return changed


def refuse_unknown_fields(data: dict[str, Any], editable: Sequence[str]) -> None:
    """InvalidInput naming the fields of `data` an update service does not change."""
    unknown = set(data) - set(editable)
    if unknown:
        raise InvalidInput(
            Text(gettext_noop("These fields cannot be changed: %(f)s"), f=", ".join(sorted(unknown))),
            errors={f: [_("This field cannot be changed.")] for f in sorted(unknown)},
        )


def cm_phone(raw: str, *, field: str = "phone") -> str:
    """A Cameroonian number in E.164 form, or InvalidInput on `field`."""
    from django.core.exceptions import ValidationError

    try:
        return normalize_cm_phone(raw)
    except ValidationError as exc:
        raise InvalidInput(validation_text(exc), errors={field: exc.messages}) from None
