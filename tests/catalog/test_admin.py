"""Catalog admin: writes go through the services, errors are shown, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog import admin as catalog_admin
from catalog.models import Product, Stock, Vendor
from catalog.services import product_soft_delete
from tests.catalog.factories import ProductFactory, VendorFactory, staff_actor
from tests.plans import executed_plan_nodes

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
    assert "errornote" in response.content.decode() or "text-red-600" in response.content.decode()
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


# --- Stock on the product page, the ledger, the vendor page, the category tree --------------------


def test_operations_adjust_stock_and_the_ledger_shows_the_row(client):
    from catalog.models import StockMovement
    from okada.core.roles import OPERATIONS
    from tests.catalog.factories import role_user

    product = ProductFactory(initial_stock=5)
    client.force_login(role_user(OPERATIONS))
    response = client.post(
        f"/admin/catalog/product/{product.pk}/adjust-stock/", {"adjust-delta": "-2", "adjust-reason": "casse"}
    )
    assert response.status_code == 302
    assert Stock.objects.get(product=product).on_hand == 3
    movement = StockMovement.objects.filter(product=product).latest("created_at")
    assert (movement.kind, movement.delta, movement.reason) == ("adjustment", -2, "casse")
    page = client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    assert "casse" in page and 'id="ledger"' in page
    ledger = client.get(f"/admin/catalog/stockmovement/?product={product.pk}")
    assert {m.pk for m in ledger.context["cl"].result_list} == set(
        StockMovement.objects.filter(product=product).values_list("pk", flat=True)
    )


def test_the_ledger_search_finds_an_orders_movements_by_its_number_and_others_by_their_start(
    client, admin_user
):
    """References are identifiers: an order number (whole, as the order list takes it) finds that
    order's movements, and another reference is found by its start, in any case; a word inside a
    reference finds nothing (that search read every partition)."""
    from catalog.models import StockMovement
    from catalog.services import stock_adjust
    from orders.services import order_transition
    from tests.orders.factories import OrderFactory

    product = ProductFactory(initial_stock=20)
    stock_adjust(
        product=product,
        delta=5,
        reason="livraison",
        actor=staff_actor(),
        reference="BL-2024-0042",
        kind="restock",
    )
    stock_adjust(product=product, delta=-1, reason="casse", actor=staff_actor(), reference="Casse-7")
    order = OrderFactory(vendor=product.vendor, items=[(product, 2)])
    order_transition(order=order, to="cancelled", actor=staff_actor(), note="test")  # its release
    other = OrderFactory(vendor=product.vendor, items=[(product, 1)])  # the same product's
    client.force_login(admin_user)

    def found(term: str) -> set[tuple[str, str]]:
        cl = client.get("/admin/catalog/stockmovement/", {"q": term}).context["cl"]
        return {(m.kind, m.reference) for m in cl.result_list}

    number = order.number
    assert found(number) == {("reserve", number), ("release", number)}
    assert found(number.lower()) == found(str(int(number[3:]))) == found(number)
    assert found(other.number) == {("reserve", other.number)}
    assert found("bl-2024") == found("BL-2024-0042") == {("restock", "BL-2024-0042")}
    assert found("casse") == {("adjustment", "Casse-7")}
    assert found("2024-0042") == set()  # inside a reference: not a match
    assert found(number[:-1]) == set()  # an order number is matched whole
    assert StockMovement.objects.filter(reference__contains="2024-0042").exists()


def test_a_count_is_compare_and_set(client):
    from okada.core.roles import STOCK
    from tests.catalog.factories import role_user

    product = ProductFactory(initial_stock=5)
    client.force_login(role_user(STOCK))
    url = f"/admin/catalog/product/{product.pk}/count-stock/"
    client.post(url, {"count-on_hand": "7", "count-expected_on_hand": "4", "count-reason": ""}, follow=True)
    assert Stock.objects.get(product=product).on_hand == 5  # someone else's count in between: refused
    client.post(url, {"count-on_hand": "7", "count-expected_on_hand": "5", "count-reason": "inventaire"})
    assert Stock.objects.get(product=product).on_hand == 7


def test_a_support_user_cannot_adjust_stock(client):
    from okada.core.roles import SUPPORT
    from tests.catalog.factories import role_user

    product = ProductFactory(initial_stock=5)
    client.force_login(role_user(SUPPORT))
    url = f"/admin/catalog/product/{product.pk}/adjust-stock/"
    assert client.post(url, {"adjust-delta": "10", "adjust-reason": "x"}).status_code == 403
    assert Stock.objects.get(product=product).on_hand == 5


def test_a_group_that_sees_products_but_not_stock_is_shown_neither_stock_nor_ledger(client):
    from django.contrib.auth.models import Group, Permission

    from okada.core.roles import STOCK
    from tests.catalog.factories import UserFactory, role_user

    product = ProductFactory(initial_stock=7)
    catalogue_only = Group.objects.create(name="Catalogue readers")
    catalogue_only.permissions.add(Permission.objects.get(codename="view_product"))
    user = UserFactory(is_staff=True)
    user.groups.add(catalogue_only)
    client.force_login(user)
    page = client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    assert product.name in page and 'id="stock-on-hand"' not in page and 'id="ledger"' not in page
    listing = client.get("/admin/catalog/product/")
    assert "available" not in listing.context["cl"].list_display
    # A role that may see stock still does.
    client.force_login(role_user(STOCK))
    assert 'id="stock-on-hand"' in client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    assert "available" in client.get("/admin/catalog/product/").context["cl"].list_display


def test_product_search_is_full_text_and_filters_by_vendor(client, admin_user):
    vendor = VendorFactory()
    creme = ProductFactory(vendor=vendor, name="Crème fraîche 20 cl")
    ProductFactory(vendor=vendor, name="Riz parfumé")
    other = ProductFactory(name="Crème glacée")
    client.force_login(admin_user)
    found = client.get("/admin/catalog/product/", {"q": "creme"}).context["cl"].result_list
    assert {p.pk for p in found} == {creme.pk, other.pk}
    found = (
        client.get("/admin/catalog/product/", {"q": "creme", "vendor__id__exact": vendor.pk})
        .context["cl"]
        .result_list
    )
    assert {p.pk for p in found} == {creme.pk}


def list_query_plan(client, query: dict[str, Any], screen: str = "product") -> str:
    cl = client.get(f"/admin/catalog/{screen}/", query).context["cl"]
    sql, params = cl.queryset[: cl.list_per_page + 1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_product_search_few_products_match_lists_them_by_key_not_by_testing_each(client, admin_user):
    # Newest first, a search PostgreSQL tests product by product walks the whole primary key when
    # the word is rare (seconds on a million products): the few matches are listed by key.
    wanted = ProductFactory(name="Gombo frais")
    for _ in range(5):
        ProductFactory(name="Riz parfumé")
    client.force_login(admin_user)
    found = client.get("/admin/catalog/product/", {"q": "gombo"}).context["cl"].result_list
    assert [p.pk for p in found] == [wanted.pk]
    plan = list_query_plan(client, {"q": "gombo"})
    assert "search_vector" not in plan, plan  # the list reads the matches by key


@pytest.mark.parametrize("walk", [1, 4, 1000])  # the pages found by the walk, or after it
def test_every_page_of_a_product_search_across_vendors_is_the_orms_order(
    client, admin_user, monkeypatch, walk
):
    # The first matches up to a page's end are found as the storefront finds its page (SEARCH_WALK
    # products newest first, else the matches sorted), then the page is read by key: the same
    # pages as the ORM's search newest first, a quoted phrase's words read as words.
    from catalog import selectors

    monkeypatch.setattr(selectors, "SEARCH_WALK", walk)
    monkeypatch.setattr(catalog_admin.ProductAdmin, "list_per_page", 2)
    for i in range(12):
        ProductFactory(name=(f"Riz long {i}" if i % 3 else f"Long grain de riz {i}") if i % 2 else f"Sel {i}")
    product_soft_delete(product=ProductFactory(name="Riz long supprimé"), actor=staff_actor())
    client.force_login(admin_user)
    for term in ("riz", '"riz long"', "long riz", "“riz long”"):
        expected = list(Product.objects.search("riz long" if "long" in term else term).order_by("-pk"))
        assert len(expected) == 6
        seen = []
        for page in range(1, 5):
            found = client.get("/admin/catalog/product/", {"q": term, "p": page}).context["cl"].result_list
            seen += [p.pk for p in found]
        assert seen == [p.pk for p in expected], term


@pytest.mark.parametrize("term", ["bio premium", '"riz long"'])
def test_a_product_search_across_vendors_never_tests_more_than_a_walk_of_products_newest_first(
    client, admin_user, monkeypatch, term
):
    # Words common but never together (`bio premium`), or a quoted phrase of common words in an
    # order no product has, were looked for by testing every product of the marketplace (0.4 s on
    # the large seed): the walk newest first stops after SEARCH_WALK products, the matches are then
    # read from the full-text index and sorted by a copy of the key, a phrase's words as words (the
    # index's AND, no product read again to test the words' order), as the plans PostgreSQL ran
    # show.
    from catalog import selectors

    monkeypatch.setattr(selectors, "SEARCH_WALK", 3)
    wanted = ProductFactory(name="Riz long bio premium")
    for i in range(8):
        ProductFactory(name=f"Sel {i}")
    client.force_login(admin_user)
    with CaptureQueriesContext(connection) as queries:
        found = client.get("/admin/catalog/product/", {"q": term}).context["cl"].result_list
    assert [p.pk for p in found] == [wanted.pk]
    searches = [q["sql"] for q in queries.captured_queries if "@@" in q["sql"]]
    assert len(searches) == 2  # the walk, then the matches
    # The products tested for the words: those of the walk (a small table's plan may read them
    # through another index and sort them; they are still 3).
    tested = [n for n in executed_plan_nodes(searches[0]) if n["Node Type"] == "Subquery Scan"]
    assert tested and all(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) <= 3 for n in tested), tested
    sorts = [n for n in executed_plan_nodes(searches[1]) if n["Node Type"] == "Sort"]
    assert any("::text" in " ".join(n["Sort Key"]) for n in sorts), sorts
    assert not any("<->" in q for q in searches), searches


def test_a_product_search_of_one_vendor_reads_a_phrase_and_tests_that_vendors_products_only(
    client, admin_user
):
    # Narrowed to a vendor, the list's search tests that vendor's products (the marketplace's index
    # is not read: the phrase of common words tested every product of the marketplace, 0.4 s), and
    # quotes make a phrase: the words in that order.
    vendor = VendorFactory()
    riz_long = ProductFactory(vendor=vendor, name="Riz long")
    ProductFactory(vendor=vendor, name="Long riz rouge")
    ProductFactory(name="Riz long")
    client.force_login(admin_user)
    query = {"q": '"riz long"', "vendor__id__exact": vendor.pk}
    with CaptureQueriesContext(connection) as queries:
        found = client.get("/admin/catalog/product/", query).context["cl"].result_list
    assert [p.pk for p in found] == [riz_long.pk]
    assert not any("@@" in q["sql"] for q in queries.captured_queries)
    found = client.get("/admin/catalog/product/", {**query, "q": "riz long"}).context["cl"].result_list
    assert len(found) == 2


def test_a_product_search_reads_a_words_leading_dash_as_the_api_does_and_says_when_it_has_no_word(
    client, admin_user
):
    # "-gombo" listed every product but the gombo (when it did: a NOT of the stemmed word only),
    # and "!!!" an empty list without a word of why.
    gombo = ProductFactory(name="Gombo frais")
    ProductFactory(name="Riz parfumé")
    client.force_login(admin_user)
    found = client.get("/admin/catalog/product/", {"q": "-gombo"}).context["cl"].result_list
    assert [p.pk for p in found] == [gombo.pk]
    response = client.get("/admin/catalog/product/", {"q": "!!!"})
    assert list(response.context["cl"].result_list) == []
    said = [str(m) for m in response.context["messages"]]
    assert said == [
        "«\u00a0!!!\u00a0» ne contient aucun mot à chercher\u00a0: les produits sont trouvés par les "
        "mots de leur nom, de leur description ou de leur référence."
    ]


def test_categories_are_listed_as_a_tree(client, admin_user):
    from tests.catalog.factories import CategoryFactory

    food = CategoryFactory(name_fr="Épicerie", position=1)
    drinks = CategoryFactory(name_fr="Boissons", position=2)
    rice = CategoryFactory(name_fr="Riz", parent=food, position=1)
    client.force_login(admin_user)
    listed = list(client.get("/admin/catalog/category/").context["cl"].result_list)
    assert [c.pk for c in listed] == [food.pk, rice.pk, drinks.pk]


def test_the_vendor_page_shows_bounded_lists_of_products_stock_and_open_orders(client, admin_user):
    from tests.orders.factories import OrderFactory

    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor, initial_stock=1) for _ in range(12)]
    order = OrderFactory(vendor=vendor, items=[(products[0], 1)])
    client.force_login(admin_user)
    response = client.get(f"/admin/catalog/vendor/{vendor.pk}/change/")
    panels = {p.key: p.data for p in response.context["okada_panels"]}
    assert len(panels["catalog.vendor_catalog"]["products"]) == 10
    assert products[0].pk in {s.product_id for s in panels["catalog.vendor_catalog"]["low_stock"]}
    assert [o.pk for o in panels["orders.vendor_open"]["orders"]] == [order.pk]
    assert order.number in response.content.decode()


def loaded_at(html: str) -> str:
    """The change form's hidden time of opening, as the browser posts it back."""
    found = re.search(r'name="_okada_loaded_at" value="([^"]+)"', html)
    assert found, "the change form carries the time it was opened"
    return found[1]


