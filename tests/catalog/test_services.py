"""catalog.services: vendors, products and stock, called directly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Category, Product, Stock, StockMovement, Vendor
from catalog.selectors import stock_audit
from catalog.services import (
    InsufficientStock,
    SkuTaken,
    SlugTaken,
    StockChanged,
    VendorSuspended,
    VersionConflict,
    product_create,
    product_restore,
    product_soft_delete,
    product_update,
    product_upsert_many,
    stock_adjust,
    stock_count,
    vendor_activate,
    vendor_onboard,
    vendor_suspend,
)
from okada.core.actors import Actor
from okada.core.errors import DomainError, InvalidInput, NotAllowed
from okada.core.roles import SUPPORT
from tests.catalog.factories import (
    CategoryFactory,
    ProductFactory,
    UserFactory,
    VendorFactory,
    role_user,
    staff_actor,
    vendor_actor,
)
from tests.orders.factories import OrderFactory

pytestmark = pytest.mark.django_db


def movements(product: Product) -> list[tuple[str, int]]:
    return list(
        StockMovement.objects.filter(product_id=product.pk)
        .order_by("created_at", "kind")
        .values_list("kind", "delta")
    )


def stock_of(product: Product) -> tuple[int, int]:
    stock = Stock.objects.get(product=product)
    return stock.on_hand, stock.reserved


# --- Vendors ------------------------------------------------------------------------------------


def test_vendor_onboard_normalises_the_phone_to_e164_and_starts_pending():
    vendor = vendor_onboard(
        name="Chez Mama Ngo", slug="chez-mama-ngo", phone="6 77 12 34 56", city="douala", actor=staff_actor()
    )
    vendor.refresh_from_db()
    assert vendor.phone == "+237677123456"
    assert vendor.status == Vendor.Status.PENDING


@pytest.mark.parametrize("raw", ["00237 677 12 34 56", "+237 677-12-34-56", "677123456"])
def test_vendor_onboard_accepts_usual_ways_of_writing_a_cameroonian_number(raw):
    vendor = vendor_onboard(name="Shop", slug="shop", phone=raw, city="yaounde", actor=staff_actor())
    assert vendor.phone == "+237677123456"


@pytest.mark.parametrize("raw", ["+33 6 12 34 56 78", "12345", "not a phone"])
def test_vendor_onboard_refuses_a_phone_that_is_not_cameroonian(raw):
    with pytest.raises(InvalidInput) as refused:
        vendor_onboard(name="Shop", slug="shop", phone=raw, city="douala", actor=staff_actor())
    assert refused.value.code == "invalid"
    assert "phone" in refused.value.errors
    assert not Vendor.all_objects.exists()


def test_vendor_onboard_refuses_a_slug_taken_by_a_live_vendor():
    VendorFactory(slug="marche-central")
    with pytest.raises(SlugTaken) as exc:
        vendor_onboard(
            name="Another", slug="marche-central", phone="677000111", city="douala", actor=staff_actor()
        )
    assert exc.value.code == "slug_taken"
    assert "slug" in exc.value.errors
    assert Vendor.objects.filter(slug="marche-central").count() == 1


def test_vendor_onboard_may_reuse_the_slug_of_a_deleted_vendor():
    VendorFactory(slug="marche-central").delete()
    vendor = vendor_onboard(
        name="New", slug="marche-central", phone="677000111", city="douala", actor=staff_actor()
    )
    assert Vendor.objects.get(slug="marche-central") == vendor


@pytest.mark.parametrize("commission", [-1, 10001])
def test_vendor_onboard_refuses_a_commission_outside_0_to_100_percent(commission):
    # Python must give the nice message; the CHECK constraint is only the safety net.
    with pytest.raises(DomainError):
        vendor_onboard(
            name="Shop",
            slug="shop",
            phone="677000111",
            city="douala",
            commission_bps=commission,
            actor=staff_actor(),
        )
    assert not Vendor.all_objects.exists()


@pytest.mark.parametrize("service", [vendor_activate, vendor_suspend])
@pytest.mark.parametrize("role", [Actor.STAFF, Actor.SYSTEM])
def test_staff_and_system_may_change_a_vendors_status(service, role):
    vendor = VendorFactory(status=Vendor.Status.PENDING)
    service(vendor=vendor, actor=Actor(role=role, label="ops"))
    vendor.refresh_from_db()
    expected = Vendor.Status.ACTIVE if service is vendor_activate else Vendor.Status.SUSPENDED
    assert vendor.status == expected


@pytest.mark.parametrize("service", [vendor_activate, vendor_suspend])
@pytest.mark.parametrize("role", [Actor.VENDOR, Actor.STOREFRONT])
def test_vendors_and_the_storefront_may_not_change_a_vendors_status(service, role):
    vendor = VendorFactory(status=Vendor.Status.PENDING)
    before = vendor.history.count()
    with pytest.raises(NotAllowed):
        service(vendor=vendor, actor=Actor(role=role, vendor_id=vendor.pk))
    vendor.refresh_from_db()
    assert vendor.status == Vendor.Status.PENDING
    assert vendor.history.count() == before


def test_a_suspended_vendors_products_are_not_orderable_and_come_back_on_activation():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    other = ProductFactory()
    assert set(Product.objects.orderable()) == {product, other}

    vendor_suspend(vendor=vendor, actor=staff_actor())
    assert list(Product.objects.orderable()) == [other]

    vendor_activate(vendor=vendor, actor=staff_actor())
    assert set(Product.objects.orderable()) == {product, other}


def test_pending_vendors_and_inactive_products_are_not_orderable():
    pending = ProductFactory(vendor=VendorFactory(status=Vendor.Status.PENDING))
    inactive = ProductFactory(is_active=False)
    live = ProductFactory()
    orderable = set(Product.objects.orderable())
    assert live in orderable
    assert pending not in orderable
    assert inactive not in orderable


# --- Products -----------------------------------------------------------------------------------


def test_product_create_makes_the_stock_row_and_records_the_initial_stock_as_a_restock():
    vendor = VendorFactory()
    product = product_create(
        vendor=vendor,
        sku="HUILE-1L",
        name="Huile de palme 1 L",
        price_xaf=1500,
        initial_stock=12,
        actor=staff_actor(),
    )
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved, stock.vendor_id) == (12, 0, vendor.pk)
    movement = StockMovement.objects.get(product_id=product.pk)
    assert (movement.kind, movement.delta, movement.vendor_id) == ("restock", 12, vendor.pk)
    assert product.version == 1


def test_product_create_with_a_negative_initial_stock_creates_nothing():
    with pytest.raises(DomainError):
        ProductFactory(initial_stock=-3)
    assert not Product.all_objects.exists()
    assert not Stock.objects.exists()
    assert not StockMovement.objects.exists()


def test_product_create_without_initial_stock_has_empty_stock_and_no_movement():
    product = ProductFactory(initial_stock=0)
    assert stock_of(product) == (0, 0)
    assert movements(product) == []


def test_product_create_refuses_a_sku_the_vendor_already_uses():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor, sku="RIZ-5KG")
    with pytest.raises(SkuTaken):
        ProductFactory(vendor=vendor, sku="RIZ-5KG", initial_stock=3)
    assert Product.objects.filter(vendor=vendor).count() == 1
    assert Stock.objects.filter(vendor=vendor).count() == 1


def test_two_vendors_may_use_the_same_sku():
    first = ProductFactory(sku="RIZ-5KG")
    second = ProductFactory(sku="RIZ-5KG")
    assert first.vendor_id != second.vendor_id


def test_product_create_refuses_a_non_positive_price_with_a_domain_or_validation_error():
    # Python must give the nice message; the CHECK constraint is only the safety net.
    for price in (0, -100):
        with pytest.raises(DomainError):
            ProductFactory(price_xaf=price)
    assert not Product.all_objects.exists()


def test_product_create_refuses_a_compare_at_price_not_above_the_price():
    with pytest.raises(DomainError):
        ProductFactory(price_xaf=1000, compare_at_price_xaf=1000)
    assert not Product.all_objects.exists()


@pytest.mark.parametrize(
    "data",
    [{"price_xaf": 0}, {"price_xaf": -5}, {"compare_at_price_xaf": 1000}, {"price_xaf": 1500}],
    ids=["zero-price", "negative-price", "compare-at-equal", "price-above-compare-at"],
)
def test_product_update_refuses_bad_prices_with_a_domain_or_validation_error(data):
    product = ProductFactory(price_xaf=1000, compare_at_price_xaf=1200)
    with pytest.raises(DomainError):
        product_update(product=product, data=data, actor=staff_actor())
    product.refresh_from_db()
    assert (product.price_xaf, product.compare_at_price_xaf, product.version) == (1000, 1200, 1)


def test_product_update_changes_fields_and_bumps_the_version():
    category = CategoryFactory()
    product = ProductFactory(price_xaf=1000)
    updated = product_update(
        product=product, data={"price_xaf": 1200, "category": category}, actor=staff_actor()
    )
    updated.refresh_from_db()
    assert (updated.price_xaf, updated.category, updated.version) == (1200, category, 2)


def test_product_update_with_nothing_changed_keeps_the_version():
    product = ProductFactory(price_xaf=1000, name="Sel")
    updated = product_update(product=product, data={"price_xaf": 1000, "name": "Sel"}, actor=staff_actor())
    updated.refresh_from_db()
    assert updated.version == 1
    assert updated.history.count() == 1


def test_product_update_with_the_current_version_succeeds():
    product = ProductFactory()
    product_update(product=product, data={"name": "Sucre"}, expected_version=1, actor=staff_actor())
    updated = product_update(
        product=product, data={"name": "Sucre roux"}, expected_version=2, actor=staff_actor()
    )
    assert updated.version == 3


def test_product_update_with_a_stale_version_raises_version_conflict_and_changes_nothing():
    product = ProductFactory(name="Sucre")
    product_update(product=product, data={"price_xaf": 900}, actor=staff_actor())  # now version 2

    with pytest.raises(VersionConflict) as exc:
        product_update(product=product, data={"name": "Sel"}, expected_version=1, actor=staff_actor())
    assert exc.value.data["current_version"] == 2
    product.refresh_from_db()
    assert (product.name, product.version) == ("Sucre", 2)


@pytest.mark.parametrize("field", ["vendor", "version", "id", "deleted_at", "search_vector", "colour"])
def test_product_update_refuses_fields_that_are_not_editable(field):
    product = ProductFactory()
    with pytest.raises(DomainError) as exc:
        product_update(product=product, data={field: "x", "name": "Nouveau"}, actor=staff_actor())
    assert field in str(exc.value)
    product.refresh_from_db()
    assert product.name != "Nouveau"
    assert product.version == 1


def test_product_update_refuses_a_sku_used_by_another_live_product_of_the_vendor():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor, sku="A")
    product = ProductFactory(vendor=vendor, sku="B")
    with pytest.raises(SkuTaken):
        product_update(product=product, data={"sku": "A"}, actor=staff_actor())
    product.refresh_from_db()
    assert (product.sku, product.version) == ("B", 1)


def test_product_update_may_take_the_sku_of_a_deleted_product():
    vendor = VendorFactory()
    gone = ProductFactory(vendor=vendor, sku="A")
    product_soft_delete(product=gone, actor=staff_actor())
    product = ProductFactory(vendor=vendor, sku="B")
    product_update(product=product, data={"sku": "A"}, actor=staff_actor())
    product.refresh_from_db()
    assert product.sku == "A"


def test_product_create_refuses_a_soft_deleted_category_and_creates_nothing():
    vendor = VendorFactory()
    category = CategoryFactory()  # the caller's copy, loaded before staff delete the category
    Category.objects.get(pk=category.pk).delete()
    with pytest.raises(InvalidInput) as exc:
        ProductFactory(vendor=vendor, category=category, initial_stock=5)
    assert list(exc.value.errors) == ["category"]
    assert not Product.all_objects.filter(vendor=vendor).exists()
    assert not Stock.objects.filter(vendor=vendor).exists()


def test_product_update_refuses_a_soft_deleted_category_and_changes_nothing():
    live = CategoryFactory()
    product = ProductFactory(category=live)
    deleted = CategoryFactory()
    Category.objects.get(pk=deleted.pk).delete()
    with pytest.raises(InvalidInput) as exc:
        product_update(product=product, data={"category": deleted, "name": "Autre"}, actor=staff_actor())
    assert list(exc.value.errors) == ["category"]
    stored = Product.objects.get(pk=product.pk)
    assert (stored.category_id, stored.name, stored.version) == (live.pk, product.name, product.version)


def test_product_soft_delete_hides_the_product_keeps_the_row_and_bumps_the_version():
    product = ProductFactory()
    product_soft_delete(product=product, actor=staff_actor())
    assert not Product.objects.filter(pk=product.pk).exists()
    gone = Product.all_objects.get(pk=product.pk)
    assert gone.deleted_at is not None
    assert gone.version == 2  # offline clients see the deletion as a newer version


def test_a_product_with_orders_can_be_soft_deleted_and_its_order_items_stay():
    product = ProductFactory(initial_stock=5)
    order = OrderFactory(vendor=product.vendor, items=[(product, 2)])
    product_soft_delete(product=product, actor=staff_actor())
    item = order.items.get()
    assert item.product_id == product.pk
    assert Product.all_objects.get(pk=product.pk).is_deleted
    assert stock_of(product) == (5, 2)  # the open order keeps its reservation


def test_product_restore_brings_the_product_back():
    product = ProductFactory()
    product_soft_delete(product=product, actor=staff_actor())
    product_restore(product=product, actor=staff_actor())
    restored = Product.objects.get(pk=product.pk)
    assert restored.deleted_at is None
    assert restored.version == 3


def test_product_restore_is_refused_when_another_live_product_took_the_sku():
    vendor = VendorFactory()
    old = ProductFactory(vendor=vendor, sku="PAIN")
    product_soft_delete(product=old, actor=staff_actor())
    ProductFactory(vendor=vendor, sku="PAIN")

    with pytest.raises(SkuTaken):
        product_restore(product=old, actor=staff_actor())
    assert Product.deleted_objects.filter(pk=old.pk).exists()
    assert Product.objects.filter(vendor=vendor, sku="PAIN").count() == 1


def test_product_soft_delete_and_restore_write_history_with_user_and_reason():
    user = UserFactory(is_staff=True, is_superuser=True)
    actor = Actor(role=Actor.STAFF, user=user)
    product = ProductFactory()
    product_soft_delete(product=product, actor=actor, reason="supplier recall")
    product_restore(product=product, actor=actor, reason="recall lifted")

    rows = list(product.history.order_by("history_date", "history_id"))
    assert [r.history_type for r in rows] == ["+", "~", "~"]
    deleted, restored = rows[1], rows[2]
    assert deleted.deleted_at is not None
    assert (deleted.history_user, deleted.history_change_reason) == (user, "supplier recall")
    assert restored.deleted_at is None
    assert (restored.history_user, restored.history_change_reason) == (user, "recall lifted")


# --- History of vendor and product changes ------------------------------------------------------


def test_vendor_services_write_history_with_the_actors_user_and_a_reason():
    user = UserFactory(is_staff=True, is_superuser=True)
    actor = Actor(role=Actor.STAFF, user=user)
    vendor = vendor_onboard(name="Shop", slug="shop", phone="677000111", city="douala", actor=actor)
    vendor_activate(vendor=vendor, actor=actor)
    vendor_suspend(vendor=vendor, actor=actor, reason="unpaid commission")

    rows = list(vendor.history.order_by("history_date", "history_id"))
    assert [(r.history_type, r.status) for r in rows] == [
        ("+", "pending"),
        ("~", "active"),
        ("~", "suspended"),
    ]
    assert all(r.history_user == user for r in rows)
    assert [r.history_change_reason for r in rows] == [
        "vendor onboarded",
        "vendor activated",
        "unpaid commission",
    ]


def test_product_create_and_update_write_history_with_the_actors_user_and_a_reason():
    user = UserFactory()
    actor = Actor(role=Actor.VENDOR, user=user)
    product = ProductFactory(actor=actor, price_xaf=500)
    product_update(product=product, data={"price_xaf": 600}, actor=actor)

    rows = list(product.history.order_by("history_date", "history_id"))
    assert [(r.history_type, r.price_xaf, r.version) for r in rows] == [("+", 500, 1), ("~", 600, 2)]
    assert all(r.history_user == user for r in rows)
    assert [r.history_change_reason for r in rows] == ["product created", "product updated"]


def test_a_system_actor_writes_history_without_a_user_but_with_a_reason():
    vendor = VendorFactory(status=Vendor.Status.PENDING)
    vendor_activate(vendor=vendor, actor=Actor.system("onboarding"))
    latest = vendor.history.latest()
    assert latest.history_user is None
    assert latest.history_change_reason == "vendor activated [system:onboarding]"


# --- Stock --------------------------------------------------------------------------------------


def test_stock_adjust_changes_on_hand_and_records_the_movement():
    product = ProductFactory(initial_stock=5)
    stock = stock_adjust(
        product=product, delta=-2, reason="broken bottles", reference="NOTE-7", actor=staff_actor()
    )
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert stock.version == 3  # created, initial restock, this adjustment
    last = StockMovement.objects.filter(product_id=product.pk, kind="adjustment").get()
    assert (last.delta, last.reason, last.reference) == (-2, "broken bottles", "NOTE-7")
    assert last.actor.startswith("staff:")
    assert stock_audit() == []


def test_stock_adjust_restock_and_return_add_units():
    product = ProductFactory()
    stock_adjust(product=product, delta=10, kind="restock", reason="delivery", actor=staff_actor())
    stock_adjust(product=product, delta=1, kind="return", reason="client returned it", actor=staff_actor())
    assert stock_of(product) == (11, 0)
    assert movements(product) == [("restock", 10), ("return", 1)]


def test_stock_adjust_cannot_take_on_hand_below_zero():
    product = ProductFactory(initial_stock=2)
    with pytest.raises(InsufficientStock) as exc:
        stock_adjust(product=product, delta=-3, reason="lost", actor=staff_actor())
    assert exc.value.data == {"on_hand": 2, "reserved": 0}
    assert stock_of(product) == (2, 0)
    assert movements(product) == [("restock", 2)]


def test_stock_adjust_cannot_take_on_hand_below_what_orders_reserved():
    product = ProductFactory(initial_stock=5)
    OrderFactory(vendor=product.vendor, items=[(product, 3)])
    with pytest.raises(InsufficientStock) as exc:
        stock_adjust(product=product, delta=-3, reason="theft", actor=staff_actor())
    assert exc.value.data == {"on_hand": 5, "reserved": 3}
    assert stock_of(product) == (5, 3)
    assert StockMovement.objects.filter(product_id=product.pk, kind="adjustment").count() == 0

    stock_adjust(product=product, delta=-2, reason="theft", actor=staff_actor())  # down to reserved: fine
    assert stock_of(product) == (3, 3)
    assert stock_audit() == []


@pytest.mark.parametrize(
    ("delta", "kind"),
    [
        (0, "adjustment"),
        (-1, "restock"),
        (-1, "return"),
        (1, "sale"),
        (1, "reserve"),
        (1, "count"),
        (1, "gift"),
    ],
)
def test_stock_adjust_refuses_zero_deltas_and_kinds_it_does_not_own(delta, kind):
    product = ProductFactory(initial_stock=5)
    with pytest.raises(DomainError):
        stock_adjust(product=product, delta=delta, kind=kind, reason="x", actor=staff_actor())
    assert stock_of(product) == (5, 0)
    assert len(movements(product)) == 1


def test_stock_count_sets_on_hand_and_records_a_count_movement():
    product = ProductFactory(initial_stock=10)
    stock = stock_count(product=product, on_hand=7, expected_on_hand=10, actor=vendor_actor(product.vendor))
    assert (stock.on_hand, stock.reserved) == (7, 0)
    assert movements(product) == [("restock", 10), ("count", -3)]
    assert stock_audit() == []


def test_stock_count_upwards_records_a_positive_count_movement():
    product = ProductFactory(initial_stock=2)
    stock_count(product=product, on_hand=9, expected_on_hand=2, actor=staff_actor(), reason="inventory")
    assert stock_of(product) == (9, 0)
    count = StockMovement.objects.get(product_id=product.pk, kind="count")
    assert (count.delta, count.reason) == (7, "inventory")


def test_stock_count_with_a_wrong_expected_quantity_raises_stock_changed_and_changes_nothing():
    product = ProductFactory(initial_stock=10)
    stock_adjust(product=product, delta=-1, reason="sold at the counter", actor=staff_actor())
    with pytest.raises(StockChanged) as exc:
        stock_count(product=product, on_hand=7, expected_on_hand=10, actor=staff_actor())
    assert exc.value.data == {"on_hand": 9}
    assert stock_of(product) == (9, 0)
    assert StockMovement.objects.filter(product_id=product.pk, kind="count").count() == 0


def test_stock_count_below_the_reserved_units_is_refused():
    product = ProductFactory(initial_stock=10)
    OrderFactory(vendor=product.vendor, items=[(product, 4)])
    with pytest.raises(InsufficientStock):
        stock_count(product=product, on_hand=3, expected_on_hand=10, actor=staff_actor())
    assert stock_of(product) == (10, 4)
    assert StockMovement.objects.filter(product_id=product.pk, kind="count").count() == 0


def test_stock_count_refuses_a_negative_count():
    product = ProductFactory(initial_stock=1)
    with pytest.raises(DomainError):
        stock_count(product=product, on_hand=-1, expected_on_hand=1, actor=staff_actor())
    assert stock_of(product) == (1, 0)


def test_the_stock_of_a_soft_deleted_product_is_neither_adjusted_nor_counted_until_restored():
    """Every path that reaches a deleted product (an offline device's push, a sync conflict
    applied in the admin) meets the same refusal as a deleted order's note: restore it first."""
    from django.utils import translation

    from okada.core.errors import NotFound

    product = ProductFactory(initial_stock=10)
    product_soft_delete(product=product, actor=staff_actor())
    with translation.override("en"), pytest.raises(NotFound, match="restore it before"):
        stock_adjust(product=product, delta=5, reason="livraison", actor=staff_actor())
    with translation.override("en"), pytest.raises(NotFound, match="restore it before"):
        stock_count(product=product, on_hand=3, expected_on_hand=10, actor=staff_actor())
    assert stock_of(product) == (10, 0)
    assert StockMovement.objects.filter(product_id=product.pk).exclude(kind="restock").count() == 0

    product_restore(product=product, actor=staff_actor())
    stock_adjust(product=product, delta=5, reason="livraison", actor=staff_actor())
    assert stock_of(product) == (15, 0)


