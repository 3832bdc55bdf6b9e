"""The 403 page (templates/403.html, okada.core.forbidden): an admin refusal that says why shows
its words, in the admin's language (French unless English was chosen), on an admin page; a bare
refusal a generic sentence saying whom to ask; outside the admin a plain page; under /api/ a
refusal stays problem+json. A refused CSRF check (CSRF_FAILURE_VIEW) is the same page saying
what to do, never Django's bare English one, and changes nothing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import get_resolver
from django.utils import translation
from django.views.defaults import permission_denied

from tests.admin_client import csrf_client, csrf_post
from tests.catalog.factories import CategoryFactory, UserFactory

pytestmark = pytest.mark.django_db

RUN_URL = "/admin/partitions/partitionedtable/run/"  # the service refuses who lacks the permission
PLAN_URL = "/admin/partitions/partitionedtable/orders_orderevent/plan/"  # a bare PermissionDenied
REFUSAL_FR = (
    "Vous n\u2019avez pas la permission «\u00a0Peut lancer la maintenance des partitions\u00a0» "
    "(partitions.run_partition_maintenance)\u00a0: demandez à un administrateur un rôle qui l\u2019a."
)
REFUSAL_EN = (
    "You do not have the permission “Can run partition maintenance now” "
    "(partitions.run_partition_maintenance): ask an administrator for a role that has it."
)
GENERIC_FR = "Vous n\u2019avez pas la permission de faire cela. Demandez à un administrateur"
GENERIC_EN = "You do not have permission to do this. Ask an administrator"


def handler403(request: Any, exception: Exception) -> Any:
    """The project's 403 handler, as Django finds it (okada.urls)."""
    handler: Any = get_resolver().resolve_error_handler(403)
    return handler(request, exception)


def _staff(*perms: str) -> Any:
    user = UserFactory(is_staff=True)
    for name in perms:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _client(user: Any, language: str | None = None) -> Client:
    client = Client()
    client.force_login(user)
    if language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


def _admin_page(response: Any) -> str:
    """The 403's body, checked to be an admin page (unfold's layout, the link home)."""
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'href="/admin/"' in page and "okada-panel" in page
    return page


@pytest.mark.parametrize(
    ("language", "refusal", "other"), [(None, REFUSAL_FR, REFUSAL_EN), ("en", REFUSAL_EN, REFUSAL_FR)]
)
def test_a_refusal_that_says_why_shows_its_words_in_the_admins_language(language, refusal, other):
    page = _admin_page(_client(_staff("partitions.view_partitionedtable"), language).post(RUN_URL))
    assert refusal in page and other not in page
    assert "403 Forbidden" not in page


@pytest.mark.parametrize(("language", "generic"), [(None, GENERIC_FR), ("en", GENERIC_EN)])
def test_a_bare_refusal_shows_the_generic_sentence(language, generic):
    page = _admin_page(_client(_staff(), language).get(PLAN_URL))
    assert generic in page


def test_an_account_out_of_reach_keeps_its_title_and_its_way_back():
    # okada.core.admin.UserAdmin answers with the same page, its title and link its own.
    from catalog.models import VendorMember
    from catalog.services import vendor_member_add
    from tests.catalog.factories import VendorFactory, staff_actor

    owner = UserFactory(username="awa")
    vendor_member_add(vendor=VendorFactory(), user=owner, role=VendorMember.Role.OWNER, actor=staff_actor())
    editor = _staff("auth.view_user", "auth.change_user")
    page = _admin_page(_client(editor).get(f"/admin/auth/user/{owner.pk}/password/"))
    assert "Vous ne pouvez pas modifier awa" in page
    assert f'href="/admin/auth/user/{owner.pk}/change/"' in page and "Retour au compte" in page


def test_an_anonymous_refusal_under_the_admin_is_an_admin_page():
    request = RequestFactory().get("/admin/anything/")
    request.user = AnonymousUser()
    response = handler403(request, PermissionDenied("Pas ici."))
    page = _admin_page(response)
    assert "Pas ici." in page


def test_outside_the_admin_the_page_is_plain_and_needs_no_admin_context():
    request = RequestFactory().get("/i18n/somewhere")  # no user: refused before authentication
    page = handler403(request, PermissionDenied("Not here."))
    assert page.status_code == 403 and "Not here." in page.content.decode()
    # Django's own view, given nothing but the exception (no admin context): the plain page.
    bare = permission_denied(RequestFactory().get("/admin/"), PermissionDenied())
    body = bare.content.decode()
    assert bare.status_code == 403 and "okada-panel" in body and "403 Forbidden" not in body


def test_under_the_api_a_refusal_stays_problem_json():
    request = RequestFactory().get("/api/v1/anything")
    response = handler403(request, PermissionDenied("an admin sentence"))
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == 403 and body["code"] == "not_allowed"
    assert "an admin sentence" not in response.content.decode()