def _opened(client, url: str) -> str:
    return loaded_at(client.get(url).content.decode())


def test_two_staff_editing_one_product_the_second_save_does_not_undo_the_first(client, admin_user):
    from django.test import Client

    from tests.catalog.factories import UserFactory

    product = ProductFactory(sku="PLT-1", name="Plantain", price_xaf=1000)
    url = f"/admin/catalog/product/{product.pk}/change/"
    other = Client()
    other.force_login(UserFactory(is_staff=True, is_superuser=True))
    client.force_login(admin_user)
    mine, theirs = _opened(client, url), _opened(other, url)

    their_form = product_form(product.vendor, name="Plantain", price_xaf="1200")
    my_form = product_form(product.vendor, name="Plantain doux", price_xaf="1000")
    saved = other.post(url, {**their_form, "_okada_loaded_at": theirs})
    assert saved.status_code == 302
    refused = client.post(url, {**my_form, "_okada_loaded_at": mine})
    assert refused.status_code == 200
    assert "Quelqu\u2019un d\u2019autre a enregistré cette fiche" in refused.content.decode()
    product.refresh_from_db()
    assert (product.name, product.price_xaf, product.version) == ("Plantain", 1200, 2)  # theirs kept

    # A form error keeps the time the form was opened; after the refusal, saving again is a choice.
    again = loaded_at(refused.content.decode())
    assert again != mine
    invalid = client.post(url, {**my_form, "price_xaf": "0", "_okada_loaded_at": mine})
    assert f'value="{mine}"' in invalid.content.decode()
    replaced = client.post(url, {**my_form, "_okada_loaded_at": again})
    assert replaced.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.price_xaf) == ("Plantain doux", 1000)  # the form's values, knowingly


