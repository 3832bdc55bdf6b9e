"""The delete confirmation pages (an object's delete page and the "delete selected" action's) of
every admin that offers deletion, read in French and in English: they list what the delete
removes in the page's language, with no "User_groups object (3)" (the rows of Django's link
tables for many-to-many fields), and the delete still works and is still refused as Django does.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.contrib.messages.constants import ERROR
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.text import capfirst
from django_celery_beat import models as beat

from catalog.models import Category, Product, Vendor, VendorMember
from okada.core.roles import OPERATIONS, role_label
from orders.models import Customer, Order, OrderStatus, Zone
from tests.catalog.factories import CategoryFactory, ProductFactory, UserFactory, VendorFactory
from tests.core.test_admin_french import VisibleText, english_on
from tests.hard_delete import confirm_hard_delete, counted, forge_hard_delete
from tests.languages import admin_page
from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory, advance

pytestmark = pytest.mark.django_db


# --- Rows with related rows, one for each admin that offers deletion ----------------------------


def _permissions(*codenames: str) -> list[Permission]:
    return list(Permission.objects.filter(codename__in=codenames))


@pytest.fixture
def alice() -> Any:
    """An account with a role, a group of its own and two permissions of its own (link rows)."""
    user = UserFactory(username="alice")
    seasonal = Group.objects.create(name="Saisonniers")
    seasonal.permissions.add(*_permissions("view_product", "view_order", "view_vendor"))
    user.groups.add(Group.objects.get(name=OPERATIONS), seasonal)
    user.user_permissions.add(*_permissions("view_category", "view_zone"))
    return user


def deletable_rows(alice: Any) -> dict[type, Any]:
    """A row of every model whose admin offers deletion, each with rows that depend on it, and
    none that the services refuse to delete (those pages: test_admin_soft_delete_pages)."""
    from catalog.services import vendor_member_add
    from tests.catalog.factories import staff_actor

    vendor = VendorFactory(name="Épicerie Akwa")
    member = UserFactory(username="ngo")
    vendor_member_add(vendor=vendor, user=member, role=VendorMember.Role.MANAGER, actor=staff_actor())
    interval, _ = beat.IntervalSchedule.objects.get_or_create(every=10, period=beat.IntervalSchedule.MINUTES)
    beat.PeriodicTask.objects.create(name="every ten", task="okada.noop", interval=interval)
    crontab = beat.PeriodicTask.objects.filter(crontab__isnull=False).first().crontab
    return {
        type(alice): alice,
        Group: Group.objects.get(name="Saisonniers"),
        beat.PeriodicTask: beat.PeriodicTask.objects.get(name="every ten"),
        beat.CrontabSchedule: crontab,
        beat.IntervalSchedule: interval,
        beat.ClockedSchedule: beat.ClockedSchedule.objects.create(
            clocked_time=timezone.now() + dt.timedelta(days=1)
        ),
        beat.SolarSchedule: beat.SolarSchedule.objects.create(event="sunrise", latitude=4.05, longitude=9.7),
        Vendor: vendor,
        VendorMember: VendorMember.objects.get(user=member),
        Category: CategoryFactory(),
        # Products and orders keep their vendor live: another vendor's.
        Product: ProductFactory(),
        Zone: ZoneFactory(),
        Customer: CustomerFactory(),
        # An open order holds stock: only a closed one may be deleted.
        Order: advance(OrderFactory(), OrderStatus.CANCELLED),
    }


def offers_deletion(model_admin: Any, request: Any) -> bool:
    return bool(model_admin.has_delete_permission(request)) or "delete_selected" in model_admin.get_actions(
        request
    )


def delete_pages(
    model_admin: Any, obj: Any, request: Any
) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(what, URL, POST data or None for a GET) of the delete pages an admin offers for `obj`."""
    opts = model_admin.model._meta
    if model_admin.has_delete_permission(request, obj):
        yield (
            "single",
            reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[quote(obj.pk)]),
            None,
        )
    if "delete_selected" in model_admin.get_actions(request):
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        yield "bulk", url, {"action": "delete_selected", "_selected_action": [str(obj.pk)]}


# --- What reads as English or as Django's placeholder names -------------------------------------


