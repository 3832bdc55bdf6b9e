"""The API key admin: list, issue (shown once), revoke (permission-checked)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from okada.credentials import resolver
from okada.credentials.models import ApiKey
from okada.credentials.services import api_key_issue
from tests.catalog.factories import UserFactory, VendorFactory
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
