"""catalog.skus: SKUs stored in Unicode NFC, enforced by the CHECK catalog_product_sku_nfc, and
the function migrations 0013/0014 run over the rows written before."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from catalog import skus
from catalog.models import Product
from catalog.services import product_create, product_update, product_upsert_many
from catalog.skus import SKU_MAX_LENGTH, SkuNormalizationBlocked, normalize_sku, normalize_stored_skus
from okada.core.actors import Actor
from okada.core.errors import InvalidInput
from tests.catalog.factories import ProductFactory, VendorFactory, vendor_actor
from tests.concurrency import WAIT, in_thread

pytestmark = pytest.mark.django_db

COMPOSED, DECOMPOSED = "CAF\u00c9-1", "CAFE\u0301-1"  # "CAFÉ-1" twice: one code point, or E + U+0301


def test_normalize_sku_composes_and_leaves_nfc_alone():
    assert DECOMPOSED != COMPOSED
    assert normalize_sku(DECOMPOSED) == COMPOSED
    assert normalize_sku(COMPOSED) == COMPOSED
    assert normalize_sku("PLT-001") == "PLT-001"
    # The migration's length check reads the column's length from here.
    assert Product._meta.get_field("sku").max_length == SKU_MAX_LENGTH
    # ...and the name of the unique index whose refusal it turns into its own message.
    assert skus.LIVE_SKU_UNIQUE in {c.name for c in Product._meta.constraints}


def _raw_insert(vendor_id: uuid.UUID, sku: str, *, deleted: bool = False) -> uuid.UUID:
    """A product row as the code of before wrote it (or a script with psql): no normalising."""
    pk = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO catalog_product (id, created_at, updated_at, deleted_at, deleted_by_cascade, sku, "
            "name, description, price_xaf, unit, is_active, attributes, version, vendor_id) VALUES "
            "(%s, now(), now(), CASE WHEN %s THEN now() END, false, %s, 'P', '', 100, 'piece', true, "
            "'{}', 1, %s)",
            [pk, deleted, sku, vendor_id],
        )
    return pk


def test_the_database_refuses_a_sku_that_is_not_nfc():
    vendor = VendorFactory()
    with pytest.raises(IntegrityError, match="catalog_product_sku_nfc"), transaction.atomic():
        _raw_insert(vendor.pk, DECOMPOSED)
    _raw_insert(vendor.pk, COMPOSED)
    assert list(Product.objects.values_list("sku", flat=True)) == [COMPOSED]


def test_the_constraint_is_validated():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT convalidated, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
            ["catalog_product_sku_nfc"],
        )
        assert cursor.fetchone() == (True, "CHECK ((sku IS NFC NORMALIZED))")


def test_a_check_violation_of_the_constraint_is_a_clear_400_not_a_500(monkeypatch):
    # Reachable only if Python's Unicode tables are older than PostgreSQL's (a character the
    # first does not know yet): stood for here by a normaliser that does nothing.
    monkeypatch.setattr("catalog.services.normalize_sku", lambda sku: sku)
    vendor = VendorFactory()
    with pytest.raises(InvalidInput) as refused:
        product_create(vendor=vendor, sku=DECOMPOSED, name="Café", price_xaf=100, actor=Actor.system())
    assert refused.value.errors.keys() == {"sku"}
    product = ProductFactory(vendor=vendor, sku="PLAIN")
    with pytest.raises(InvalidInput) as refused:
        product_update(product=product, data={"sku": DECOMPOSED}, actor=Actor.system())
    assert refused.value.errors.keys() == {"sku"}
    assert list(Product.objects.values_list("sku", flat=True)) == ["PLAIN"]


# --- normalize_stored_skus (migrations 0013 and 0014) ----------------------------------------------


@pytest.fixture
def without_constraint():
    """Rows as before the constraint: dropped inside the test's transaction (rolled back after)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE catalog_product DROP CONSTRAINT catalog_product_sku_nfc")
    yield
    with connection.cursor() as cursor:  # validated again: every row must be NFC by now
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the inserts' foreign key checks first
        cursor.execute(
            "ALTER TABLE catalog_product ADD CONSTRAINT catalog_product_sku_nfc CHECK (sku IS NFC NORMALIZED)"
        )