def texts(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    # Runs of spaces and line breaks read as one space; a non-breaking space stays (French puts
    # one before its colons: "Vendeurs\u00a0: 1").
    return [re.sub(r"[^\S\u00a0]+", " ", text).strip() for text, _ in parser.texts if text.strip()]


def english_model_names() -> set[str]:
    """Every model's names in English that French writes otherwise, and the names of Django's link
    models (made once, in whatever language was active: never the page's)."""
    from django.apps import apps

    names: set[str] = set()
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        for attr in ("verbose_name", "verbose_name_plural"):
            with translation.override("en"):
                english = capfirst(str(getattr(opts, attr)))
            with translation.override("fr"):
                french = capfirst(str(getattr(opts, attr)))
            if english != french or opts.auto_created:
                names.add(english)
    return names


def labels(html: str) -> list[str]:
    """The model names that head the page's lines ("Groupe : Saisonniers", "Groupes : 1")."""
    return [text.split(":", 1)[0].strip() for text in texts(html) if ":" in text]


def _get_or_post(client: Any, url: str, data: dict[str, Any] | None, language: str) -> str:
    if data is None:
        return admin_page(client, url, language)
    response = client.post(url, data)
    assert response.status_code == 200, (url, response.status_code)
    html = response.content.decode()
    assert f'<html lang="{language}"' in html, url
    return html


# --- Every delete page, in both languages -------------------------------------------------------


def test_every_delete_page_lists_what_it_removes_in_the_pages_language(client, admin_user, alice, rf):
    rows = deletable_rows(alice)
    request = rf.get("/admin/")
    request.user = admin_user
    offering = {
        model
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label != "testapp" and offers_deletion(model_admin, request)
    }
    assert offering - set(rows) == set(), "a row to delete for these admins"
    english_names = english_model_names()
    client.force_login(admin_user)

    read = []
    for model in offering:
        model_admin = admin.site._registry[model]
        for what, url, data in delete_pages(model_admin, rows[model], request):
            for language in ("fr", "en"):
                client.cookies["django_language"] = language
                html = _get_or_post(client, url, data, language)
                found = texts(html)
                assert not [t for t in found if "object (" in t], (url, what, language)
                assert not [t for t in found if "objet (" in t], (url, what, language)
                # The summary counts the rows selected, in the page's language.
                with translation.override(language):
                    plural = capfirst(str(model._meta.verbose_name_plural))
                count = f"{plural}\u00a0: 1" if language == "fr" else f"{plural}: 1"
                assert count in found, (url, what, language)
                if language == "fr":
                    assert english_on(html) == [], (url, what)
                    assert set(labels(html)) & english_names == set(), (url, what)
            read.append((model._meta.label, what))
    # Both pages of the admins that have both (an open order has no delete page of its own).
    assert ("auth.User", "single") in read and ("auth.Group", "bulk") in read
    assert len(read) >= 2 * len(offering) - 1


def test_a_roles_delete_page_names_the_permissions_and_members_it_unlinks(client, admin_user, alice):
    group = Group.objects.get(name="Saisonniers")
    client.force_login(admin_user)
    url = f"/admin/auth/group/{group.pk}/delete/"
    fr = texts(admin_page(client, url, "fr"))
    assert "Permission (lien supprimé)\u00a0: Catalogue | produit | Peut voir les produits" in fr
    assert "Utilisateur (lien supprimé)\u00a0: alice" in fr
    assert "Liens entre groupes et permissions\u00a0: 3" in fr
    assert "Liens entre utilisateurs et groupes\u00a0: 1" in fr
    assert "Groupes\u00a0: 1" in fr
    en = texts(admin_page(client, url, "en"))
    assert "Permission (link removed): Catalog | product | Can view products" in en
    assert "User (link removed): alice" in en
    assert "Links between groups and permissions: 3" in en and "Groups: 1" in en


def test_a_users_delete_page_names_their_roles_in_the_pages_language(client, admin_user, alice):
    client.force_login(admin_user)
    url = f"/admin/auth/user/{alice.pk}/delete/"
    fr = texts(admin_page(client, url, "fr"))
    with translation.override("fr"):
        operations = role_label(OPERATIONS)
    assert operations != OPERATIONS
    assert f"Groupe (lien supprimé)\u00a0: {operations}" in fr
    assert "Groupe (lien supprimé)\u00a0: Saisonniers" in fr
    assert not [text for text in fr if OPERATIONS in text]
    assert "Liens entre utilisateurs et groupes\u00a0: 2" in fr
    assert "Liens entre utilisateurs et permissions\u00a0: 2" in fr


def test_a_roles_delete_page_names_the_role_in_the_pages_language(client, admin_user):
    role = Group.objects.get(name=OPERATIONS)
    with translation.override("fr"):
        french = role_label(OPERATIONS)
    assert french != OPERATIONS
    client.force_login(admin_user)
    page = texts(admin_page(client, f"/admin/auth/group/{role.pk}/delete/", "fr"))
    assert [t for t in page if t.startswith("Voulez-vous vraiment supprimer")] == [
        f"Voulez-vous vraiment supprimer l\u2019objet groupe «\u00a0{french}\u00a0»\u00a0? "
        "Les éléments suivants sont liés à celui-ci et seront aussi supprimés\u00a0:"
    ]
    assert "Groupe\u00a0:" in page and page[page.index("Groupe\u00a0:") + 1] == french
    assert OPERATIONS not in page


def test_the_delete_pages_of_many_users_or_permissions_take_as_many_queries_as_of_a_few(client, admin_user):
    client.force_login(admin_user)
    client.cookies["django_language"] = "fr"
    seasonal = Group.objects.create(name="Saisonniers")

    def queries(url: str, data: dict[str, Any] | None = None) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(url, data) if data is not None else client.get(url)
        assert response.status_code == 200
        return len(captured)

    def bulk(users: list[Any]) -> int:
        selected = [str(u.pk) for u in users]
        return queries("/admin/auth/user/", {"action": "delete_selected", "_selected_action": selected})

    few = UserFactory.create_batch(2)
    many = UserFactory.create_batch(12)
    for user in few + many:
        user.groups.add(seasonal)
        user.user_permissions.add(*_permissions("view_product", "view_order"))
    assert bulk(many) == bulk(few)

    url = f"/admin/auth/group/{seasonal.pk}/delete/"
    seasonal.permissions.add(*_permissions("view_product", "view_order"))
    with_few = queries(url)
    seasonal.permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    assert seasonal.permissions.count() > 20
    assert queries(url) == with_few


# --- Refused as Django refuses; done as Django does --------------------------------------------


def test_a_delete_that_removes_rows_the_user_may_not_delete_is_still_refused(client):
    """Deleting a crontab deletes its periodic tasks: someone who may delete crontabs but not
    periodic tasks is told so by both delete pages, and their POST changes nothing."""
    staff = UserFactory(username="planner", is_staff=True)
    staff.user_permissions.add(
        *_permissions("view_crontabschedule", "delete_crontabschedule", "view_periodictask")
    )
    crontab = beat.PeriodicTask.objects.filter(crontab__isnull=False).first().crontab
    client.force_login(staff)
    url = f"/admin/django_celery_beat/crontabschedule/{crontab.pk}/delete/"
    page = admin_page(client, url, "fr")
    assert "la permission de supprimer les types d\u2019objets suivants" in page
    assert "tâche périodique" in texts(page)
    assert client.post(url, {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [str(crontab.pk)], "post": "yes"}
    client.post("/admin/django_celery_beat/crontabschedule/", bulk)
    assert beat.CrontabSchedule.objects.filter(pk=crontab.pk).exists()


@pytest.mark.parametrize("how", ["single", "bulk"])
def test_deleting_a_user_after_confirming_removes_them_and_logs_it(client, admin_user, alice, how):
    client.force_login(admin_user)
    if how == "single":
        response = client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})
    else:
        data = {"action": "delete_selected", "_selected_action": [str(alice.pk)], "post": "yes"}
        response = client.post("/admin/auth/user/", data)
    assert response.status_code == 302
    assert not type(alice).objects.filter(pk=alice.pk).exists()
    assert Group.objects.filter(name="Saisonniers").exists()  # the link went, not the role
    assert Group.user_set.through.objects.filter(user_id=alice.pk).count() == 0
    entry = LogEntry.objects.get(object_id=str(alice.pk), content_type__model="user")
    assert entry.action_flag == DELETION and entry.user == admin_user


