"""catalog.models: the database itself refuses bad rows (Python bypassed), and full-text search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from catalog.models import Product, Stock, StockMovement, Vendor
from catalog.selectors import stock_audit
from catalog.services import product_soft_delete, stock_adjust
from okada.partitions.ddl import partition_name, utc_month_of
from tests.append_only import assert_append_only, refused
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor

pytestmark = pytest.mark.django_db


def violated_constraint(write: Callable[[], Any]) -> str:
    """Run a raw write that skips Python validation; return the constraint PostgreSQL named."""
    with pytest.raises(IntegrityError) as exc, transaction.atomic():
        write()
    return exc.value.__cause__.diag.constraint_name  # type: ignore[union-attr]


def new_product(vendor: Vendor, **fields: Any) -> Product:
    values: dict[str, Any] = {"sku": "RAW-1", "name": "Raw", "price_xaf": 100, **fields}
    return Product(vendor=vendor, **values)


# --- Products -----------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [0, -1])
def test_database_refuses_a_non_positive_price(price):
    vendor = VendorFactory()
    assert (
        violated_constraint(lambda: Product.objects.bulk_create([new_product(vendor, price_xaf=price)]))
        == "catalog_product_price_positive"
    )
    product = ProductFactory(price_xaf=100)
    assert (
        violated_constraint(lambda: Product.objects.filter(pk=product.pk).update(price_xaf=price))
        == "catalog_product_price_positive"
    )
    assert Product.objects.get(pk=product.pk).price_xaf == 100


@pytest.mark.parametrize("compare_at", [1000, 999, 1])
def test_database_refuses_a_compare_at_price_not_above_the_price(compare_at):
    vendor = VendorFactory()
    row = new_product(vendor, price_xaf=1000, compare_at_price_xaf=compare_at)
    assert (
        violated_constraint(lambda: Product.objects.bulk_create([row]))
        == "catalog_product_compare_at_above_price"
    )


def test_database_accepts_a_compare_at_price_above_the_price_or_none():
    vendor = VendorFactory()
    Product.objects.bulk_create(
        [
            new_product(vendor, sku="A", price_xaf=1000, compare_at_price_xaf=1001),
            new_product(vendor, sku="B", price_xaf=1000, compare_at_price_xaf=None),
        ]
    )
    assert Product.objects.filter(vendor=vendor).count() == 2


def test_database_refuses_an_empty_sku():
    vendor = VendorFactory()
    assert (
        violated_constraint(lambda: Product.objects.bulk_create([new_product(vendor, sku="")]))
        == "catalog_product_sku_not_empty"
    )


def test_database_refuses_a_duplicate_live_sku_for_the_same_vendor():
    existing = ProductFactory(sku="RIZ")
    duplicate = new_product(existing.vendor, sku="RIZ")
    assert (
        violated_constraint(lambda: Product.objects.bulk_create([duplicate]))
        == "catalog_product_vendor_sku_live_uniq"
    )
    # Another vendor may use it.
    Product.objects.bulk_create([new_product(VendorFactory(), sku="RIZ")])
    assert Product.objects.filter(sku="RIZ").count() == 2


def test_database_allows_the_sku_of_a_soft_deleted_product_to_be_reused():
    old = ProductFactory(sku="RIZ")
    product_soft_delete(product=old, actor=staff_actor())
    Product.objects.bulk_create([new_product(old.vendor, sku="RIZ")])
    assert Product.all_objects.filter(vendor=old.vendor, sku="RIZ").count() == 2

    # ...but bringing the old one back to life behind the services' back would make two live rows.
    def raw_restore() -> None:
        with connection.cursor() as cur:
            cur.execute("UPDATE catalog_product SET deleted_at = NULL WHERE id = %s", [old.pk])

    assert violated_constraint(raw_restore) == "catalog_product_vendor_sku_live_uniq"


# --- Stock --------------------------------------------------------------------------------------


def test_database_refuses_negative_stock():
    product = ProductFactory(initial_stock=3)
    stock = Stock.objects.filter(product=product)
    # on_hand < 0 also breaks reserved <= on_hand; PostgreSQL checks constraints in name order.
    assert violated_constraint(lambda: stock.update(on_hand=-1)) == "catalog_stock_on_hand_nonneg"
    assert violated_constraint(lambda: stock.update(reserved=-1)) == "catalog_stock_reserved_nonneg"
    assert (stock.get().on_hand, stock.get().reserved) == (3, 0)


def test_database_refuses_more_reserved_than_on_hand():
    product = ProductFactory(initial_stock=3)
    stock = Stock.objects.filter(product=product)
    assert violated_constraint(lambda: stock.update(reserved=4)) == "catalog_stock_reserved_le_on_hand"
    assert violated_constraint(lambda: stock.update(reserved=F("on_hand") + 1)) == (
        "catalog_stock_reserved_le_on_hand"
    )
    stock.update(reserved=3)  # exactly everything reserved is fine
    assert stock.get().reserved == 3


def test_database_refuses_a_second_stock_row_for_a_product():
    product = ProductFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Stock.objects.bulk_create([Stock(product=product, vendor=product.vendor)])
    assert Stock.objects.filter(product=product).count() == 1


# --- Stock ledger -------------------------------------------------------------------------------

LEDGER_HINT = "record a correcting movement instead"


def test_database_refuses_to_change_or_delete_a_stock_movement_through_the_parent_or_its_partition():
    product = ProductFactory(initial_stock=5)
    movement = StockMovement.objects.get(product=product)

    assert_append_only(
        "catalog_stockmovement",
        movement.pk,
        partition=partition_name("catalog_stockmovement", utc_month_of(movement.created_at)),
        hint=LEDGER_HINT,
    )
    assert refused("UPDATE catalog_stockmovement SET delta = 500") == (
        f"catalog_stockmovement is append-only: {LEDGER_HINT}"
    )
    # The ORM's bulk paths are refused by the same trigger.
    for change in (
        lambda: StockMovement.objects.filter(pk=movement.pk).update(delta=50),
        lambda: StockMovement.objects.filter(pk=movement.pk).delete(),
    ):
        refusal = pytest.raises(IntegrityError, match="catalog_stockmovement is append-only")
        with refusal, transaction.atomic():
            change()
    assert StockMovement.objects.get(pk=movement.pk).delta == 5
    assert stock_audit() == []


def test_a_wrong_movement_is_corrected_by_another_one_and_the_ledger_still_sums_to_the_stock():
    product = ProductFactory(initial_stock=5)
    actor = staff_actor()
    stock_adjust(product=product, delta=7, reason="typo: meant 2", actor=actor)
    stock_adjust(product=product, delta=-5, reason="correcting the typo above", actor=actor)

    deltas = sorted(StockMovement.objects.filter(product=product).values_list("delta", flat=True))
    assert deltas == [-5, 5, 7]
    assert Stock.objects.get(product=product).on_hand == 7
    assert stock_audit() == []


# --- Vendors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone", ["677123456", "+33612345678", "+2376771234567", "+23767712345", "+237 677123456", ""]
)
def test_database_refuses_a_vendor_phone_that_is_not_cameroonian_e164(phone):
    row = Vendor(name="Raw", slug="raw", phone=phone, city="douala")
    assert violated_constraint(lambda: Vendor.objects.bulk_create([row])) == "catalog_vendor_phone_e164"
    vendor = VendorFactory()
    assert (
        violated_constraint(lambda: Vendor.objects.filter(pk=vendor.pk).update(phone=phone))
        == "catalog_vendor_phone_e164"
    )


@pytest.mark.parametrize("commission", [10001, 1_000_000])
def test_database_refuses_a_commission_above_100_percent(commission):
    vendor = VendorFactory()
    assert (
        violated_constraint(lambda: Vendor.objects.filter(pk=vendor.pk).update(commission_bps=commission))
        == "catalog_vendor_commission_range"
    )


def test_database_refuses_a_negative_commission():
    vendor = VendorFactory()
    # Two CHECKs forbid it: the range and the positive-integer column check.
    assert violated_constraint(lambda: Vendor.objects.filter(pk=vendor.pk).update(commission_bps=-1)) in {
        "catalog_vendor_commission_range",
        "catalog_vendor_commission_bps_check",
    }


def test_database_accepts_commission_at_both_ends_of_the_range():
    vendor = VendorFactory()
    Vendor.objects.filter(pk=vendor.pk).update(commission_bps=0)
    Vendor.objects.filter(pk=vendor.pk).update(commission_bps=10000)
    assert Vendor.objects.get(pk=vendor.pk).commission_bps == 10000


def test_database_refuses_an_unknown_vendor_status():
    vendor = VendorFactory()
    assert (
        violated_constraint(lambda: Vendor.objects.filter(pk=vendor.pk).update(status="closed"))
        == "catalog_vendor_status_valid"
    )


def test_database_refuses_a_duplicate_live_vendor_slug_but_not_a_deleted_ones():
    first = VendorFactory(slug="mama")
    row = Vendor(name="Raw", slug="mama", phone="+237677999999", city="douala")
    assert violated_constraint(lambda: Vendor.objects.bulk_create([row])) == "catalog_vendor_slug_live_uniq"
    first.delete()
    Vendor.objects.bulk_create([row])
    assert Vendor.objects.get(slug="mama").pk == row.pk


# --- Full-text search ---------------------------------------------------------------------------


@pytest.fixture
def groceries() -> dict[str, Product]:
    vendor = VendorFactory()
    names = ["Crème fraîche", "Plantains mûrs", "Palm oil 1 L", "Riz parfumé", "Pâte d'arachide"]
    return {name: ProductFactory.create(vendor=vendor, name=name) for name in names}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("creme", "Crème fraîche"),
        ("crème", "Crème fraîche"),
        ("fraiche", "Crème fraîche"),
        ("plantain", "Plantains mûrs"),
        ("oil", "Palm oil 1 L"),
        ("arachide", "Pâte d'arachide"),
        ("parfume", "Riz parfumé"),
    ],
)
def test_search_finds_products_across_accents_plurals_and_languages(groceries, query, expected):
    assert list(Product.objects.search(query)) == [groceries[expected]]


@pytest.mark.parametrize("query", ["ordinateur", "bicycle", "zzz"])
def test_search_for_an_unrelated_word_finds_nothing(groceries, query):
    assert list(Product.objects.search(query)) == []


def test_search_matches_the_sku_and_the_description():
    product = ProductFactory(sku="MAGGI-CUBE", name="Bouillon")
    other = ProductFactory(name="Sel", description="Sel fin iodé de cuisine")
    assert list(Product.objects.search("MAGGI-CUBE")) == [product]
    assert list(Product.objects.search("cuisine")) == [other]


def test_search_follows_product_renames():
    from catalog.services import product_update

    product = ProductFactory(name="Manioc")
    product_update(product=product, data={"name": "Bâton de manioc"}, actor=staff_actor())
    assert list(Product.objects.search("baton")) == [product]


def test_search_does_not_return_deleted_products(groceries):
    product_soft_delete(product=groceries["Crème fraîche"], actor=staff_actor())
    assert list(Product.objects.search("creme")) == []