def _rows() -> dict[uuid.UUID, tuple[str, int]]:
    return {p.pk: (p.sku, p.version) for p in Product.all_objects.all()}


def test_stored_skus_are_normalised_with_a_new_version_and_a_history_row(without_constraint):
    vendor, other = VendorFactory(), VendorFactory()
    plain = ProductFactory(vendor=vendor, sku="PLAIN")
    live = _raw_insert(vendor.pk, DECOMPOSED)
    deleted = _raw_insert(vendor.pk, "MAI\u0308S", deleted=True)
    # The same SKU at another vendor, or at a deleted product, is no collision.
    elsewhere = _raw_insert(other.pk, DECOMPOSED)
    deleted_twin = _raw_insert(vendor.pk, "CAF\u00c9-1", deleted=True)

    assert normalize_stored_skus(connection) == 3

    assert _rows() == {
        plain.pk: ("PLAIN", 1),
        live: (COMPOSED, 2),
        deleted: ("MA\u00cfS", 2),
        elsewhere: (COMPOSED, 2),
        deleted_twin: (COMPOSED, 1),
    }
    history = Product.history.filter(id=live).latest()
    assert (history.sku, history.version, history.history_type) == (COMPOSED, 2, "~")
    assert history.history_change_reason == "SKU normalised to Unicode NFC [system:migration]"
    assert normalize_stored_skus(connection) == 0  # a second run (0014) finds nothing left


@pytest.mark.parametrize(
    "pair",
    [
        (COMPOSED, DECOMPOSED),  # a live NFC SKU, and its twin written decomposed
        ("A\u0323\u0307", "A\u0307\u0323"),  # two spellings, neither NFC, of "\u1ea0\u0307"
    ],
)
def test_stored_skus_that_would_collide_stop_naming_vendor_and_skus_and_change_nothing(
    without_constraint, pair
):
    vendor = VendorFactory(slug="chez-mama", name="Chez Mama")
    first, second = (_raw_insert(vendor.pk, sku) for sku in pair)
    lonely = _raw_insert(vendor.pk, "MAI\u0308S")  # would be fine on its own: not changed either
    before = _rows()

    with pytest.raises(SkuNormalizationBlocked) as blocked:
        normalize_stored_skus(connection)

    message = str(blocked.value)
    assert "vendor chez-mama (Chez Mama)" in message
    assert str(first) in message and str(second) in message and str(lonely) not in message
    assert ascii(pair[0]) in message and ascii(pair[1]) in message  # the forms told apart
    assert "rename one product" in message and "run migrate again" in message
    assert _rows() == before
    # Renamed, as the message says: then normalised, and the constraint validates (teardown).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_product SET sku = 'OTHER' WHERE id = %s", [first])
    assert normalize_stored_skus(connection) == 2
    assert len(set(_rows().values())) == 3


def test_a_stored_sku_that_would_outgrow_its_column_stops_the_migration(without_constraint):
    vendor = VendorFactory()
    # U+0958 (DEVANAGARI LETTER QA) is excluded from composition: its NFC is two code points.
    too_long = _raw_insert(vendor.pk, "\u0958" * 40)
    with pytest.raises(SkuNormalizationBlocked, match="longer than 64 characters") as blocked:
        normalize_stored_skus(connection)
    assert str(too_long) in str(blocked.value)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE catalog_product SET sku = 'SHORT' WHERE id = %s", [too_long])