@pytest.mark.parametrize("how", ["single", "bulk"])
def test_deleting_a_role_after_confirming_removes_it_and_logs_it(client, admin_user, alice, how):
    group = Group.objects.get(name="Saisonniers")
    client.force_login(admin_user)
    if how == "single":
        response = client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    else:
        data = {"action": "delete_selected", "_selected_action": [str(group.pk)], "post": "yes"}
        response = client.post("/admin/auth/group/", data)
    assert response.status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()
    alice.refresh_from_db()
    assert [g.name for g in alice.groups.all()] == [OPERATIONS]  # her other role stays
    assert Permission.objects.filter(codename="view_product").exists()
    entry = LogEntry.objects.get(object_id=str(group.pk), content_type__model="group")
    assert entry.action_flag == DELETION and entry.user == admin_user


# --- Hard delete (superusers): what goes with the rows, or what stops it ---------------------------


def test_the_hard_delete_page_lists_and_counts_what_goes_with_the_rows(client, admin_user):
    """A vendor deleted for good takes its memberships and API keys along: the page said "Ces 1
    éléments seront retirés" and named the vendor only."""
    from catalog.services import vendor_member_add
    from okada.credentials.models import ApiKey
    from okada.credentials.services import api_key_issue
    from tests.catalog.factories import staff_actor

    vendor = VendorFactory(name="Akwa")
    vendor_member_add(vendor=vendor, user=UserFactory(username="ngo"), role="manager", actor=staff_actor())
    api_key_issue(name="erp", vendor=vendor, actor=staff_actor())
    client.force_login(admin_user)
    post = {"action": "hard_delete_selected", "_selected_action": [str(vendor.pk)]}
    for language, lines in (
        ("fr", ["Vendeurs\u00a0: 1", "Membres des vendeurs\u00a0: 1", "Clés d\u2019API\u00a0: 1"]),
        ("en", ["Vendors: 1", "Vendor members: 1", "API keys: 1"]),
    ):
        lines.append(
            "Cet élément sera retiré définitivement de la base, avec les éléments ci-dessous qui en "
            "dépendent. Son historique est conservé. C\u2019est irréversible."
            if language == "fr"
            else "This row will be removed from the database for good, with the rows below that depend "
            "on it. Its history is kept. This cannot be undone."
        )
        client.cookies["django_language"] = language
        page = texts(_get_or_post(client, "/admin/catalog/vendor/", post, language))
        assert [line for line in lines if line not in page] == [], language
        assert not [t for t in page if "object (" in t], language

    confirm_hard_delete(client, "/admin/catalog/vendor/", [vendor.pk])
    assert not Vendor.all_objects.filter(pk=vendor.pk).exists()
    assert not ApiKey.objects.filter(vendor_id=vendor.pk).exists()


