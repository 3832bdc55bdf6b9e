"""Permissions read in the page's language on the user and role pages, their pickers, their
read-only view and the refusal to grant what one lacks (okada.core.permission_labels)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from okada.core.roles import FINANCE, OPERATIONS
from tests.catalog.factories import UserFactory
from tests.languages import admin_page

pytestmark = pytest.mark.django_db

ENGLISH_WORDS = ("Can add", "Can change", "Can delete", "Can view", "historical", "Can ")

# (French, English) labels of a sample: ours, historical, custom, third-party.
SAMPLE = [
    ("Catalogue | catégorie | Peut ajouter des catégories", "Catalog | category | Can add categories"),
    ("Commandes | commande | Peut modifier les commandes", "Orders | order | Can change orders"),
    (
        "Catalogue | historique des catégories | Peut voir l\u2019historique des catégories",
        "Catalog | history of categories | Can view the history of categories",
    ),
    (
        "Commandes | historique des commandes | Peut supprimer de l\u2019historique des commandes",
        "Orders | history of orders | Can delete from the history of orders",
    ),
    (
        "Catalogue | stock | Peut enregistrer un inventaire",
        "Catalog | stock | Can record a stock count",
    ),
    ("Catalogue | stock | Peut voir les stocks", "Catalog | stock | Can view stock"),
    ("Sessions | session | Peut supprimer les sessions", "Sessions | session | Can delete sessions"),
    (
        "Types de contenus | type de contenu | Peut voir les types de contenu",
        "Content Types | content type | Can view content types",
    ),
    (
        "Administration | entrée d\u2019historique | Peut voir les entrées d\u2019historique",
        "Administration | log entry | Can view log entries",
    ),
    (
        "Authentification et autorisation | groupe | Peut ajouter des groupes",
        "Authentication and Authorization | group | Can add groups",
    ),
    (
        "Tâches périodiques | crontab | Peut modifier les crontabs",
        "Periodic Tasks | crontab | Can change crontabs",
    ),
    (
        "Tâches périodiques | tâche périodique | Peut voir les tâches périodiques",
        "Periodic Tasks | periodic task | Can view periodic tasks",
    ),
    (
        "Tâches périodiques | suivi des tâches périodiques | Peut voir les suivis des tâches périodiques",
        "Periodic Tasks | periodic task track | Can view periodic task tracks",
    ),
    (  # beat's own catalogue spells "intervale"
        "Tâches périodiques | intervalle | Peut supprimer les intervalles",
        "Periodic Tasks | interval | Can delete intervals",
    ),
    (
        "Santé de la base | statistiques de requête | Peut voir les statistiques de requête",
        "Database health | query statistics | Can view query statistics",
    ),
]


class Options(HTMLParser):
    """The options of the <select name=`name`>, by their text."""

    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name, self.inside = name, False
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "select":
            self.inside = dict(attrs).get("name") == self.name
        elif tag == "option" and self.inside:
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.texts:
            self.texts[-1] += data


def options(html: str, name: str) -> list[str]:
    parser = Options(name)
    parser.feed(html)
    return [" ".join(text.split()) for text in parser.texts]


def assert_reads_in_its_language(fr: list[str], en: list[str]) -> None:
    assert len(fr) == len(en) == Permission.objects.count()
    assert [o for o in fr if any(word in o for word in ENGLISH_WORDS)] == []
    assert set(fr).isdisjoint(en)  # every label changes with the language: none left in English
    for french, english in SAMPLE:
        assert french in fr and english in en, (french, english)
    assert fr == sorted(fr, key=str.lower) and en == sorted(en, key=str.lower)  # as the picker sorts


def test_the_role_page_names_every_permission_in_the_pages_language(client, admin_user):
    client.force_login(admin_user)
    url = f"/admin/auth/group/{Group.objects.get(name=OPERATIONS).pk}/change/"
    fr = options(admin_page(client, url, "fr"), "permissions")
    en = options(admin_page(client, url, "en"), "permissions")
    assert_reads_in_its_language(fr, en)


def test_the_user_page_names_every_permission_in_the_pages_language(client, admin_user):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_category", "view_historicalorder"])
    )
    client.force_login(admin_user)
    url = f"/admin/auth/user/{clerk.pk}/change/"
    fr = options(admin_page(client, url, "fr"), "user_permissions")
    en = options(admin_page(client, url, "en"), "user_permissions")
    assert_reads_in_its_language(fr, en)


def test_a_role_read_by_someone_who_may_only_view_it_lists_its_permissions_in_the_pages_language(client):
    reader = UserFactory(is_staff=True)
    reader.user_permissions.add(*Permission.objects.filter(codename__in=["view_group", "view_user"]))
    finance = Group.objects.get(name=FINANCE)
    finance.permissions.add(Permission.objects.get(codename="view_historicalorder"))
    client.force_login(reader)

    fr = admin_page(client, f"/admin/auth/group/{finance.pk}/change/", "fr")
    assert "Commandes | commande | Peut rembourser les commandes et suivre les remboursements dus" in fr
    assert "Commandes | historique des commandes | Peut voir l\u2019historique des commandes" in fr
    assert not any(word in fr for word in ("Can refund", "Can view", "historical"))
    en = admin_page(client, f"/admin/auth/group/{finance.pk}/change/", "en")
    assert "Orders | order | Can refund orders and follow up refunds owed" in en
    assert "Orders | history of orders | Can view the history of orders" in en

    # A user's own permissions and roles, read the same way.
    clerk = UserFactory(is_staff=True)
    clerk.groups.add(finance)
    clerk.user_permissions.add(Permission.objects.get(codename="view_historicalcategory"))
    fr = admin_page(client, f"/admin/auth/user/{clerk.pk}/change/", "fr")
    assert "Catalogue | historique des catégories | Peut voir l\u2019historique des catégories" in fr
    assert "historical" not in fr and "Can view" not in fr
    en = admin_page(client, f"/admin/auth/user/{clerk.pk}/change/", "en")
    assert "Catalog | history of categories | Can view the history of categories" in en


@pytest.mark.parametrize(
    ("language", "label"),
    [
        ("fr", "Sauvegardes | sauvegarde | Peut lancer des sauvegardes et des tests de restauration"),
        ("en", "Backups | backup | Can start backups and restore drills"),
    ],
)
def test_the_refusal_to_grant_a_permission_one_lacks_names_it_in_the_pages_language(client, language, label):
    manager = UserFactory(is_staff=True)
    manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="auth", codename__in=["view_user", "change_user"])
    )
    clerk = UserFactory(is_staff=True)
    client.force_login(manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    url = f"/admin/auth/user/{clerk.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in ("username", "first_name", "last_name", "email")}
    run_backup = Permission.objects.get(codename="run_backup")
    refused = client.post(
        url, {**data, "is_active": "on", "is_staff": "on", "user_permissions": [run_backup.pk]}
    )
    assert refused.status_code == 200
    errors = " ".join(refused.context["adminform"].form.errors["user_permissions"])
    assert label in errors, errors
    assert "backups.run_backup" not in errors
    assert not clerk.user_permissions.exists()


def _queries(client, url: str) -> int:
    client.get(url)  # warms the process-wide caches (content types), as in a running server
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_user_and_role_pages_make_as_many_queries_whatever_the_permissions_held(client, admin_user):
    client.force_login(admin_user)
    few, many = Group.objects.create(name="few"), Group.objects.create(name="many")
    few.permissions.add(Permission.objects.get(codename="add_category"))
    many.permissions.add(*Permission.objects.all())
    assert _queries(client, f"/admin/auth/group/{few.pk}/change/") == _queries(
        client, f"/admin/auth/group/{many.pk}/change/"
    )
    one, every = UserFactory(is_staff=True), UserFactory(is_staff=True)
    one.user_permissions.add(Permission.objects.get(codename="add_category"))
    every.user_permissions.add(*Permission.objects.all())
    assert _queries(client, f"/admin/auth/user/{one.pk}/change/") == _queries(
        client, f"/admin/auth/user/{every.pk}/change/"
    )

    # Read only, as a reader of roles and accounts sees them.
    reader = UserFactory(is_staff=True)
    reader.user_permissions.add(*Permission.objects.filter(codename__in=["view_group", "view_user"]))
    client.force_login(reader)
    assert _queries(client, f"/admin/auth/group/{few.pk}/change/") == _queries(
        client, f"/admin/auth/group/{many.pk}/change/"
    )
    assert _queries(client, f"/admin/auth/user/{one.pk}/change/") == _queries(
        client, f"/admin/auth/user/{every.pk}/change/"
    )
