"""The API key admin: list, issue (shown once), revoke (permission-checked)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from catalog.services import vendor_member_add
from okada.core.roles import OPERATIONS, SUPPORT
from okada.credentials import resolver
from okada.credentials.models import ApiKey, PersonalToken
from okada.credentials.services import api_key_issue, api_key_revoke, personal_token_issue
from tests.catalog.factories import UserFactory, VendorFactory, role_user
from tests.credentials.factories import OPERATOR

pytestmark = pytest.mark.django_db


def test_the_list_shows_keys_with_their_last_use(client, admin_user):
    api_key_issue(name="erp-awa", vendor=VendorFactory(), actor=OPERATOR)
    client.force_login(admin_user)
    response = client.get("/admin/credentials/apikey/")
    assert response.status_code == 200
    assert "erp-awa" in response.content.decode()


def test_adding_a_key_shows_it_once_and_stores_only_its_hash(client, admin_user):
    vendor = VendorFactory()
    client.force_login(admin_user)
    response = client.post(
        "/admin/credentials/apikey/add/",
        {
            "name": "caisse",
            "vendor": str(vendor.pk),
            "scopes": ["products:read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    page = response.content.decode()
    key = ApiKey.objects.get()
    secret = page.split('id="api-key-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert secret.startswith(f"okk_{key.prefix}_")
    credential = resolver.resolve(secret)
    assert credential is not None
    assert credential.scopes == {"products:read"}
    assert key.created_by == admin_user
    # The admin's history names the key by its prefix (never by its secret).
    assert LogEntry.objects.get().object_repr == f"caisse ({key.prefix})"
    assert secret not in client.get(f"/admin/credentials/apikey/{key.pk}/change/").content.decode()


def test_revoking_needs_the_change_permission(client):
    issued = api_key_issue(name="k", vendor=VendorFactory(), actor=OPERATOR)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)
    client.post("/admin/credentials/apikey/", {"action": "revoke", "_selected_action": [issued.key.pk]})
    assert ApiKey.objects.get().revoked_at is None
    viewer.user_permissions.add(Permission.objects.get(codename="change_apikey"))
    client.post("/admin/credentials/apikey/", {"action": "revoke", "_selected_action": [issued.key.pk]})
    assert ApiKey.objects.get().revoked_at is not None
    assert resolver.resolve(issued.secret) is None


def test_keys_and_tokens_are_screens_of_unfold_like_the_rest_of_the_admin(client, admin_user):
    for model in (ApiKey, PersonalToken):
        assert isinstance(admin.site._registry[model], ModelAdmin), model
    client.force_login(admin_user)
    form = client.get("/admin/credentials/apikey/add/").context["adminform"].form
    assert isinstance(form.fields["scopes"].widget, UnfoldAdminCheckboxSelectMultipleWidget)
    assert type(form.fields["name"].widget).__module__ == "unfold.widgets"


def test_the_list_says_in_french_which_keys_are_active_expired_or_revoked(client):
    vendor = VendorFactory()
    api_key_issue(name="actif", vendor=vendor, actor=OPERATOR)
    revoked = api_key_issue(name="révoqué", vendor=vendor, actor=OPERATOR).key
    api_key_revoke(key=revoked, actor=OPERATOR)
    old = api_key_issue(name="périmé", vendor=vendor, actor=OPERATOR).key
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client.force_login(role_user(OPERATIONS))
    page = client.get("/admin/credentials/apikey/").content.decode()
    assert 'data-status="active"' in page and 'data-status="revoked"' in page
    assert 'data-status="expired"' in page
    assert "Révoquer les clés sélectionnées" in page
    shown = client.get("/admin/credentials/apikey/?revoked=yes").context["cl"].result_list
    assert [k.name for k in shown] == ["révoqué"]


def test_operations_issue_a_key_shown_once_and_revoke_it(client):
    vendor = VendorFactory()
    user = role_user(OPERATIONS)
    client.force_login(user)
    response = client.post(
        "/admin/credentials/apikey/add/",
        {
            "name": "caisse",
            "vendor": str(vendor.pk),
            "scopes": ["orders:read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "Copiez-la maintenant" in page  # the page speaks French
    secret = page.split('id="api-key-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    key = ApiKey.objects.get()
    assert key.created_by == user and resolver.resolve(secret) is not None
    client.post("/admin/credentials/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert ApiKey.objects.get().revoked_by == user
    assert resolver.resolve(secret) is None


def test_support_can_neither_see_nor_issue_keys(client):
    client.force_login(role_user(SUPPORT))
    assert client.get("/admin/credentials/apikey/").status_code == 403
    response = client.post("/admin/credentials/apikey/add/", {"name": "x", "scopes": ["orders:read"]})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_revoking_a_token_needs_the_change_permission(client):
    user, vendor = UserFactory(username="ngo"), VendorFactory()
    user.set_password("pw-12345678")
    user.save()
    vendor.members.create(user=user, role="owner")
    issued = personal_token_issue(username="ngo", password="pw-12345678")
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_personaltoken"))
    client.force_login(viewer)
    url = "/admin/credentials/personaltoken/"
    assert client.get(url).context["action_form"] is None  # no action offered
    client.post(url, {"action": "revoke", "_selected_action": [issued.token.pk]})
    assert PersonalToken.objects.get().revoked_at is None
    assert resolver.resolve(issued.secret) is not None

    client.force_login(role_user(OPERATIONS))
    client.post(url, {"action": "revoke", "_selected_action": [issued.token.pk]})
    assert PersonalToken.objects.get().revoked_at is not None
    assert resolver.resolve(issued.secret) is None


def test_a_keys_or_tokens_own_page_is_read_only_and_its_post_changes_nothing(client):
    key = api_key_issue(name="caisse", vendor=VendorFactory(), actor=OPERATOR).key
    user, vendor = UserFactory(username="ewane"), VendorFactory()
    user.set_password("pw-12345678")
    user.save()
    vendor.members.create(user=user, role="owner")
    token = personal_token_issue(username="ewane", password="pw-12345678").token
    client.force_login(role_user(OPERATIONS))  # may revoke both
    for url, model, row in (
        (f"/admin/credentials/apikey/{key.pk}/change/", ApiKey, key),
        (f"/admin/credentials/personaltoken/{token.pk}/change/", PersonalToken, token),
    ):
        page = client.get(url)
        assert page.status_code == 200 and not page.context["has_change_permission"], url
        before = model.objects.values().get(pk=row.pk)
        assert client.post(url, {"name": "renamed", "_save": "Save"}).status_code == 403, url
        assert model.objects.values().get(pk=row.pk) == before


@pytest.mark.parametrize(
    ("vendor", "scopes", "expires"),
    [(False, ["sync"], ""), (True, ["products:read"], "2020-01-01")],
    ids=["storefront-with-a-vendor-scope", "expiry-in-the-past"],
)
def test_a_key_the_service_refuses_is_shown_on_the_form_not_a_500(
    client, admin_user, vendor, scopes, expires
):
    client.force_login(admin_user)
    response = client.post(
        "/admin/credentials/apikey/add/",
        {
            "name": "caisse",
            "vendor": str(VendorFactory().pk) if vendor else "",
            "scopes": scopes,
            "expires_at_0": expires,
            "expires_at_1": "10:00:00" if expires else "",
        },
    )
    assert response.status_code == 200
    assert 'id="api-key-secret"' not in response.content.decode()
    assert response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_a_view_only_user_cannot_issue_a_key_by_posting_the_add_form(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)
    response = client.post(
        "/admin/credentials/apikey/add/",
        {"name": "sneaky", "vendor": "", "scopes": ["products:read"], "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("url", "lookup"),
    [
        ("/admin/credentials/apikey/", "key_hash__startswith"),
        ("/admin/credentials/apikey/", "key_hash"),
        ("/admin/credentials/personaltoken/", "token_hash__startswith"),
        ("/admin/catalog/vendor/", "api_keys__key_hash__startswith"),
        ("/admin/auth/user/", "api_tokens__token_hash__startswith"),
    ],
)
def test_no_list_filters_on_a_hash_from_the_query_string(client, url, lookup):
    """`?key_hash__startswith=a7` showed the key only when the hash began so: whoever may view
    the keys could read a hash a character at a time. Such a filter is refused (400)."""
    vendor = VendorFactory()
    api_key_issue(name="erp-awa", vendor=vendor, actor=OPERATOR)
    member = UserFactory(username="awa")
    member.set_password("pw")
    member.save()
    vendor_member_add(vendor=vendor, user=member, role="owner", actor=OPERATOR)
    personal_token_issue(username="awa", password="pw")
    hashes = {"key_hash": ApiKey.objects.get().key_hash, "token_hash": PersonalToken.objects.get().token_hash}
    the_hash = hashes["key_hash" if "key_hash" in lookup else "token_hash"]
    value = the_hash if lookup.endswith("_hash") else the_hash[:2]
    viewer = UserFactory(is_staff=True)
    views = ["view_apikey", "view_personaltoken", "view_vendor", "view_user"]
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=views))
    client.force_login(viewer)
    response = client.get(url, {lookup: value})
    assert response.status_code == 400
    assert the_hash not in response.content.decode()
