"""Orders admin: cancel through the service; open orders are never deleted."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.constants import ERROR

from catalog.models import Stock, StockMovement
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_cancel
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_cancel_action_releases_stock_and_records_the_staff_user(client, admin_user):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    order = OrderFactory(vendor=vendor, items=[(product, 2)])
    client.force_login(admin_user)
    response = client.post(
        "/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [str(order.pk)]}
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert Stock.objects.get(product=product).reserved == 0
    release = StockMovement.objects.get(product=product, kind=StockMovement.Kind.RELEASE)
    assert (release.delta, release.reference) == (-2, order.number)
    event = order.events.get(kind=OrderEvent.Kind.STATUS)
    assert (event.from_status, event.to_status) == (OrderStatus.PENDING, OrderStatus.CANCELLED)
    assert event.actor_user == admin_user
    assert event.data == {"note": "cancelled in admin"}
    assert order.history.latest().history_user == admin_user


def test_an_open_order_cannot_be_deleted_in_admin(client, admin_user):
    order = OrderFactory()
    client.force_login(admin_user)
    assert client.get(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    client.post(
        "/admin/orders/order/",
        {"action": "delete_selected", "_selected_action": [str(order.pk)], "post": "yes"},
    )
    assert Order.objects.filter(pk=order.pk).exists()


def test_a_cancelled_order_can_be_soft_deleted_and_cancel_ignores_deleted_rows(client, admin_user):
    order = order_cancel(order=OrderFactory(), actor=staff_actor())
    client.force_login(admin_user)
    response = client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Order.deleted_objects.filter(pk=order.pk).exists()
    response = client.post(
        "/admin/orders/order/?deleted=deleted",
        {"action": "cancel_orders", "_selected_action": [str(order.pk)]},
    )
    assert response.status_code == 302
    # Not tried at all (a second cancel would be refused and reported as an error), nothing changed.
    assert [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR] == []
    assert Order.deleted_objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert order.events.filter(to_status=OrderStatus.CANCELLED).count() == 1
    assert StockMovement.objects.filter(reference=order.number, kind=StockMovement.Kind.RELEASE).count() == 1
