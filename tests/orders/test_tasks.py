"""orders.tasks: the expiry job and the invariant audit run directly, and their beat schedules."""

from __future__ import annotations

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask

from catalog.models import Stock
from okada.core.jobs import JobFailed
from okada.core.models import JobRun
from okada.core.texts import english
from orders.audit import CHECKS
from orders.models import Order, OrderStatus, PaymentMethod
from orders.tasks import audit_invariants, expire_unpaid_orders
from tests.catalog.factories import ProductFactory
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_expire_unpaid_orders_task_expires_due_orders_and_logs_a_job_run(settings):
    settings.OKADA_MOBILE_MONEY_DEADLINE_MINUTES = -1  # placed already past their deadline
    product = ProductFactory(initial_stock=10)
    due = [
        OrderFactory(vendor=product.vendor, items=[(product, 1)], payment_method=method)
        for method in (PaymentMethod.MTN_MOMO, PaymentMethod.ORANGE_MONEY)
    ]
    cash = OrderFactory(vendor=product.vendor, items=[(product, 1)], payment_method=PaymentMethod.CASH)

    expire_unpaid_orders()

    run = JobRun.objects.get(name="orders.expire_unpaid_orders")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == {"expired": 2}
    assert run.finished_at is not None
    assert {Order.objects.get(pk=o.pk).status for o in due} == {OrderStatus.EXPIRED}
    assert Order.objects.get(pk=cash.pk).status == OrderStatus.PENDING
    assert Stock.objects.get(product=product).reserved == 1

    expire_unpaid_orders()  # idempotent: nothing left to expire
    summaries = list(
        JobRun.objects.filter(name="orders.expire_unpaid_orders")
        .order_by("started_at")
        .values_list("summary", flat=True)
    )
    assert summaries == [{"expired": 2}, {"expired": 0}]


def test_the_expiry_job_is_scheduled_every_five_minutes():
    from okada.celery import app

    entry = PeriodicTask.objects.select_related("crontab").get(name="Expire unpaid mobile-money orders")
    assert entry.task == "orders.expire_unpaid_orders"
    assert entry.enabled
    assert entry.crontab is not None
    assert entry.crontab.minute == "*/5"
    assert (entry.crontab.hour, entry.crontab.day_of_week) == ("*", "*")
    app.loader.import_default_modules()
    assert entry.task in app.tasks


def test_the_audit_job_on_consistent_data_records_a_successful_run():
    OrderFactory(payment_method=PaymentMethod.MTN_MOMO)

    audit_invariants()

    run = JobRun.objects.get(name="orders.audit_invariants")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary == {"findings": 0, "checks": dict.fromkeys(CHECKS, 0), "samples": {}}


def test_the_audit_job_fails_its_run_on_any_finding_with_the_findings_in_its_summary(caplog):
    order = OrderFactory()
    with connection.cursor() as cursor:  # the ledger says 10
        cursor.execute(
            "UPDATE catalog_stock SET on_hand = 7 WHERE product_id = %s", [order.items.get().product_id]
        )

    with pytest.raises(JobFailed):
        audit_invariants()

    run = JobRun.objects.get(name="orders.audit_invariants")
    assert run.outcome == JobRun.Outcome.FAILED
    assert english(run.error) == "invariant audit: 1 finding in stock_vs_ledger"
    summary = run.summary
    assert summary is not None
    assert summary["findings"] == 1
    assert summary["checks"] == dict.fromkeys(CHECKS, 0) | {"stock_vs_ledger": 1}
    [mismatch] = summary["samples"]["stock_vs_ledger"]
    assert (mismatch["on_hand"], mismatch["ledger_on_hand"]) == (7, 10)
    errors = {r.name for r in caplog.records if r.levelname == "ERROR"}
    assert errors == {"orders.audit", "okada.core.jobs"}


def test_the_audit_job_is_scheduled_nightly_at_three():
    from okada.celery import app

    entry = PeriodicTask.objects.select_related("crontab").get(name="Nightly invariant audit")
    assert entry.task == "orders.audit_invariants"
    assert entry.enabled
    assert entry.crontab is not None
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("0", "3", "*")
    assert str(entry.crontab.timezone) == "Africa/Douala"
    app.loader.import_default_modules()
    assert entry.task in app.tasks


def test_the_export_pruning_job_deletes_exports_past_the_retention_and_runs_daily(settings):
    """README: order exports are deleted after OKADA_EXPORT_RETENTION_DAYS by the daily job
    `orders.prune_exports` (a JobRun like every job; its service had a test, the job none)."""
    from datetime import timedelta

    from django.utils import timezone

    from okada.celery import app
    from orders.models import OrderExport
    from orders.tasks import prune_exports
    from tests.catalog.factories import UserFactory

    settings.OKADA_EXPORT_RETENTION_DAYS = 7
    user = UserFactory(is_staff=True)
    old, recent = (OrderExport.objects.create(requested_by=user, query="") for _ in range(2))
    OrderExport.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))

    prune_exports()

    assert list(OrderExport.objects.values_list("pk", flat=True)) == [recent.pk]
    run = JobRun.objects.get(name="orders.prune_exports")
    assert run.outcome == JobRun.Outcome.SUCCESS and run.summary == {"deleted": 1}
    entry = PeriodicTask.objects.select_related("crontab").get(name="Prune order exports")
    assert entry.task == "orders.prune_exports" and entry.enabled
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("30", "4", "*")
    assert str(entry.crontab.timezone) == "Africa/Douala"
    app.loader.import_default_modules()
    assert entry.task in app.tasks