CSRF_FR = (
    "Le formulaire a expiré ou a été envoyé depuis un autre site\u00a0: rouvrez le formulaire et "
    "envoyez-le à nouveau."
)
CSRF_EN = "The form expired or was sent from another site: open the form again and send it again."
AGAIN_FR, AGAIN_EN = "Rouvrir le formulaire", "Open the form again"
DJANGOS_CSRF_PAGE = "CSRF verification failed"


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize(
    ("language", "message", "other"), [(None, CSRF_FR, CSRF_EN), ("en", CSRF_EN, CSRF_FR)]
)
def test_an_admin_form_without_its_csrf_token_says_what_to_do_and_changes_nothing(
    token, language, message, other
):
    category = CategoryFactory(name_fr="Boissons", name_en="Drinks", slug="boissons")
    client = csrf_client(UserFactory(is_staff=True, is_superuser=True))  # enforces CSRF
    if language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    url = f"/admin/catalog/category/{category.pk}/change/"
    data = {"name_fr": "Jus", "name_en": "Juice", "slug": "jus", "position": "0", "parent": ""}
    # A token of the right shape that is not the session's: "CSRF token incorrect".
    sent = {} if token is None else {"csrfmiddlewaretoken": "a" * 64}
    page = _admin_page(client.post(url, {**data, **sent}))
    assert message in page and other not in page
    assert DJANGOS_CSRF_PAGE not in page
    category.refresh_from_db()
    assert (category.name_fr, category.slug) == ("Boissons", "boissons")
    # The same form with the session's token is saved: the refusal was the token's alone.
    assert csrf_post(client, url, data).status_code == 302
    category.refresh_from_db()
    assert (category.name_fr, category.slug) == ("Jus", "jus")


def test_an_expired_login_form_shows_the_admin_page_to_an_anonymous_user():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "awa", "password": "x"})
    page = _admin_page(response)
    assert CSRF_FR in page and DJANGOS_CSRF_PAGE not in page


@pytest.mark.parametrize(("accept", "message"), [("fr", CSRF_FR), ("en", CSRF_EN)])
def test_outside_the_admin_a_csrf_refusal_is_the_plain_page_in_the_requests_language(accept, message):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/i18n/setlang/", {"language": "en"}, HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 403
    page = response.content.decode()
    assert message in page and "okada-panel" in page and DJANGOS_CSRF_PAGE not in page
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies  # the language was not set


def test_under_the_api_a_csrf_refusal_is_problem_json():
    # No API endpoint reads a session (bearer credentials only, DRF's views are CSRF-exempt), so
    # no request reaches this through a URL; the view the middleware would call answers so.
    from django.urls import get_callable

    view: Any = get_callable(settings.CSRF_FAILURE_VIEW)
    response = view(RequestFactory().post("/api/v1/products"), reason="CSRF token missing.")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == 403 and body["code"] == "not_allowed"
    assert body["type"] == "urn:okada:problem:not_allowed" and body["errors"] == {}


def _form_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token in the form"
    return match.group(1)


@pytest.mark.parametrize(("language", "label"), [(None, AGAIN_FR), ("en", AGAIN_EN)])
def test_a_csrf_refusal_links_back_to_the_form_whose_fresh_copy_is_saved(language, label):
    # Reloading the 403 page would send the same POST and its stale token again: the page links
    # to a GET of the form (its own address, query string kept), whose new token is accepted.
    category = CategoryFactory(name_fr="Boissons", name_en="Drinks", slug="boissons")
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    if language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    url = f"/admin/catalog/category/{category.pk}/change/?_changelist_filters=q%3Dboi"
    data = {"name_fr": "Jus", "name_en": "Juice", "slug": "jus", "position": "0", "parent": ""}
    page = _admin_page(client.post(url, data))  # no token: the form was opened elsewhere
    assert f'<a href="{url}"' in page and label in page
    form = client.get(url)
    assert form.status_code == 200
    token = _form_token(form.content.decode())
    assert client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    category.refresh_from_db()
    assert (category.name_fr, category.slug) == ("Jus", "jus")