# --- A suspended vendor -------------------------------------------------------------------------


def _vendor_writes(product: Product, actor: Actor) -> dict[str, Callable[[], object]]:
    """Every catalog and stock write a vendor makes, on `product` (live, 5 on hand) for `actor`."""
    return {
        "create": lambda: product_create(
            vendor=product.vendor, sku="NEW-1", name="Mil", price_xaf=300, actor=actor
        ),
        "update": lambda: product_update(product=product, data={"price_xaf": 1200}, actor=actor),
        "delete": lambda: product_soft_delete(product=product, actor=actor),
        "upsert": lambda: product_upsert_many(
            vendor=product.vendor,
            items=[{"sku": product.sku, "price_xaf": 900}, {"sku": "NEW-2", "name": "Sel", "price_xaf": 100}],
            actor=actor,
            atomic=False,
        ),
        "count": lambda: stock_count(product=product, on_hand=4, expected_on_hand=5, actor=actor),
        "adjust": lambda: stock_adjust(product=product, delta=2, reason="livraison", actor=actor),
    }


def _state(vendor: Vendor) -> tuple[object, ...]:
    return (
        sorted(
            Product.all_objects.filter(vendor=vendor).values_list(
                "id", "sku", "price_xaf", "version", "deleted_at"
            )
        ),
        Product.history.filter(vendor_id=vendor.pk).count(),
        sorted(Stock.objects.filter(vendor=vendor).values_list("product_id", "on_hand", "version")),
        StockMovement.objects.filter(vendor_id=vendor.pk).count(),
    )


