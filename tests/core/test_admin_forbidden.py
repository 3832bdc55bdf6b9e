"""The 403 page (templates/403.html, okada.core.forbidden): an admin refusal that says why shows
its words, in the admin's language (French unless English was chosen), on an admin page; a bare
refusal a generic sentence saying whom to ask; outside the admin a plain page; under /api/ a
refusal stays problem+json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import get_resolver
from django.views.defaults import permission_denied

from tests.catalog.factories import UserFactory

pytestmark = pytest.mark.django_db

RUN_URL = "/admin/partitions/partitionedtable/run/"  # the service refuses who lacks the permission
PLAN_URL = "/admin/partitions/partitionedtable/orders_orderevent/plan/"  # a bare PermissionDenied
REFUSAL_FR = "Vous n\u2019avez pas la permission de faire cela (partitions.run_partition_maintenance)."
REFUSAL_EN = "You do not have the permission to do this (partitions.run_partition_maintenance)."
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