def test_the_hard_delete_page_names_the_rows_that_stop_it_and_offers_no_confirmation(client, admin_user):
    product = ProductFactory(name="Riz")
    client.force_login(admin_user)
    post = {"action": "hard_delete_selected", "_selected_action": [str(product.vendor.pk)]}
    html = _get_or_post(client, "/admin/catalog/vendor/", post, "fr")
    page = texts(html)
    assert "Produit\u00a0:" in page and "Riz (" in " ".join(page)
    assert "Oui, supprimer définitivement" not in page
    assert english_on(html) == []


def test_every_hard_delete_page_says_up_front_what_stops_it_and_offers_no_confirmation(client, admin_user):
    """Each admin that deletes for good, with a row that cannot go: the page says so, says why
    and offers no confirmation (Django's "protected objects" page). An ordered product (its order
    items keep it by the database's foreign key only) and an open order (its service refuses
    it) were offered "Oui, supprimer définitivement" and refused only after it."""
    customer = CustomerFactory()
    assert customer.zone is not None
    category = CategoryFactory()
    shelved = ProductFactory(category=category)
    ordered = ProductFactory(initial_stock=5)
    advance(
        OrderFactory(vendor=ordered.vendor, customer=customer, zone=customer.zone, items=[(ordered, 1)]),
        OrderStatus.CANCELLED,
    )
    open_order = OrderFactory()
    cases = [
        (Vendor, shelved.vendor.pk, "Produits"),
        (Category, category.pk, "Produits"),
        (Customer, customer.pk, "Commandes"),
        (Zone, customer.zone.pk, "Clients"),
        (Product, ordered.pk, "Lignes de commande"),
        (Order, open_order.pk, "Une commande en cours ne peut pas être supprimée"),
    ]
    client.force_login(admin_user)
    for model, pk, why in cases:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        html, _ = _hard_delete_page(client, url, [pk])
        page = texts(html)
        assert "Suppression définitive impossible" in page, url
        assert any(t.startswith(why) for t in page), (url, page)
        assert 'name="confirm"' not in html and "Oui, supprimer définitivement" not in page, url
        assert english_on(html) == [], url
        en = texts(_hard_delete_page(client, url, [pk], "en")[0])
        assert "Cannot be deleted for good" in en, url
        assert "This row cannot be deleted for good, for the reasons below." in en, url

        # The page only informs: a confirmation posted anyway is refused by the service.
        response = forge_hard_delete(client, url, model, [pk])
        assert response.status_code == 302, url
        assert [m for m in get_messages(response.wsgi_request) if m.level == ERROR], url
        assert model.all_objects.filter(pk=pk).exists(), url