@pytest.mark.parametrize("write", ["create", "update", "delete", "upsert", "adjust", "count"])
def test_a_suspended_vendor_acting_for_itself_changes_nothing(write):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    vendor_suspend(vendor=vendor, actor=staff_actor())
    before = _state(vendor)

    with pytest.raises(VendorSuspended) as refused:
        _vendor_writes(product, vendor_actor(vendor))[write]()

    assert (refused.value.code, refused.value.status) == ("vendor_suspended", 403)
    assert str(refused.value) == (
        "This vendor is suspended: changes to its catalog, stock and sync devices are refused until "
        "Okada operations reactivate it."
    )
    assert _state(vendor) == before


def test_a_suspended_vendor_cannot_restore_its_product():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    product_soft_delete(product=product, actor=staff_actor())
    vendor_suspend(vendor=vendor, actor=staff_actor())

    with pytest.raises(VendorSuspended):
        product_restore(product=product, actor=vendor_actor(vendor))

    assert Product.deleted_objects.filter(pk=product.pk).exists()


def test_a_suspended_vendors_bulk_upsert_is_refused_whole_even_per_item():
    # Not one `failed` result per item: the request is refused before any item is looked at.
    vendor = VendorFactory()
    ProductFactory(vendor=vendor, sku="RIZ-1")
    vendor_suspend(vendor=vendor, actor=staff_actor())

    for atomic in (False, True):
        with pytest.raises(VendorSuspended):
            product_upsert_many(
                vendor=vendor,
                items=[{"sku": "RIZ-1", "price_xaf": 900}],
                actor=vendor_actor(vendor),
                atomic=atomic,
            )


