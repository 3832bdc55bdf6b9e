"""CSV exports of the order list: asked for in the admin, written by a Celery task.

The file holds customers' names and phone numbers, so it is written under OKADA_PRIVATE_DIR (never
a public media or static directory) and served by the admin only to the user who asked for it
(`OrderExportAdmin.download_view`). The task rebuilds the list exactly as the admin showed it: the
order changelist, with its filters and search, run on the saved query string as that user.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.test import RequestFactory
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from okada.core.actors import Actor
from okada.core.db_router import reading_alias
from okada.core.jobs import JobLock, LockLost, advisory_lock, take_unless_live
from okada.core.texts import Text, authored

from .models import OrderExport

log = logging.getLogger(__name__)

CHUNK = 2000


def export_dir() -> Path:
    """Exports hold customers' names and phone numbers: the directory is made for the web and
    worker user alone (0700), and so is each file (0600, `export_run`): the web processes and
    the Celery workers run as one user (README "Settings", OKADA_PRIVATE_DIR)."""
    path = Path(settings.OKADA_PRIVATE_DIR) / "exports"
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode goes through the umask
    return path


def export_path(export: OrderExport) -> Path:
    return export_dir() / f"{export.pk}.csv"


EXPORT_PERMISSION = "orders.export_orders"
# The file holds what the order list shows (customers' names and phones): exporting is reading the
# orders, so it takes a permission that reads them too, as the list does (Django's view or change).
READ_PERMISSIONS = ("orders.view_order", "orders.change_order")


def may_export(user: Any) -> bool:
    """Whether `user` may export orders and download their exports: the export permission and
    one that reads orders (`export_orders` alone would hand over a list its holder may not see)."""
    return bool(user.has_perm(EXPORT_PERMISSION)) and any(user.has_perm(p) for p in READ_PERMISSIONS)


def require_export(user: Any) -> None:
    """NotAllowed, naming the permission missing, unless `user` is active staff who `may_export`."""
    actor = Actor.for_staff_user(user)
    actor.require(EXPORT_PERMISSION)
    if not any(actor.can(p) for p in READ_PERMISSIONS):
        actor.require(READ_PERMISSIONS[0])


def export_request(*, user: Any, query: str) -> OrderExport:
    """Record the request and queue the task (after commit). Needs `orders.export_orders` and the
    permission to read orders (`require_export`)."""
    require_export(user)
    export = OrderExport.objects.create(requested_by=user, query=query[:2000])
    language = translation.get_language() or settings.LANGUAGE_CODE

    def queue() -> None:
        from .tasks import export_orders

        export_orders.delay(str(export.pk), language)

    transaction.on_commit(queue)
    return export


def _header() -> list[str]:
    return [
        _("number"),
        _("placed at"),
        _("status"),
        _("vendor"),
        _("customer"),
        _("phone"),
        _("zone"),
        _("city"),
        _("channel"),
        _("payment method"),
        _("payment status"),
        _("subtotal (XAF)"),
        _("delivery fee (XAF)"),
        _("total (XAF)"),
    ]


# A text cell a spreadsheet would run as a formula (CSV injection: a customer's name is the
# storefront's to write, and staff open the file in Excel or LibreOffice): it starts with a `'`,
# which shows the text as written. Phones (E.164, `+` then digits) are numbers to them, left as is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _row(order: Any) -> list[Any]:
    return [
        order.number,
        timezone.localtime(order.placed_at).strftime("%Y-%m-%d %H:%M"),
        order.get_status_display(),
        _text(order.vendor.name),
        # The name the order shows, as the list and its name search (shown_customer_name).
        _text(order.shown_customer_name),
        order.customer.phone,
        _text(order.zone.name),
        order.zone.get_city_display(),
        order.get_channel_display(),
        order.get_payment_method_display(),
        order.get_payment_status_display(),
        order.subtotal_xaf,
        order.delivery_fee_xaf,
        order.total_xaf,
    ]


def _changelist_queryset(export: OrderExport) -> Any:
    """The admin's order list for the saved query string, as the user who asked saw it: its
    filters, its search and its order. The order is the list's own (`ChangeList.get_ordering`,
    OrderChangeList's for the number column): the column the user sorted by (`o=`), in its
    direction, or the default newest first (`-placed_at`), then Django's tie-breaker (`-pk`)
    unless the sort is already total (the number is unique). Not re-sorted here: the same ORDER
    BY as the list's page is served by the same indexes (orders_order_placed,
    orders_order_number_sort), read through a server-side cursor (`export_run`)."""
    from django.contrib import admin

    from .models import Order

    model_admin = admin.site._registry[Order]
    request = RequestFactory().get("/admin/orders/order/?" + export.query)
    request.user = export.requested_by
    changelist = model_admin.get_changelist_instance(request)
    return changelist.get_queryset(request).select_related("vendor", "customer", "zone")


def export_lock_name(export_id: Any) -> str:
    """The advisory lock (okada.core.jobs.advisory_lock) one export's runs take in turn."""
    return f"orders.export:{export_id}"