def test_a_sku_typed_decomposed_in_admin_is_stored_nfc_and_matches_the_existing_one(client, admin_user):
    # A Mac keyboard or a copy-paste may give "E" + U+0301 for "É": the form is not refused by
    # the CHECK on NFC, and the SKU is the product already there.
    vendor = VendorFactory()
    client.force_login(admin_user)
    response = client.post("/admin/catalog/product/add/", product_form(vendor, sku="CAFE\u0301-1"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Product.objects.get(vendor=vendor).sku == "CAF\u00c9-1"
    response = client.post("/admin/catalog/product/add/", product_form(vendor, sku="CAF\u00c9-1"))
    assert response.status_code == 200  # the form again: this vendor already has the SKU
    assert Product.objects.filter(vendor=vendor).count() == 1


@pytest.mark.parametrize(
    "screen, typed, product_of",
    [
        ("product", "CAFE\u0301-1", lambda row: row.pk),
        ("stock", "CAFE\u0301", lambda row: row.product_id),
    ],
)
def test_the_lists_find_a_sku_searched_in_another_unicode_form(client, admin_user, screen, typed, product_of):
    product = ProductFactory(sku="CAF\u00c9-1")
    ProductFactory(sku="THE-1")
    client.force_login(admin_user)
    response = client.get(f"/admin/catalog/{screen}/", {"q": typed})
    assert response.status_code == 200
    assert [product_of(row) for row in response.context["cl"].result_list] == [product.pk]


def test_a_stock_search_few_skus_match_reads_their_stock_by_product(client, admin_user):
    # Newest first, the SKU tested row by row read every product (2 s on a million): the few
    # products whose SKU matches are found first, their stock read by product.
    wanted = ProductFactory(sku="GOMBO-12")
    ProductFactory(sku="RIZ-1")
    client.force_login(admin_user)
    found = client.get("/admin/catalog/stock/", {"q": "bo-1"}).context["cl"].result_list
    assert [s.product_id for s in found] == [wanted.pk]
    plan = list_query_plan(client, {"q": "bo-1"}, "stock")
    assert "sku" not in plan and "product_id = " in plan, plan


def test_a_stock_search_matches_each_word_as_django_does_and_many_matches_still_list_all(
    client, admin_user, monkeypatch
):
    monkeypatch.setattr(catalog_admin, "SKU_PROBE", 1)
    rice = {ProductFactory(sku=f"RIZ-{n}").pk for n in range(3)}
    ProductFactory(sku="GOMBO-1")
    client.force_login(admin_user)
    found = client.get("/admin/catalog/stock/", {"q": "riz"}).context["cl"].result_list
    assert {s.product_id for s in found} == rice
    monkeypatch.setattr(catalog_admin, "SKU_PROBE", 100)
    found = client.get("/admin/catalog/stock/", {"q": "riz 2"}).context["cl"].result_list
    assert [s.product_id for s in found] == [Product.objects.get(sku="RIZ-2").pk]
