"""Catalog writes racing each other on real concurrent connections (threads, no mocks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import translation

from catalog.models import Category, Product, Stock, StockMovement, Vendor, VendorMember
from catalog.services import (
    UpsertResult,
    VendorSuspended,
    category_create,
    category_restore,
    category_soft_delete,
    category_update,
    product_create,
    product_restore,
    product_soft_delete,
    product_update,
    product_upsert_many,
    stock_adjust,
    stock_count,
    vendor_member_add,
    vendor_member_remove,
    vendor_member_restore,
    vendor_soft_delete,
    vendor_suspend,
)
from okada.core.actors import Actor
from okada.core.errors import InUse, InvalidInput, NotFound
from okada.core.services import tracked_hard_delete
from tests.catalog.factories import CategoryFactory, ProductFactory, UserFactory, VendorFactory
from tests.concurrency import race, run_together

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(role=Actor.STAFF, label="ops")


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


def test_a_count_of_a_product_deleted_for_good_while_it_waits_is_not_found():
    product = ProductFactory(initial_stock=5)

    deleted, counted = race(
        # its own copy: a deleted instance loses its pk, which the other thread still reads
        lambda: tracked_hard_delete(obj=Product.objects.get(pk=product.pk), actor=Actor.system("test")),
        lambda: stock_count(product=product, on_hand=4, expected_on_hand=5, actor=STAFF),
    )

    assert deleted is None, (deleted, counted)
    assert isinstance(counted, NotFound), (deleted, counted)
    assert not Product.all_objects.filter(pk=product.pk).exists()


def test_an_adjustment_of_a_product_deleted_for_good_while_it_waits_is_not_found():
    product = ProductFactory(initial_stock=5)

    deleted, adjusted = race(
        # its own copy: a deleted instance loses its pk, which the other thread still reads
        lambda: tracked_hard_delete(obj=Product.objects.get(pk=product.pk), actor=Actor.system("test")),
        lambda: stock_adjust(product=product, delta=-1, reason="casse", actor=STAFF),
    )

    assert deleted is None, (deleted, adjusted)
    assert isinstance(adjusted, NotFound), (deleted, adjusted)
    assert not StockMovement.objects.filter(product_id=product.pk, kind="adjustment").exists()


def test_two_staff_saving_one_product_form_at_the_same_instant_one_is_refused():
    # Both opened the form at the same time; the first save holds the row's lock, the second
    # waits for it, then finds the row changed since it was opened: refused, nothing of its saved.
    from django.test import Client

    from tests.catalog.factories import UserFactory
    from tests.catalog.test_admin import loaded_at, product_form

    product = ProductFactory(sku="PLT-1", name="Plantain", price_xaf=1000)
    url = f"/admin/catalog/product/{product.pk}/change/"
    first, second = Client(), Client()
    for staff in (first, second):
        staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    opened = loaded_at(first.get(url).content.decode())

    def save(client: Client, name: str) -> int:
        return client.post(
            url, {**product_form(product.vendor, name=name), "_okada_loaded_at": opened}
        ).status_code

    saved, refused = race(lambda: save(first, "Plantain mûr"), lambda: save(second, "Plantain vert"))

    assert (saved, refused) == (302, 200)
    product.refresh_from_db()
    assert (product.name, product.version) == ("Plantain mûr", 2)


def test_two_bulk_upserts_of_the_same_skus_in_opposite_orders_all_apply_without_deadlock():
    # A vendor's integration and its vendor app send overlapping batches, in their own orders:
    # half the SKUs exist (updates lock their rows), half are new (inserts wait on the unique
    # index). Taken in the request's order the two cross and deadlock (a 500); every item must
    # apply, and a SKU the other request created meanwhile is updated, not refused.
    vendor = VendorFactory()
    skus = [f"BULK-{i:03d}" for i in range(80)]
    for sku in skus[:40]:
        ProductFactory(vendor=vendor, sku=sku, price_xaf=1000)
    actor = Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="integration")

    def upsert(order: list[str], price: int) -> list[UpsertResult]:
        items = [{"sku": sku, "name": f"Produit {sku}", "price_xaf": price} for sku in order]
        return product_upsert_many(vendor=vendor, items=items, actor=actor, atomic=False)

    results = run_together([lambda: upsert(skus, 1100), lambda: upsert(skus[::-1], 1200)], workers=2)

    assert all(isinstance(r, list) for r in results), results
    for batch in results:
        assert [r.error for r in batch if r.status == "failed"] == []
    assert [r.sku for r in results[1]] == skus[::-1]  # the answer keeps the request's order
    assert Product.objects.filter(vendor=vendor).count() == 80
    assert len(set(Product.objects.filter(vendor=vendor).values_list("price_xaf", flat=True))) == 1


def test_a_vendor_deleted_while_a_product_is_created_for_it_is_refused_as_in_use():
    # The create has read the vendor live and written its product, not yet committed; the delete
    # must wait for it and then find the product, not leave a live product of a deleted vendor.
    vendor = VendorFactory()

    product, delete = race(
        lambda: product_create(vendor=vendor, sku="NEW-1", name="Nouveau", price_xaf=500, actor=STAFF),
        lambda: vendor_soft_delete(vendor=vendor, actor=STAFF),
    )

    assert isinstance(product, Product), (product, delete)
    assert isinstance(delete, InUse), (product, delete)
    assert Vendor.objects.filter(pk=vendor.pk).exists()


def test_a_product_created_for_a_vendor_being_deleted_is_refused():
    vendor = VendorFactory()

    delete, product = race(
        lambda: vendor_soft_delete(vendor=vendor, actor=STAFF),
        lambda: product_create(vendor=vendor, sku="NEW-1", name="Nouveau", price_xaf=500, actor=STAFF),
    )

    assert isinstance(delete, Vendor), (delete, product)
    assert isinstance(product, InvalidInput), (delete, product)
    assert not Product.all_objects.filter(vendor=vendor).exists()


def test_two_categories_moved_under_each_other_at_once_never_make_a_cycle():
    # Two staff reorganising the tree: one puts Fruits under Légumes, the other Légumes under
    # Fruits. Each move alone is fine; both together would make a loop with no root.
    fruits, vegetables = CategoryFactory(), CategoryFactory()

    moved, refused = race(
        lambda: category_update(category=fruits, data={"parent": vegetables}, actor=STAFF),
        lambda: category_update(category=vegetables, data={"parent": fruits}, actor=STAFF),
    )

    assert isinstance(moved, Category), (moved, refused)
    assert isinstance(refused, InvalidInput), (moved, refused)
    assert (refused.code, list(refused.errors)) == ("invalid", ["parent"])
    parents = dict(Category.objects.values_list("pk", "parent_id"))
    assert (parents[fruits.pk], parents[vegetables.pk]) == (vegetables.pk, None)


def test_a_move_under_its_own_child_is_refused_without_waiting_for_an_edit_of_the_child():
    # The cycle is found before the new parent is locked: waiting for the child (held by an edit
    # of it that will want this category as its parent) could only end in a deadlock.
    fruits = CategoryFactory()
    citrus = CategoryFactory(parent=fruits)

    edited, (moved, citrus_position_seen) = race(
        lambda: Category.objects.filter(pk=citrus.pk).update(position=7),
        lambda: (
            _refusal(lambda: category_update(category=fruits, data={"parent": citrus}, actor=STAFF)),
            Category.objects.get(pk=citrus.pk).position,
        ),
    )

    assert edited == 1
    assert isinstance(moved, InvalidInput) and citrus_position_seen == 0, (moved, citrus_position_seen)
    assert Category.objects.get(pk=fruits.pk).parent_id is None


def test_a_category_saved_in_the_admin_waits_for_the_tree_before_it_locks_its_row():
    # A save locks its row (the form's check that no one saved it since it was opened), then
    # category_update takes the tree's lock. Staff saving Fruits and staff saving Agrumes (its
    # child: the tree held, its parent share-locked) at the same instant each waited for the
    # other, and PostgreSQL failed one of them (a 500). Now a save waits for the tree first,
    # holding no row meanwhile: here, while another move holds the tree, Fruits' row stays free.
    from django.db import OperationalError, transaction
    from django.test import Client

    from catalog.services import category_tree_lock
    from tests.catalog.test_admin import loaded_at
    from tests.concurrency import a_lock_is_awaited, in_thread, poll

    fruits = CategoryFactory(slug="fruits", name_fr="Fruits", name_en="Fruit")
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/catalog/category/{fruits.pk}/change/"
    form = {
        "slug": "fruits",
        "name_fr": "Fruits frais",
        "name_en": "Fresh fruit",
        "parent": "",
        "position": "0",
        "_okada_loaded_at": loaded_at(staff.get(url).content.decode()),
    }
    answers: list[int] = []

    with transaction.atomic():
        category_tree_lock()  # another move in progress
        saver, errors = in_thread(lambda: answers.append(staff.post(url, form).status_code))
        poll(lambda: a_lock_is_awaited() or not saver.is_alive(), "the save to wait for the tree")
        try:
            with transaction.atomic():
                Category.objects.select_for_update(nowait=True).get(pk=fruits.pk)
            row_free = True
        except OperationalError:
            row_free = False
    saver.join(30)

    assert not saver.is_alive() and errors == [], errors
    assert row_free, "the save held the category's row while it waited for the tree"
    assert answers == [302]
    assert Category.objects.get(pk=fruits.pk).name_fr == "Fruits frais"


def _refusal(call):
    try:
        return call()
    except Exception as exc:
        return exc


def test_a_category_deleted_while_a_sub_category_is_created_in_it_is_refused_as_in_use():
    parent = CategoryFactory()

    child, delete = race(
        lambda: category_create(
            slug="mangues", name_fr="Mangues", name_en="Mangoes", parent=parent, actor=STAFF
        ),
        lambda: category_soft_delete(category=parent, actor=STAFF),
    )

    assert isinstance(child, Category), (child, delete)
    assert isinstance(delete, InUse), (child, delete)
    assert Category.objects.filter(pk=parent.pk).exists()


def test_a_member_added_to_a_vendor_being_deleted_is_refused():
    # The add has read the vendor live; the delete (which soft-deletes the vendor's members with
    # it) commits meanwhile: the new member must not stay live under the deleted vendor.
    vendor, user = VendorFactory(), UserFactory()

    delete, member = race(
        lambda: vendor_soft_delete(vendor=vendor, actor=STAFF),
        lambda: vendor_member_add(vendor=vendor, user=user, role="staff", actor=STAFF),
    )

    assert isinstance(delete, Vendor), (delete, member)
    assert isinstance(member, InvalidInput), (delete, member)
    assert list(member.errors) == ["vendor"]
    assert not VendorMember.all_objects.filter(vendor=vendor).exists()


def test_a_vendor_deleted_while_a_member_is_added_takes_the_member_with_it():
    vendor, user = VendorFactory(), UserFactory()

    member, delete = race(
        lambda: vendor_member_add(vendor=vendor, user=user, role="staff", actor=STAFF),
        lambda: vendor_soft_delete(vendor=vendor, actor=STAFF),
    )

    assert isinstance(member, VendorMember), (member, delete)
    assert isinstance(delete, Vendor), (member, delete)
    assert not VendorMember.objects.filter(vendor_id=vendor.pk).exists()
    assert VendorMember.deleted_objects.get(pk=member.pk).deleted_by_cascade


def test_a_member_restored_while_its_vendor_is_being_deleted_is_refused():
    vendor, user = VendorFactory(), UserFactory()
    member = vendor_member_add(vendor=vendor, user=user, role="staff", actor=STAFF)
    vendor_member_remove(member=member, actor=STAFF)

    delete, restored = race(
        lambda: vendor_soft_delete(vendor=vendor, actor=STAFF),
        lambda: vendor_member_restore(member=member, actor=STAFF),
    )

    assert isinstance(delete, Vendor), (delete, restored)
    assert isinstance(restored, InvalidInput), (delete, restored)
    assert not VendorMember.objects.filter(vendor_id=vendor.pk).exists()


def deleted_child_of(parent: Category) -> Category:
    child = category_create(slug="mangues", name_fr="Mangues", name_en="Mangoes", parent=parent, actor=STAFF)
    return category_soft_delete(category=child, actor=STAFF)


def test_a_category_restored_while_its_parent_is_being_deleted_is_refused():
    # The restore has seen the parent live; the parent's delete (which found no live
    # sub-category) commits meanwhile: the child must stay deleted, not come back under it.
    parent = CategoryFactory()
    child = deleted_child_of(parent)

    deleted, restored = race(
        lambda: category_soft_delete(category=parent, actor=STAFF),
        lambda: category_restore(category=child, actor=STAFF),
    )

    assert isinstance(deleted, Category), (deleted, restored)
    assert isinstance(restored, InvalidInput), (deleted, restored)
    assert list(restored.errors) == ["parent"]
    assert Category.deleted_objects.filter(pk=child.pk).exists()


def test_a_category_deleted_while_a_sub_category_is_restored_in_it_is_refused_as_in_use():
    parent = CategoryFactory()
    child = deleted_child_of(parent)

    restored, deleted = race(
        lambda: category_restore(category=child, actor=STAFF),
        lambda: category_soft_delete(category=parent, actor=STAFF),
    )

    assert isinstance(restored, Category), (restored, deleted)
    assert isinstance(deleted, InUse), (restored, deleted)
    assert Category.objects.filter(pk__in=[parent.pk, child.pk]).count() == 2


def deleted_product_in(category: Category) -> Product:
    product = ProductFactory(category=category)
    return product_soft_delete(product=product, actor=STAFF)


def test_a_product_restored_while_its_category_is_being_deleted_is_refused():
    # The category's delete found no live product in it (this one was deleted) and commits while
    # the restore runs: the product must stay deleted, not come back live in a deleted category.
    category = CategoryFactory()
    product = deleted_product_in(category)

    deleted, restored = race(
        lambda: category_soft_delete(category=category, actor=STAFF),
        lambda: product_restore(product=product, actor=STAFF),
    )

    assert isinstance(deleted, Category), (deleted, restored)
    assert isinstance(restored, InvalidInput), (deleted, restored)
    assert list(restored.errors) == ["category"]
    assert Product.deleted_objects.filter(pk=product.pk).exists()


def test_a_category_deleted_while_a_product_is_restored_in_it_is_refused_as_in_use():
    category = CategoryFactory()
    product = deleted_product_in(category)

    restored, deleted = race(
        lambda: product_restore(product=product, actor=STAFF),
        lambda: category_soft_delete(category=category, actor=STAFF),
    )

    assert isinstance(restored, Product), (restored, deleted)
    assert isinstance(deleted, InUse), (restored, deleted)
    assert Category.objects.filter(pk=category.pk).exists()
    assert Product.objects.get(pk=product.pk).category_id == category.pk


# --- A vendor suspended while its own credentials write -----------------------------------------


def vendor_writes(product: Product, actor: Actor) -> dict[str, Callable[[], object]]:
    """A vendor's catalog and stock writes on `product` (live, 5 on hand)."""
    vendor = product.vendor
    return {
        "create": lambda: product_create(vendor=vendor, sku="NEW-1", name="Mil", price_xaf=300, actor=actor),
        "update": lambda: product_update(product=product, data={"price_xaf": 1200}, actor=actor),
        "delete": lambda: product_soft_delete(product=product, actor=actor),
        "upsert": lambda: product_upsert_many(
            vendor=vendor, items=[{"sku": product.sku, "price_xaf": 900}], actor=actor, atomic=False
        ),
        "adjust": lambda: stock_adjust(product=product, delta=2, reason="livraison", actor=actor),
        "count": lambda: stock_count(product=product, on_hand=4, expected_on_hand=5, actor=actor),
    }


