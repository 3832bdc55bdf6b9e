"""Catalog writes racing each other on real concurrent connections (threads, no mocks)."""

from __future__ import annotations

import threading
import time
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
    raise AssertionError("the category's delete never waited for the product being created")


def test_a_category_deleted_while_a_product_is_created_in_it_is_refused_as_in_use():
    vendor, category = VendorFactory(), CategoryFactory()
    created, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def create() -> None:
        try:
            with transaction.atomic():
                results["product"] = product_create(
                    vendor=vendor, sku="NEW-1", name="Nouveau", price_xaf=500, category=category, actor=STAFF
                )
                created.set()
                release.wait(WAIT)  # the product is not committed yet
        except Exception as exc:  # reported to the test
            results["product"] = exc
        finally:
            created.set()
            connections.close_all()

    def delete() -> None:
        try:
            results["delete"] = category_soft_delete(category=category, actor=STAFF)
        except Exception as exc:  # reported to the test
            results["delete"] = exc
        finally:
            connections.close_all()

    creator, deleter = threading.Thread(target=create), threading.Thread(target=delete)
    creator.start()
    assert created.wait(WAIT)
    deleter.start()
    try:
        wait_until_a_lock_is_awaited()
    finally:
        release.set()
        creator.join(WAIT)
        deleter.join(WAIT)

    assert isinstance(results["product"], Product), results
    assert isinstance(results["delete"], InUse), results
    assert Category.objects.filter(pk=category.pk).exists()
    assert Product.objects.get(sku="NEW-1").category_id == category.pk


def test_a_product_deleted_while_an_update_waits_for_its_lock_is_not_found():
    # The update has read the product; a delete holds its row lock and commits; the update's
    # re-read under the lock no longer sees a live row: a clear 404, not DoesNotExist (a 500).
    product = ProductFactory(price_xaf=1000)
    deleting, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def delete() -> None:
        try:
            with transaction.atomic():
                results["delete"] = product_soft_delete(product=product, actor=STAFF)
                deleting.set()
                release.wait(WAIT)  # the delete holds the row lock, not committed yet
        except Exception as exc:  # reported to the test
            results["delete"] = exc
        finally:
            deleting.set()
            connections.close_all()

    def update() -> None:
        try:
            with translation.override("en"):
                results["update"] = product_update(product=product, data={"price_xaf": 1200}, actor=STAFF)
        except Exception as exc:  # reported to the test
            results["update"] = exc
        finally:
            connections.close_all()

    deleter, updater = threading.Thread(target=delete), threading.Thread(target=update)
    deleter.start()
    assert deleting.wait(WAIT)
    updater.start()
    try:
        wait_until_a_lock_is_awaited()
    finally:
        release.set()
        deleter.join(WAIT)
        updater.join(WAIT)

    assert isinstance(results["delete"], Product), results
    error = results["update"]
    assert isinstance(error, NotFound), results
    assert (error.code, error.status) == ("not_found", 404)
    assert str(error) == "Product no longer exists: it was deleted meanwhile."
    assert Product.all_objects.get(pk=product.pk).price_xaf == 1000
