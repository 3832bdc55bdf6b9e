from celery import shared_task

from okada.core.jobs import job


@shared_task(name="orders.expire_unpaid_orders", acks_late=True)
def expire_unpaid_orders() -> None:
    from .services import order_expire_unpaid

    with job("orders.expire_unpaid_orders") as run:
        run.summary = {"expired": order_expire_unpaid()}