@pytest.mark.parametrize("write", ["create", "update", "delete", "upsert", "adjust", "count"])
@pytest.mark.parametrize("role", [Actor.STAFF, Actor.SYSTEM])
def test_staff_and_the_system_still_change_a_suspended_vendors_catalog(write, role):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    vendor_suspend(vendor=vendor, actor=staff_actor())
    actor = staff_actor() if role == Actor.STAFF else Actor.system("test")
    before = _state(vendor)

    _vendor_writes(product, actor)[write]()

    assert _state(vendor) != before
    assert stock_audit() == []


def test_staff_still_restore_a_suspended_vendors_product():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    product_soft_delete(product=product, actor=staff_actor())
    vendor_suspend(vendor=vendor, actor=staff_actor())

    product_restore(product=product, actor=staff_actor())

    assert Product.objects.filter(pk=product.pk).exists()


def test_a_pending_vendor_acting_for_itself_still_builds_its_catalog():
    vendor = VendorFactory(status=Vendor.Status.PENDING)
    product = ProductFactory(vendor=vendor, initial_stock=5)
    before = _state(vendor)

    for name, write in _vendor_writes(product, vendor_actor(vendor)).items():
        if name != "delete":
            write()
    product_soft_delete(product=product, actor=vendor_actor(vendor))
    product_restore(product=product, actor=vendor_actor(vendor))

    assert _state(vendor) != before
    assert Product.objects.filter(vendor=vendor).count() == 3
    assert stock_audit() == []