@pytest.mark.django_db(transaction=True)  # the product written meanwhile commits, as in production
def test_a_colliding_product_written_between_the_check_and_the_update_stops_with_the_same_message(
    without_constraint, monkeypatch
):
    # The app keeps running during `migrate`: a product with the NFC form of a SKU the migration
    # has checked is created (and committed, on another connection) before its UPDATE. The unique
    # index refuses the UPDATE; the migration says which products collide, as when it saw them
    # in its check, instead of a unique-violation traceback.
    vendor = VendorFactory(slug="chez-mama", name="Chez Mama")
    old = _raw_insert(vendor.pk, DECOMPOSED)
    created: list[Product] = []
    rewrite = skus._rewrite

    def create() -> None:
        created.append(
            product_create(vendor=vendor, sku=DECOMPOSED, name="Café", price_xaf=100, actor=Actor.system())
        )

    def product_created_meanwhile(*args: Any) -> None:
        if not created:
            thread, errors = in_thread(create)
            thread.join(WAIT)
            assert not errors and created, errors
        rewrite(*args)

    monkeypatch.setattr(skus, "_rewrite", product_created_meanwhile)
    try:
        with pytest.raises(SkuNormalizationBlocked) as blocked, transaction.atomic():  # as migrate runs it
            normalize_stored_skus(connection)

        message = str(blocked.value)
        assert "vendor chez-mama (Chez Mama)" in message
        assert str(old) in message and str(created[0].pk) in message
        assert ascii(DECOMPOSED) in message and "rename one product" in message
        assert _rows() == {old: (DECOMPOSED, 1), created[0].pk: (COMPOSED, 1)}  # nothing changed
        assert not Product.history.filter(id=old).exists()
    finally:  # whatever happened, no SKU left that the constraint (put back after) would refuse
        with connection.cursor() as cursor:
            cursor.execute("UPDATE catalog_product SET sku = 'OTHER' WHERE id = %s", [old])


# --- Every write path and lookup normalises ---------------------------------------------------------


@pytest.mark.parametrize("created, sent", [(DECOMPOSED, COMPOSED), (COMPOSED, DECOMPOSED)])
def test_a_bulk_upsert_in_the_other_form_updates_the_product_instead_of_creating_another(created, sent):
    vendor = VendorFactory()
    actor = vendor_actor(vendor)
    product = product_create(vendor=vendor, sku=created, name="Café", price_xaf=100, actor=actor)
    assert product.sku == COMPOSED

    [result] = product_upsert_many(
        vendor=vendor, items=[{"sku": sent, "price_xaf": 150}], actor=actor, atomic=True
    )

    assert (result.status, result.product.pk if result.product else None, result.sku) == (
        "updated",
        product.pk,
        COMPOSED,
    )
    assert list(Product.objects.values_list("pk", "sku", "price_xaf")) == [(product.pk, COMPOSED, 150)]


def test_one_sku_in_two_forms_in_one_bulk_request_is_the_same_sku_twice():
    vendor = VendorFactory()
    items = [{"sku": s, "name": "Café", "price_xaf": 100} for s in (COMPOSED, DECOMPOSED)]
    results = product_upsert_many(vendor=vendor, items=items, actor=vendor_actor(vendor), atomic=False)
    assert [r.status for r in results] == ["created", "failed"]
    assert Product.objects.get().sku == COMPOSED


def test_product_update_stores_nfc_and_the_same_sku_in_another_form_is_no_change():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, sku="PLAIN")
    product = product_update(product=product, data={"sku": DECOMPOSED}, actor=Actor.system())
    assert (product.sku, product.version) == (COMPOSED, 2)
    product = product_update(product=product, data={"sku": COMPOSED}, actor=Actor.system())
    assert product.version == 2
    product = product_update(product=product, data={"sku": DECOMPOSED}, actor=Actor.system())
    assert product.version == 2
    assert Product.objects.filter(pk=product.pk).values_list("sku", flat=True).get() == COMPOSED


def test_product_create_in_the_other_form_is_sku_taken_and_other_vendors_are_unaffected():
    from catalog.services import SkuTaken

    vendor, other = VendorFactory(), VendorFactory()
    ProductFactory(vendor=vendor, sku=COMPOSED)
    with pytest.raises(SkuTaken):
        product_create(
            vendor=vendor, sku=DECOMPOSED, name="Double", price_xaf=100, actor=vendor_actor(vendor)
        )
    # Tenant isolation: the other vendor's SKU in either form is its own product.
    mine = product_create(vendor=other, sku=DECOMPOSED, name="Café", price_xaf=100, actor=vendor_actor(other))
    [result] = product_upsert_many(
        vendor=other, items=[{"sku": COMPOSED, "price_xaf": 120}], actor=vendor_actor(other), atomic=True
    )
    assert result.product is not None and result.product.pk == mine.pk
    assert sorted(Product.objects.values_list("vendor_id", "sku", "price_xaf")) == sorted(
        [(vendor.pk, COMPOSED, 1000), (other.pk, COMPOSED, 120)]
    )
