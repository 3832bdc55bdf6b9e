"""The (soft) delete pages of every admin that soft-deletes (an object's delete page and the "delete
selected" action's), read in French and in English, with rows the services refuse to delete: the
page says up front which rows cannot go and why, and offers no confirmation. It used to list the
rows and offer "Oui, je suis sûr", and the refusal came only as a message after confirming.
The services stay the guard: a confirmation posted anyway is refused by them.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.contrib.messages.constants import ERROR, SUCCESS
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.text import capfirst

from catalog.models import Category, Product, Vendor, VendorMember
from orders.models import Customer, Order, OrderStatus, Zone
from tests.catalog.factories import CategoryFactory, ProductFactory, UserFactory, VendorFactory
from tests.core.test_admin_delete_pages import _get_or_post, texts
from tests.core.test_admin_french import english_on
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory, advance, payment_needing_refund

pytestmark = pytest.mark.django_db

CONFIRM_INPUT = 'name="post" value="yes"'


def _urls(model: Any, pk: Any) -> tuple[str, str]:
    opts = model._meta
    return (
        reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[pk]),
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    )


def _bulk(selected: list[Any], **extra: Any) -> dict[str, Any]:
    return {"action": "delete_selected", "_selected_action": [str(pk) for pk in selected], **extra}


def _page(client: Any, url: str, data: dict[str, Any] | None, language: str) -> str:
    client.cookies["django_language"] = language
    return _get_or_post(client, url, data, language)


def _blocked_rows() -> list[tuple[Any, Any, str, str, bool]]:
    """(model, the row, why in French, why in English, has a single delete page) for each
    refusal of a soft delete service the admin reaches, with real rows that block."""
    vendor_with_products = ProductFactory(name="Riz parfumé").vendor
    ordered = advance(OrderFactory(), OrderStatus.CANCELLED)  # closed, and no payment: deletable
    parent = CategoryFactory(name_fr="Épicerie")
    CategoryFactory(parent=parent, name_fr="Riz")
    shelved = CategoryFactory(name_fr="Boissons")
    ProductFactory(category=shelved)
    paid = payment_needing_refund().order  # cancelled, with its cash payment kept for good
    used = "Des {} encore en service y renvoient\u00a0: supprimez-les ou déplacez-les d\u2019abord."
    used_en = "Still used by live {}: delete or move them first."
    kept = "Des paiements, conservés pour toujours, y renvoient\u00a0: suppression impossible."
    kept_en = "They have payments, which are kept for good: they cannot be deleted."
    open_order = "Une commande en cours ne peut pas être supprimée\u00a0: annulez-la d\u2019abord"
    open_order_en = "An open order cannot be deleted: cancel it first"
    return [
        (Vendor, vendor_with_products, used.format("produits"), used_en.format("products"), True),
        (Vendor, ordered.vendor, used.format("commandes"), used_en.format("orders"), True),
        (Category, parent, used.format("catégories"), used_en.format("categories"), True),
        (Category, shelved, used.format("produits"), used_en.format("products"), True),
        (Zone, ordered.zone, used.format("commandes"), used_en.format("orders"), True),
        (Customer, ordered.customer, used.format("commandes"), used_en.format("orders"), True),
        (Order, paid, kept, kept_en, True),
        # An open order's delete page is refused (403, OrderAdmin.has_delete_permission): the
        # "delete selected" action is its only delete page.
        (Order, OrderFactory(), open_order, open_order_en, False),
    ]


def test_every_soft_delete_page_says_up_front_what_the_service_refuses(client, admin_user):
    """Each admin whose soft delete a service refuses, with a row that cannot go: both delete
    pages say so and why, in French and in English, and offer no confirmation."""
    client.force_login(admin_user)
    for model, row, why, why_en, single in _blocked_rows():
        delete_url, list_url = _urls(model, row.pk)
        pages = [(list_url, _bulk([row.pk]))] + ([(delete_url, None)] if single else [])
        for url, data in pages:
            html = _page(client, url, data, "fr")
            page = texts(html)
            assert "Suppression impossible" in page, (url, page)
            assert "Cet élément ne peut pas être supprimé, pour les raisons ci-dessous." in page, url
            assert any(t.startswith(why) for t in page), (url, why, page)
            assert f"{capfirst(model._meta.verbose_name)}\u00a0: {row}" in " ".join(page), (url, page)
            assert CONFIRM_INPUT not in html and "Oui, je suis sûr" not in page, url
            assert english_on(html) == [], url
            en = texts(_page(client, url, data, "en"))
            assert "Cannot be deleted" in en and "This row cannot be deleted, for the reasons below." in en
            assert any(t.startswith(why_en) for t in en), (url, why_en, en)
        assert model.objects.filter(pk=row.pk).exists()


def test_the_soft_delete_page_names_the_rows_that_use_them_counted(client, admin_user):
    """Under the reasons, the rows that still use them, per model, counted and the first named."""
    product = ProductFactory(name="Riz parfumé")
    client.force_login(admin_user)
    delete_url, _ = _urls(Vendor, product.vendor.pk)
    page = texts(_page(client, delete_url, None, "fr"))
    assert "Éléments qui y font encore référence\u00a0:" in page, page
    assert "Produits\u00a0: 1" in page, page
    assert "Produit\u00a0: Riz parfumé" in " ".join(page), page
    en = texts(_page(client, delete_url, None, "en"))
    assert "Rows that still refer to them:" in en and "Products: 1" in en, en


def test_a_forged_confirmation_is_still_refused_by_the_service(client, admin_user):
    """The page offers no confirmation; posted anyway (both pages), the service refuses it and
    nothing is deleted."""
    client.force_login(admin_user)
    for model, row, _why, _en, single in _blocked_rows():
        delete_url, list_url = _urls(model, row.pk)
        posts = [(list_url, _bulk([row.pk], post="yes"))] + (
            [(delete_url, {"post": "yes"})] if single else []
        )
        for url, data in posts:
            response = client.post(url, data)
            assert response.status_code == 302, (url, response.status_code)
            assert [m for m in get_messages(response.wsgi_request) if m.level == ERROR], url
            assert model.objects.filter(pk=row.pk).exists(), url


def test_a_selection_of_which_only_some_can_go_is_not_offered_and_names_those_that_cannot(client, admin_user):
    """A "delete selected" goes whole or not at all (README): the page names the rows that
    cannot go, not those that could, and offers no confirmation."""
    blocked = ProductFactory().vendor
    free = VendorFactory(name="Boutique libre")
    client.force_login(admin_user)
    html = _page(client, "/admin/catalog/vendor/", _bulk([blocked.pk, free.pk]), "fr")
    page = texts(html)
    assert any(
        t.startswith("Parmi ces 2 éléments, ceux ci-dessous ne peuvent pas être supprimés") for t in page
    )
    joined = " ".join(page)
    assert f"Vendeur\u00a0: {blocked}" in joined and f"Vendeur\u00a0: {free}" not in joined, page
    assert CONFIRM_INPUT not in html
    en = texts(_page(client, "/admin/catalog/vendor/", _bulk([blocked.pk, free.pk]), "en"))
    assert any(t.startswith("Of these 2 rows, those below cannot be deleted") for t in en), en

    # Posted anyway, the services delete what they may and refuse the rest, row by row.
    response = client.post("/admin/catalog/vendor/", _bulk([blocked.pk, free.pk], post="yes"))
    levels = [m.level for m in get_messages(response.wsgi_request)]
    assert ERROR in levels and SUCCESS in levels
    assert Vendor.objects.filter(pk=blocked.pk).exists() and not Vendor.objects.filter(pk=free.pk).exists()


def test_rows_that_can_all_go_still_get_the_confirmation(client, admin_user):
    """Rows no service refuses (every admin that soft-deletes has some): Django's page, confirmed."""
    from catalog.services import vendor_member_add
    from tests.catalog.factories import staff_actor

    vendor = VendorFactory()
    vendor_member_add(vendor=vendor, user=UserFactory(), role=VendorMember.Role.STAFF, actor=staff_actor())
    free = VendorFactory()
    rows = [
        (Vendor, free),
        (VendorMember, VendorMember.objects.get(vendor=vendor)),
        (Category, CategoryFactory()),
        (Product, ProductFactory(vendor=vendor)),
        (Zone, ZoneFactory()),
        (Customer, CustomerFactory()),
        (Order, advance(OrderFactory(), OrderStatus.CANCELLED)),
    ]
    client.force_login(admin_user)
    for model, row in rows:
        delete_url, list_url = _urls(model, row.pk)
        for url, data in [(delete_url, None), (list_url, _bulk([row.pk]))]:
            html = _page(client, url, data, "fr")
            assert CONFIRM_INPUT in html and "Suppression impossible" not in texts(html), url
        response = client.post(list_url, _bulk([row.pk], post="yes"))
        assert [m.level for m in get_messages(response.wsgi_request)] == [SUCCESS], model
        assert not model.objects.filter(pk=row.pk).exists(), model