def test_an_expired_login_form_links_to_a_fresh_one_that_logs_in():
    user = UserFactory(username="ngo", is_staff=True)
    user.set_password("pw-12345678")
    user.save()
    client = Client(enforce_csrf_checks=True)
    url = "/admin/login/?next=/admin/catalog/"
    page = _admin_page(client.post(url, {"username": "ngo", "password": "pw-12345678"}))
    assert f'<a href="{url}"' in page and AGAIN_FR in page
    form = client.get(url)
    assert form.status_code == 200
    token = _form_token(form.content.decode())
    response = client.post(url, {"username": "ngo", "password": "pw-12345678", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/admin/catalog/"


def test_a_csrf_refusal_links_only_to_a_path_of_this_site():
    from django.urls import get_callable

    request = RequestFactory().post("/admin/anything/")
    request.user = AnonymousUser()
    request.path = "//evil.example/admin/anything/"  # read as another site by a browser
    view: Any = get_callable(settings.CSRF_FAILURE_VIEW)
    with translation.override("en"):
        page = view(request, reason="CSRF token missing.").content.decode()
    assert CSRF_EN in page and "evil.example" not in page and AGAIN_EN not in page


ORIGIN_REASON = "Origin checking failed - https://evil.example does not match any trusted origins."


@pytest.mark.parametrize("debug", [True, False])
def test_djangos_reason_for_a_csrf_refusal_is_shown_only_with_debug_on(settings, debug):
    # "Origin checking failed" is a misconfiguration (CSRF_TRUSTED_ORIGINS, the proxy's SSL
    # header), not an expired form: a developer needs to see it; a production page never shows it.
    settings.DEBUG = debug
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/admin/").status_code == 200  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/admin/catalog/category/add/", {"csrfmiddlewaretoken": token}, HTTP_ORIGIN="https://evil.example"
    )
    page = _admin_page(response)
    assert CSRF_FR in page
    assert (ORIGIN_REASON in page) is debug
    missing = _admin_page(client.post("/admin/catalog/category/add/", {}))
    assert ("CSRF token missing." in missing) is debug


NOT_FOUND_FR = "Cette page n\u2019existe pas, ou ce qu\u2019elle montrait a été supprimé depuis"
NOT_FOUND_EN = "This page does not exist, or what it showed has been deleted since"


@pytest.mark.parametrize(
    ("language", "message", "other"), [(None, NOT_FOUND_FR, NOT_FOUND_EN), ("en", NOT_FOUND_EN, NOT_FOUND_FR)]
)
def test_a_missing_admin_page_is_an_admin_page_in_its_language_saying_what_to_do(language, message, other):
    # Django's bare English "Not Found / The requested resource was not found on this server.",
    # with no way back: a stale link, or the button of an order deleted since the page was shown.
    client = _client(UserFactory(is_staff=True, is_superuser=True), language)
    missing = "00000000-0000-7000-8000-000000000000"
    for response in (
        client.get("/admin/nothing/here/"),
        client.post(f"/admin/orders/order/{missing}/transition/", {"to": "accepted"}),
        client.post(f"/admin/catalog/product/{missing}/adjust-stock/", {}),
    ):
        assert response.status_code == 404
        page = response.content.decode()
        assert 'href="/admin/"' in page and "okada-panel" in page  # the admin's layout, a way back
        assert message in page and other not in page
        assert "The requested resource was not found" not in page


def test_outside_the_admin_a_missing_page_is_the_plain_page_and_the_api_keeps_problem_json():
    response = Client().get("/nowhere", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    page = response.content.decode()
    assert NOT_FOUND_EN in page and "okada-panel" in page and 'href="/admin/"' not in page
    api = Client().get("/api/v1/nowhere")
    assert api.status_code == 404 and api["Content-Type"] == "application/problem+json"


UNREADABLE_FR = "Cette adresse ou ce formulaire n\u2019a pas pu être lu"
UNREADABLE_EN = "This address or form could not be read"


@pytest.mark.parametrize(
    ("language", "message", "other"),
    [(None, UNREADABLE_FR, UNREADABLE_EN), ("en", UNREADABLE_EN, UNREADABLE_FR)],
)
def test_a_request_the_admin_cannot_read_is_an_admin_page_in_its_language(language, message, other):
    # A list filter the admin does not allow (a tampered link) was Django's bare "Bad Request (400)".
    client = _client(UserFactory(is_staff=True, is_superuser=True), language)
    response = client.get("/admin/credentials/apikey/?key_hash__startswith=a")
    assert response.status_code == 400
    page = response.content.decode()
    assert 'href="/admin/"' in page and "okada-panel" in page
    assert message in page and other not in page and "Bad Request" not in page


@pytest.mark.parametrize(
    ("accept", "message"),
    [("fr", "Une erreur s\u2019est produite de notre côté"), ("en", "Something went wrong on our side")],
)
def test_a_crash_is_a_page_in_the_readers_language_not_djangos_bare_english(settings, accept, message):
    settings.ROOT_URLCONF = "tests.testapp.crash_urls"
    response = Client(raise_request_exception=False).get("/crash", HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 500
    page = response.content.decode()
    assert message in page and "Server Error (500)" not in page
    assert "crash on purpose" not in page


@pytest.mark.parametrize(
    ("language", "message", "other"),
    [
        (None, "Cette adresse est celle d\u2019un bouton", "This address belongs to a button"),
        ("en", "This address belongs to a button", "Cette adresse est celle d\u2019un bouton"),
    ],
)
def test_a_buttons_address_opened_as_a_link_says_so_and_leads_back(language, message, other):
    # "Back up now" and "run maintenance" opened from a bookmark answered a blank page.
    client = _client(UserFactory(is_staff=True, is_superuser=True), language)
    for url, back in (
        ("/admin/backups/backup/back-up-now/", "/admin/backups/backup/"),
        (RUN_URL, "/admin/partitions/partitionedtable/"),
    ):
        response = client.get(url)
        assert response.status_code == 405 and response["Allow"] == "POST"
        page = response.content.decode()
        assert message in page and other not in page and "okada-panel" in page
        assert f'href="{back}"' in page