def test_the_hard_delete_page_counts_what_stops_it_up_to_a_bound_in_as_many_queries(client, admin_user):
    """An ordered product's order items are found by a key with no index (nothing else reads
    items by product): the page counts them up to 100 ("plus de 100") rather than reading every
    order item, names the first 20, and takes as many queries for 101 as for 2."""
    from okada.core.deletion import HARD_DELETE_COUNTED

    customer = CustomerFactory()

    def ordered(n: int) -> Product:
        product = ProductFactory(initial_stock=n)
        for _ in range(n):
            OrderFactory(vendor=product.vendor, customer=customer, zone=customer.zone, items=[(product, 1)])
        return product

    few, many = ordered(2), ordered(HARD_DELETE_COUNTED + 1)
    client.force_login(admin_user)
    url = "/admin/catalog/product/"
    _hard_delete_page(client, url, [few.pk])  # caches warmed
    html, with_few = _hard_delete_page(client, url, [few.pk])
    assert "Lignes de commande\u00a0: 2" in texts(html)
    html, with_many = _hard_delete_page(client, url, [many.pk])
    assert with_many == with_few

    page = texts(html)
    assert "Lignes de commande\u00a0: plus de 100" in page, page
    assert "et d\u2019autres lignes de commande (plus de 100 en tout)" in page, page
    assert len([t for t in page if t.startswith("Ligne de commande\u00a0: 1 x ")]) == 20
    assert 'name="confirm"' not in html and english_on(html) == []
    en = texts(_hard_delete_page(client, url, [many.pk], "en")[0])
    assert "Order items: more than 100" in en and "and more order items (over 100 in all)" in en, en


def _hard_delete_page(client: Any, url: str, selected: list[Any], language: str = "fr") -> tuple[str, int]:
    """The page's HTML and the queries it took."""
    client.cookies["django_language"] = language
    post = {"action": "hard_delete_selected", "_selected_action": [str(pk) for pk in selected]}
    with CaptureQueriesContext(connection) as captured:
        html = _get_or_post(client, url, post, language)
    return html, len(captured)


def test_the_hard_delete_page_of_a_vendor_with_many_rows_counts_them_with_as_many_queries(client, admin_user):
    """A vendor's products and orders stop its deletion: the page counts them, names the first 20
    of each and says how many more, in as many queries for 50 of each as for 2 (it loaded every
    one, and each stock row's product and each membership's user and vendor with a query)."""
    from catalog.services import vendor_member_add
    from tests.catalog.factories import staff_actor

    customer = CustomerFactory()

    def vendor_with(n: int) -> Vendor:
        vendor = VendorFactory()
        for _ in range(n):
            OrderFactory(vendor=vendor, customer=customer, zone=customer.zone)  # and a product
            vendor_member_add(vendor=vendor, user=UserFactory(), role="staff", actor=staff_actor())
        return vendor

    few, many = vendor_with(2), vendor_with(50)
    client.force_login(admin_user)
    _hard_delete_page(client, "/admin/catalog/vendor/", [few.pk])  # caches warmed
    _, with_few = _hard_delete_page(client, "/admin/catalog/vendor/", [few.pk])
    html, with_many = _hard_delete_page(client, "/admin/catalog/vendor/", [many.pk])
    assert with_many == with_few

    page = texts(html)
    for line in (
        "Produits\u00a0: 50",
        "Commandes\u00a0: 50",
        "et 30 autres produits",
        "et 30 autres commandes",
    ):
        assert line in page, line
    assert len([t for t in page if t == "Produit\u00a0:"]) == 20
    assert "Oui, supprimer définitivement" not in page and english_on(html) == []
    en = texts(_hard_delete_page(client, "/admin/catalog/vendor/", [many.pk], "en")[0])
    assert "Products: 50" in en and "and 30 more products" in en and "and 30 more orders" in en