def _bulk_page_queries(client: Any, selected: list[Any]) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        html = _page(client, "/admin/catalog/vendor/", _bulk(selected), "fr")
    return html, len(captured)


def test_the_soft_delete_page_takes_as_many_queries_for_many_rows_and_counts_up_to_a_bound(
    client, admin_user
):
    """30 blocked vendors take as many queries as 2; a vendor's 101 products are counted up to
    100 ("plus de 100"), never all read, and the first 20 named."""
    from okada.core.deletion import HARD_DELETE_COUNTED

    few = [ProductFactory().vendor for _ in range(2)]
    many = [ProductFactory().vendor for _ in range(30)]
    crowded = VendorFactory()
    for _ in range(HARD_DELETE_COUNTED + 1):
        ProductFactory(vendor=crowded)
    client.force_login(admin_user)
    _bulk_page_queries(client, [v.pk for v in few])  # caches warmed
    _, with_few = _bulk_page_queries(client, [v.pk for v in few])
    html, with_many = _bulk_page_queries(client, [v.pk for v in many])
    assert with_many == with_few
    page = texts(html)
    assert "Produits\u00a0: 30" in page, page
    # The selected rows refused: the first 20 named, then the others counted.
    assert page.count("Vendeur\u00a0:") == 20, page
    assert "et 10 autres vendeurs" in page, page

    html, with_crowded = _bulk_page_queries(client, [crowded.pk])
    assert with_crowded == with_few
    page = texts(html)
    assert "Produits\u00a0: plus de 100" in page, page
    assert "et d\u2019autres produits (plus de 100 en tout)" in page, page
    assert page.count("Produit\u00a0:") == 20, page