def export_run(*, export_id: str, language: str = "fr") -> OrderExport:
    """Write the CSV (idempotent: a rerun writes it again) and mark the export ready or failed.

    One run of an export at a time: a task delivered twice (or redelivered while its first run
    still writes) would replace the other run's file or mark its export failed. Each run holds
    the export's session advisory lock (`export_lock_name`, on a connection of its own) from start
    to end; a run that finds it held by a live run returns the export untouched (it logs why).
    As for jobs (okada.core.jobs.take_unless_live), a lock held by a run that died is waited
    for, not skipped: PostgreSQL frees it when the dead run's session ends, so the rerun after
    a crash still writes the file, and nothing stays claimed. Each run writes a file of its own
    (`<id>.<random>.part`) and renames it into place only while it still holds the lock, so a
    run that lost its lock never touches what another run wrote."""
    with advisory_lock(export_lock_name(export_id)) as lock:
        try:
            taken, holder, _ = take_unless_live(lock, f"order export {export_id}")
        except Exception as exc:  # the database failed us: say so rather than stay "pending"
            log.exception("order export %s: its lock could not be taken", export_id)
            _mark_failed(export_id, exc, among=(OrderExport.Status.PENDING,))
            raise
        if not taken:
            log.info("order export %s skipped: another run is writing it (%s)", export_id, holder)
            return OrderExport.objects.select_related("requested_by").get(pk=export_id)
        return _export_run_holding(lock, export_id=export_id, language=language)


def _export_run_holding(lock: JobLock, *, export_id: str, language: str) -> OrderExport:
    export = OrderExport.objects.select_related("requested_by").get(pk=export_id)
    if export.status == OrderExport.Status.DONE and export_path(export).exists():
        return export
    OrderExport.objects.filter(pk=export.pk).update(
        status=OrderExport.Status.RUNNING, updated_at=timezone.now()
    )
    partial: Path | None = None
    try:
        path = export_path(export)
        # This run's own file (mkstemp: a new name, mode 0600), never another run's.
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f"{export.pk}.", suffix=".part")
        partial = Path(name)
        with translation.override(language):
            with open(descriptor, "w", newline="", encoding="utf-8-sig") as out:  # BOM: Excel reads UTF-8
                # Asked again as the file is written: a user who lost either permission since gets none.
                require_export(export.requested_by)
                writer = csv.writer(out, delimiter=";")  # the separator French spreadsheets expect
                writer.writerow(_header())
                rows = 0
                # From the read replica when there is one (okada.core.db_router): the export
                # may lag the primary by seconds, and its long read is off the primary.
                orders = _changelist_queryset(export).using(reading_alias())
                for order in orders.iterator(chunk_size=CHUNK):
                    writer.writerow(_row(order))
                    rows += 1
            if not lock.held():  # the session ended (terminated, network cut): another run may write
                raise LockLost(
                    Text(
                        gettext_noop(
                            "The export lost its lock while its file was written (its database "
                            "session ended): ask for it again."
                        )
                    )
                )
            partial.replace(path)
            file_name = f"commandes-{timezone.localtime(export.created_at):%Y%m%d-%H%M}.csv"
    except Exception as exc:
        log.exception("order export %s failed", export.pk)
        if partial is not None:
            partial.unlink(missing_ok=True)
        with advisory_lock(export_lock_name(export.pk)) as again:
            # Only while no other run holds the export: a run that took it since writes its state.
            if lock.held() or _try(again.try_acquire):
                _mark_failed(export.pk, exc, among=(OrderExport.Status.RUNNING,))
        raise
    OrderExport.objects.filter(pk=export.pk).update(
        status=OrderExport.Status.DONE,
        rows=rows,
        file_name=file_name,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def _try(step: Callable[[], bool]) -> bool:
    try:
        return step()
    except DatabaseError:
        log.exception("the database is not answering")
        return False


def _mark_failed(export_id: Any, exc: BaseException, *, among: tuple[str, ...]) -> None:
    """Mark the export failed, if it is still in one of the statuses `among` (a run that finished
    it meanwhile keeps its "done"). Best effort: with the database gone, the log says it all."""
    # A database or disk error (no sentence of ours): its own words are no help to staff.
    said = authored(exc) or Text(
        gettext_noop(
            "The export could not be written (%(error)s): ask for it again. The worker's log has the details."
        ),
        error=type(exc).__name__,
    )
    try:
        OrderExport.objects.filter(pk=export_id, status__in=among).update(
            status=OrderExport.Status.FAILED,
            error=said.stored,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
    except DatabaseError:
        log.exception("order export %s could not be marked failed", export_id)


def exports_prune(*, days: int | None = None) -> int:
    """Delete exports (rows and files) older than OKADA_EXPORT_RETENTION_DAYS."""
    keep = days if days is not None else settings.OKADA_EXPORT_RETENTION_DAYS
    old = list(OrderExport.objects.filter(created_at__lt=timezone.now() - timedelta(days=keep)))
    for export in old:
        export_path(export).unlink(missing_ok=True)
        for partial in export_dir().glob(f"{export.pk}*.part"):  # runs killed mid-write
            partial.unlink(missing_ok=True)
    OrderExport.objects.filter(pk__in=[e.pk for e in old]).delete()
    return len(old)