def catalog_state(vendor: Vendor) -> tuple[object, ...]:
    return (
        sorted(
            Product.all_objects.filter(vendor=vendor).values_list("id", "price_xaf", "version", "deleted_at")
        ),
        sorted(Stock.objects.filter(vendor=vendor).values_list("product_id", "on_hand", "version")),
        StockMovement.objects.filter(vendor_id=vendor.pk).count(),
    )


WRITES = ["create", "update", "delete", "upsert", "adjust", "count"]


@pytest.mark.parametrize("write", WRITES)
def test_a_vendor_write_waiting_for_a_suspension_in_flight_is_refused_once_it_commits(write):
    # The write starts while vendor_suspend holds the vendor row (FOR UPDATE, not committed): it
    # waits for that lock and then reads the committed status, suspended.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    before = catalog_state(vendor)

    suspended, written = race(
        lambda: vendor_suspend(vendor=vendor, actor=STAFF),
        vendor_writes(product, Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="key"))[write],
    )

    assert isinstance(suspended, Vendor), (suspended, written)
    assert isinstance(written, VendorSuspended), (suspended, written)
    assert Vendor.objects.get(pk=vendor.pk).status == Vendor.Status.SUSPENDED
    assert catalog_state(vendor) == before


@pytest.mark.parametrize("write", WRITES)
def test_a_vendor_write_holding_the_vendor_lock_commits_before_the_suspension(write):
    # The write holds its share lock on the vendor row until it commits: vendor_suspend waits for
    # it, so when the suspension returns the write is already committed (seen from its connection).
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    before = catalog_state(vendor)

    def suspend() -> tuple[Vendor, tuple[object, ...]]:
        suspended = vendor_suspend(vendor=vendor, actor=STAFF)
        return suspended, catalog_state(vendor)

    written, (suspended, seen_by_the_suspension) = race(
        vendor_writes(product, Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="key"))[write], suspend
    )

    assert not isinstance(written, Exception), written
    assert suspended.status == Vendor.Status.SUSPENDED
    assert seen_by_the_suspension == catalog_state(vendor) != before
    assert Vendor.objects.get(pk=vendor.pk).status == Vendor.Status.SUSPENDED