@pytest.mark.parametrize("may", ["view", "change"])
def test_a_view_only_user_gets_neither_the_page_nor_the_delete(client, may):
    """Without the delete permission (view only; view and change, who has other actions): the
    delete page is refused (403), and the action, its page or its confirmation, deletes nothing."""
    user = UserFactory(username="regard", is_staff=True)
    codenames = [f"{p}_{m}" for p in ("view", may) for m in ("vendor", "zone")]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    # A vendor that could go, a zone that could not (a customer's).
    rows: list[tuple[Any, Any]] = [(Vendor, VendorFactory()), (Zone, CustomerFactory().zone)]
    client.force_login(user)
    for model, row in rows:
        delete_url, list_url = _urls(model, row.pk)
        assert client.get(delete_url).status_code == 403
        assert client.post(delete_url, {"post": "yes"}).status_code == 403
        for data in (_bulk([row.pk]), _bulk([row.pk], post="yes")):
            # The user is offered no delete action: the POST shows the list again (no action at
            # all) or goes back to it saying no action was chosen; no delete page, no delete.
            response = client.post(list_url, data)
            html = response.content.decode()
            assert response.status_code in (200, 302), (list_url, response.status_code)
            assert CONFIRM_INPUT not in html and "Suppression impossible" not in html
            assert SUCCESS not in [m.level for m in get_messages(response.wsgi_request)]
        assert model.objects.filter(pk=row.pk).exists()