def test_the_hard_delete_page_counts_every_row_that_goes_and_names_the_first(client, admin_user):
    from catalog.services import vendor_member_add
    from tests.catalog.factories import staff_actor

    few, many = VendorFactory(name="Akwa"), VendorFactory(name="Bonapriso")
    for vendor, n in ((few, 2), (many, 21)):
        for i in range(n):
            user = UserFactory(username=f"{vendor.name.lower()}{i:02d}")
            vendor_member_add(vendor=vendor, user=user, role="staff", actor=staff_actor())
    client.force_login(admin_user)
    _hard_delete_page(client, "/admin/catalog/vendor/", [few.pk])
    _, with_few = _hard_delete_page(client, "/admin/catalog/vendor/", [few.pk])
    html, with_many = _hard_delete_page(client, "/admin/catalog/vendor/", [many.pk])
    assert with_many == with_few

    page = texts(html)
    assert "Membres des vendeurs\u00a0: 21" in page and "Vendeurs\u00a0: 1" in page
    assert "et 1 autre membre d\u2019un vendeur" in page  # the singular
    listed = [t for t in page if t.startswith("bonapriso")]
    assert len(listed) == 20 and "bonapriso20" not in " ".join(listed)
    en = texts(_hard_delete_page(client, "/admin/catalog/vendor/", [many.pk], "en")[0])
    assert "and 1 more vendor member" in en

    confirm_hard_delete(client, "/admin/catalog/vendor/", [many.pk])
    assert not Vendor.all_objects.filter(pk=many.pk).exists()
    assert not VendorMember.all_objects.filter(vendor_id=many.pk).exists()


def test_the_hard_delete_confirmation_deletes_only_what_the_page_counted(client, admin_user):
    """A membership added after the page was shown would have gone unsaid: the confirmation
    deletes nothing, says so and shows the page again, counted anew."""
    from catalog.services import vendor_member_add
    from tests.catalog.factories import staff_actor

    vendor = VendorFactory()
    vendor_member_add(vendor=vendor, user=UserFactory(), role="staff", actor=staff_actor())
    client.force_login(admin_user)
    url = "/admin/catalog/vendor/"
    html, _ = _hard_delete_page(client, url, [vendor.pk])
    shown = counted(html)
    vendor_member_add(vendor=vendor, user=UserFactory(), role="staff", actor=staff_actor())

    post = {"action": "hard_delete_selected", "_selected_action": [str(vendor.pk)], "confirm": "yes"}
    for stale in ({"counted": shown}, {}):  # and a confirmation that carries no count at all
        response = client.post(url, {**post, **stale})
        assert response.status_code == 200
        page = texts(response.content.decode())
        assert "Membres des vendeurs\u00a0: 2" in page
        assert any("rien n\u2019a été supprimé" in t for t in page), page
        assert VendorMember.all_objects.filter(vendor=vendor).count() == 2

    client.post(url, {**post, "counted": counted(response.content.decode())})
    assert not Vendor.all_objects.filter(pk=vendor.pk).exists()


