"""Catalog admin: writes go through the services, errors are shown, never a 500."""

from __future__ import annotations

import pytest

from catalog.models import Product, Stock, Vendor
from catalog.services import product_soft_delete
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor

pytestmark = pytest.mark.django_db


def product_form(vendor: Vendor, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "vendor": str(vendor.pk),
        "sku": "PLT-1",
        "name": "Plantain mûr",
        "description": "",
        "price_xaf": "1500",
        "compare_at_price_xaf": "",
        "unit": "bunch",
        "is_active": "on",
        "attributes": "{}",
        "category": "",
    }
    data.update(overrides)
    return data


def test_adding_a_product_in_admin_creates_its_stock_row_and_history_with_user_and_reason(client, admin_user):
    vendor = VendorFactory()
    client.force_login(admin_user)
    response = client.post("/admin/catalog/product/add/", product_form(vendor))
    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(vendor=vendor, sku="PLT-1")
    assert Stock.objects.filter(product=product, on_hand=0, reserved=0).exists()
    history = product.history.latest()
    assert (history.history_user, history.history_change_reason) == (admin_user, "product created")


def test_editing_a_product_in_admin_bumps_its_version(client, admin_user):
    product = ProductFactory(sku="PLT-1", name="Plantain", price_xaf=1000)
    client.force_login(admin_user)
    response = client.post(
        f"/admin/catalog/product/{product.pk}/change/", product_form(product.vendor, price_xaf="1200")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    product.refresh_from_db()
    assert (product.price_xaf, product.version) == (1200, 2)
    assert product.history.latest().history_user == admin_user


def test_admin_refuses_a_zero_price_on_the_form_and_saves_nothing(client, admin_user):
    vendor = VendorFactory()
    client.force_login(admin_user)
    response = client.post("/admin/catalog/product/add/", product_form(vendor, price_xaf="0"))
    assert response.status_code == 200  # the form again, with the error
    assert "errorlist" in response.content.decode()
    assert not Product.all_objects.filter(vendor=vendor).exists()


def test_restoring_a_product_whose_sku_was_taken_reports_an_error_instead_of_failing(client, admin_user):
    old = ProductFactory(sku="DUP")
    product_soft_delete(product=old, actor=staff_actor())
    ProductFactory(vendor=old.vendor, sku="DUP")
    client.force_login(admin_user)
    response = client.post(
        "/admin/catalog/product/?deleted=deleted",
        {"action": "restore_selected", "_selected_action": [str(old.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "DUP" in response.content.decode()
    assert Product.deleted_objects.filter(pk=old.pk).exists()


def test_vendor_suspend_action_goes_through_the_service(client, admin_user):
    vendor = VendorFactory()
    client.force_login(admin_user)
    response = client.post(
        "/admin/catalog/vendor/", {"action": "suspend", "_selected_action": [str(vendor.pk)]}
    )
    assert response.status_code == 302
    vendor.refresh_from_db()
    assert vendor.status == Vendor.Status.SUSPENDED
    assert vendor.history.latest().history_user == admin_user