# --- Vendor details, members, categories; permissions of staff roles ---------------------------


def test_vendor_update_changes_details_never_the_status_and_refuses_a_taken_slug():
    from catalog.services import SlugTaken, vendor_update

    VendorFactory(slug="pris")
    vendor = VendorFactory(slug="libre", status=Vendor.Status.ACTIVE)
    vendor = vendor_update(
        vendor=vendor, data={"name": "Chez Mama", "phone": "6 77 55 44 33"}, actor=staff_actor()
    )
    assert (vendor.name, vendor.phone, vendor.status) == ("Chez Mama", "+237677554433", "active")
    with pytest.raises(InvalidInput):
        vendor_update(vendor=vendor, data={"status": "suspended"}, actor=staff_actor())
    with pytest.raises(SlugTaken):
        vendor_update(vendor=vendor, data={"slug": "pris"}, actor=staff_actor())
    assert Vendor.objects.get(pk=vendor.pk).slug == "libre"


def test_a_vendor_with_live_products_is_not_deleted_and_a_restore_needs_its_slug_free():
    from catalog.services import SlugTaken, product_soft_delete, vendor_restore, vendor_soft_delete
    from okada.core.errors import InUse

    product = ProductFactory()
    vendor = product.vendor
    with pytest.raises(InUse):
        vendor_soft_delete(vendor=vendor, actor=staff_actor())
    product_soft_delete(product=product, actor=staff_actor())
    vendor_soft_delete(vendor=vendor, actor=staff_actor())
    assert Vendor.deleted_objects.filter(pk=vendor.pk).exists()
    VendorFactory(slug=vendor.slug)
    with pytest.raises(SlugTaken):
        vendor_restore(vendor=vendor, actor=staff_actor())