@pytest.mark.parametrize("confirm", [False, True])
def test_a_hard_delete_of_more_rows_than_the_cap_is_refused_and_deletes_nothing(client, admin_user, confirm):
    """ "Select all" on a big table would have walked it: over HARD_DELETE_MAX rows, a message."""
    from okada.core.admin import HARD_DELETE_MAX

    zones = [ZoneFactory() for _ in range(HARD_DELETE_MAX + 1)]
    client.force_login(admin_user)
    client.cookies["django_language"] = "fr"
    post = {
        "action": "hard_delete_selected",
        "_selected_action": [str(zones[0].pk)],
        "select_across": "1",
        **({"confirm": "yes"} if confirm else {}),
    }
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/admin/orders/zone/", post, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert [m for m in messages if f"Au plus {HARD_DELETE_MAX} éléments" in m], messages
    assert Zone.all_objects.count() >= HARD_DELETE_MAX + 1
    assert not [q for q in captured.captured_queries if "DELETE" in q["sql"]]

    # As many as the cap: the page counts them and names the first 20.
    selected = {
        "action": "hard_delete_selected",
        "_selected_action": [str(z.pk) for z in zones[:HARD_DELETE_MAX]],
    }
    page = texts(_get_or_post(client, "/admin/orders/zone/", selected, "fr"))
    assert f"Zones\u00a0: {HARD_DELETE_MAX}" in page and f"et {HARD_DELETE_MAX - 20} autres zones" in page


# --- Bounded: rows are counted, never all loaded ------------------------------------------------


def _unbounded_reads(captured: CaptureQueriesContext, table: str) -> list[str]:
    """The queries that read `table`'s rows without a bound (no EXISTS, COUNT or LIMIT)."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if f'"{table}"' in q["sql"] and not any(w in q["sql"] for w in ("EXISTS", "COUNT(", "LIMIT"))
    ]


def test_a_user_with_50k_log_entries_and_history_rows_is_refused_without_loading_them(client, admin_user):
    """Django's delete page walked every row naming the user (50,000 log entries loaded and
    listed) before saying no; the refusal is now asked first, one EXISTS per relation."""
    from django.contrib.admin.models import CHANGE
    from django.contrib.contenttypes.models import ContentType

    clerk = UserFactory(username="clerk", is_staff=True)
    vendor = VendorFactory()
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                user=clerk,
                content_type=ContentType.objects.get_for_model(Vendor),
                object_id=str(vendor.pk),
                object_repr=str(vendor),
                action_flag=CHANGE,
                change_message="[]",
            )
            for _ in range(50_000)
        ],
        batch_size=5000,
    )
    history = Vendor.history.model
    first = history.objects.filter(id=vendor.pk).first()
    copies = []
    for _ in range(50_000):
        copy = history.objects.model(
            **{f.attname: getattr(first, f.attname) for f in history._meta.concrete_fields}
        )
        copy.pk, copy.history_user_id = None, clerk.pk
        copies.append(copy)
    history.objects.bulk_create(copies, batch_size=5000)
    client.force_login(admin_user)
    client.cookies["django_language"] = "fr"

    pages = [
        (f"/admin/auth/user/{clerk.pk}/delete/", None),
        ("/admin/auth/user/", {"action": "delete_selected", "_selected_action": [str(clerk.pk)]}),
    ]
    for url, data in pages:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(url, data) if data else client.get(url)
        assert response.status_code == 200
        assert "désactivez plutôt le compte" in response.content.decode()
        assert _unbounded_reads(captured, "django_admin_log") == []
        assert _unbounded_reads(captured, history._meta.db_table) == []
        assert len(captured) <= 60, len(captured)
    client.post(pages[0][0], {"post": "yes"})  # Django shows the refusal again
    assert type(clerk).objects.filter(pk=clerk.pk, is_active=True).exists()


def test_a_roles_delete_page_counts_thousands_of_members_and_names_the_first(client, admin_user):
    role = Group.objects.create(name="Livreurs")
    users = UserFactory.create_batch(3)
    role.user_set.add(*users)
    client.force_login(admin_user)
    url = f"/admin/auth/group/{role.pk}/delete/"
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    model = type(users[0])
    many = model.objects.bulk_create(
        [model(username=f"livreur{i:05d}", password="!") for i in range(3000)], batch_size=1000
    )
    role.user_set.add(*many)
    with CaptureQueriesContext(connection) as captured:
        page = texts(admin_page(client, url, "fr"))
    assert len(captured) <= len(few)
    counts = [t for t in page if t.startswith("Liens entre utilisateurs et groupes\u00a0:")]
    assert ["".join(c for c in t if c.isdigit()) for t in counts] == ["3003"], counts
    assert len([t for t in page if t.startswith("Utilisateur (lien supprimé)")]) == 20
    assert any(t.startswith("et 2") and t.endswith("liens entre utilisateurs et groupes") for t in page), page
    assert _unbounded_reads(captured, "auth_user_groups") == []
