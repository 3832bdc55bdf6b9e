"""Catalog writes racing each other on real concurrent connections (threads, no mocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import translation

from catalog.models import Category, Product
from catalog.services import category_soft_delete, product_create, product_soft_delete, product_update
from okada.core.actors import Actor
from okada.core.errors import InUse, NotFound
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds: a deadline, never a sleep that hopes
STAFF = Actor(role=Actor.STAFF, label="ops")


def wait_until_a_lock_is_awaited() -> None:
    """Poll pg_locks until some backend waits for a lock (the delete, behind the product)."""
    deadline = time.monotonic() + WAIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)  # a polling interval, bounded by the deadline
    raise AssertionError("the second write never waited for the first one's lock")


def race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """`first` in a transaction held open until `second`, on another connection, waits for a
    lock it holds; then `first` commits. Each one's result, or the exception it raised."""
    holding, release = threading.Event(), threading.Event()
    results: list[Any] = [None, None]

    def hold() -> None:
        try:
            with transaction.atomic():
                results[0] = first()
                holding.set()
                release.wait(WAIT)  # not committed yet: its locks are held
        except Exception as exc:  # reported to the test
            results[0] = exc
        finally:
            holding.set()
            connections.close_all()

    def wait() -> None:
        try:
            results[1] = second()
        except Exception as exc:  # reported to the test
            results[1] = exc
        finally:
            connections.close_all()

    holder, waiter = threading.Thread(target=hold), threading.Thread(target=wait)
    holder.start()
    assert holding.wait(WAIT)
    waiter.start()
    try:
        wait_until_a_lock_is_awaited()
    finally:
        release.set()
        holder.join(WAIT)
        waiter.join(WAIT)
    return results[0], results[1]


def test_a_category_deleted_while_a_product_is_created_in_it_is_refused_as_in_use():
    vendor, category = VendorFactory(), CategoryFactory()

    product, delete = race(
        lambda: product_create(
            vendor=vendor, sku="NEW-1", name="Nouveau", price_xaf=500, category=category, actor=STAFF
        ),
        lambda: category_soft_delete(category=category, actor=STAFF),
    )

    assert isinstance(product, Product), (product, delete)
    assert isinstance(delete, InUse), (product, delete)
    assert Category.objects.filter(pk=category.pk).exists()
    assert Product.objects.get(sku="NEW-1").category_id == category.pk


def test_a_product_deleted_while_an_update_waits_for_its_lock_is_not_found():
    # The update has read the product; a delete holds its row lock and commits; the update's
    # re-read under the lock no longer sees a live row: a clear 404, not DoesNotExist (a 500).
    product = ProductFactory(price_xaf=1000)

    def update() -> Product:
        with translation.override("en"):
            return product_update(product=product, data={"price_xaf": 1200}, actor=STAFF)

    deleted, error = race(lambda: product_soft_delete(product=product, actor=STAFF), update)

    assert isinstance(deleted, Product), (deleted, error)
    assert isinstance(error, NotFound), (deleted, error)
    assert (error.code, error.status) == ("not_found", 404)
    assert str(error) == "Product no longer exists: it was deleted meanwhile."
    assert Product.all_objects.get(pk=product.pk).price_xaf == 1000