def test_vendor_members_are_added_changed_removed_and_restored_with_history():
    from catalog.models import VendorMember
    from catalog.services import (
        MemberTaken,
        vendor_member_add,
        vendor_member_remove,
        vendor_member_restore,
        vendor_member_update,
    )

    vendor, user = VendorFactory(), UserFactory()
    member = vendor_member_add(vendor=vendor, user=user, role="staff", actor=staff_actor())
    with pytest.raises(MemberTaken):
        vendor_member_add(vendor=vendor, user=user, role="owner", actor=staff_actor())
    member = vendor_member_update(member=member, role="manager", actor=staff_actor())
    vendor_member_remove(member=member, actor=staff_actor())
    assert not VendorMember.objects.filter(pk=member.pk).exists()
    vendor_member_add(vendor=vendor, user=user, role="owner", actor=staff_actor())  # the slot is free
    with pytest.raises(MemberTaken):
        vendor_member_restore(member=member, actor=staff_actor())
    reasons = list(member.history.order_by("history_date").values_list("history_change_reason", flat=True))
    assert reasons == ["vendor member added", "vendor member updated", "vendor member removed"]


def test_categories_refuse_cycles_deleted_parents_and_deleting_while_used():
    from catalog.services import category_create, category_soft_delete, category_update
    from okada.core.errors import InUse

    root = category_create(slug="epicerie", name_fr="Épicerie", name_en="Grocery", actor=staff_actor())
    child = category_create(slug="riz", name_fr="Riz", name_en="Rice", parent=root, actor=staff_actor())
    with pytest.raises(InvalidInput):
        category_update(category=root, data={"parent": child}, actor=staff_actor())
    with pytest.raises(InUse):
        category_soft_delete(category=root, actor=staff_actor())  # it has a live sub-category
    other = category_create(slug="vieux", name_fr="Vieux", name_en="Old", actor=staff_actor())
    category_soft_delete(category=other, actor=staff_actor())
    with pytest.raises(InvalidInput):
        category_create(slug="x", name_fr="X", name_en="X", parent=other, actor=staff_actor())
    with pytest.raises(InvalidInput):
        ProductFactory(category=other)


