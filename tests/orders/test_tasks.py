"""orders.tasks: the expiry job run directly, and its beat schedule."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from catalog.models import Stock
from okada.core.models import JobRun
from orders.models import Order, OrderStatus, PaymentMethod
from orders.tasks import expire_unpaid_orders
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