def test_staff_need_the_permission_of_each_change():
    from catalog.services import stock_adjust, stock_count, vendor_suspend
    from okada.core.errors import NotAllowed
    from okada.core.roles import STOCK, SUPPORT
    from tests.catalog.factories import role_user

    product = ProductFactory(initial_stock=5)
    stock_user = Actor.for_staff_user(role_user(STOCK))
    stock_adjust(product=product, delta=2, reason="livraison", actor=stock_user)
    stock_count(product=product, on_hand=6, expected_on_hand=7, actor=stock_user)
    with pytest.raises(NotAllowed):
        vendor_suspend(vendor=product.vendor, actor=stock_user)
    with pytest.raises(NotAllowed):
        product_soft_delete(product=product, actor=stock_user)
    support = Actor.for_staff_user(role_user(SUPPORT))
    with pytest.raises(NotAllowed):
        stock_adjust(product=product, delta=1, reason="x", actor=support)
    assert Stock.objects.get(product=product).on_hand == 6


def test_the_unchanged_items_of_a_bulk_upsert_cost_no_query_each():
    # A catalog sent again (an integration's nightly run): each unchanged item once took a
    # savepoint, a row lock and the update's reads; now the request's first read settles them.
    vendor = VendorFactory()
    category = CategoryFactory()
    products = [ProductFactory(vendor=vendor, sku=f"RIZ-{i:02d}", category=category) for i in range(20)]
    versions = {p.pk: p.version for p in products}

    def upsert(items: list[dict[str, object]]) -> list[str]:
        results = product_upsert_many(vendor=vendor, items=items, actor=vendor_actor(vendor), atomic=False)
        return [r.status for r in results]

    def sent(count: int) -> list[dict[str, object]]:
        return [
            {"sku": p.sku, "name": p.name, "price_xaf": p.price_xaf, "category": category, "is_active": True}
            for p in products[:count]
        ]

    with CaptureQueriesContext(connection) as one:
        assert upsert(sent(1)) == ["unchanged"]
    with CaptureQueriesContext(connection) as twenty:
        assert upsert(sent(20)) == ["unchanged"] * 20
    assert len(twenty) == len(one)
    assert {p.pk: p.version for p in Product.objects.filter(vendor=vendor)} == versions

    # Among them, a changed item is still updated (and only it), and another category is a change.
    items = sent(20)
    items[3] = {**items[3], "price_xaf": products[3].price_xaf + 1}
    other = CategoryFactory()
    items[7] = {**items[7], "category": other}
    assert (
        upsert(items)
        == ["unchanged"] * 3 + ["updated"] + ["unchanged"] * 3 + ["updated"] + ["unchanged"] * 12
    )
    assert Product.objects.get(pk=products[3].pk).price_xaf == products[3].price_xaf + 1
    assert Product.objects.get(pk=products[7].pk).category_id == other.pk


def test_an_unchanged_bulk_item_still_needs_the_staff_members_right_to_change_products():
    # Answered without a write, it is still a change request: the permission is asked as before.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, sku="RIZ-1")
    reader = Actor.for_staff_user(role_user(SUPPORT))
    assert not reader.can("catalog.change_product")
    [result] = product_upsert_many(
        vendor=vendor,
        items=[{"sku": "RIZ-1", "price_xaf": product.price_xaf}],
        actor=reader,
        atomic=False,
    )
    assert (result.status, result.error.code if result.error else None) == ("failed", "not_allowed")
