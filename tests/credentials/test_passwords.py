"""A new or disabled password revokes the user's personal API tokens, whatever sets it
(okada.credentials.passwords).

A token taken with a stolen password must stop working once the owner or staff change the
password or disable it: the admin's password form (CSRF token posted, as a browser does; "Disable
password-based authentication" too), `set_password()` or `set_unusable_password()` + `save()` in
code. Another user's tokens and API keys (not tied to a password) keep working.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from okada.credentials.models import ApiKey, PersonalToken
from tests.admin_client import csrf_client, csrf_post
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import Api, vendor_key

pytestmark = pytest.mark.django_db

NEW = "N0uveau-mot-2-passe"


def _member(vendor: Any, username: str) -> Any:
    user = UserFactory(username=username)
    user.set_password(f"old-pass-of-{username}")
    user.save()
    vendor.members.create(user=user)
    return user


def _token(username: str) -> str:
    response = Api().post("/auth/token", {"username": username, "password": f"old-pass-of-{username}"})
    assert response.status_code == 201, response.content
    return response.json()["token"]


@pytest.fixture
def setup() -> dict[str, Any]:
    vendor = VendorFactory()
    awa, bob = _member(vendor, "awa"), _member(vendor, "bob")
    data = {"vendor": vendor, "awa": awa, "bob": bob, "key": vendor_key(vendor)}
    data["awa_token"], data["bob_token"] = _token("awa"), _token("bob")
    for secret in (data["awa_token"], data["bob_token"], data["key"]):
        assert Api(secret).get("/products").status_code == 200
    return data


def _only_awas_tokens_revoked(setup: dict[str, Any]) -> None:
    assert Api(setup["awa_token"]).get("/products").status_code == 401
    assert Api(setup["bob_token"]).get("/products").status_code == 200
    assert Api(setup["key"]).get("/products").status_code == 200
    assert not PersonalToken.objects.filter(user=setup["awa"], revoked_at__isnull=True).exists()
    assert PersonalToken.objects.get(user=setup["bob"]).revoked_at is None
    assert ApiKey.objects.get().revoked_at is None


def test_the_admins_password_form_revokes_the_users_tokens(setup):
    client = csrf_client(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = csrf_post(
        client,
        f"/admin/auth/user/{setup['awa'].pk}/password/",
        {"password1": NEW, "password2": NEW, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    setup["awa"].refresh_from_db()
    assert setup["awa"].check_password(NEW)
    _only_awas_tokens_revoked(setup)


def test_set_password_and_save_revoke_the_users_tokens(setup):
    awa = setup["awa"]
    awa.set_password(NEW)
    awa.save()
    _only_awas_tokens_revoked(setup)
    # A token taken with the new password works.
    response = Api().post("/auth/token", {"username": "awa", "password": NEW})
    assert Api(response.json()["token"]).get("/products").status_code == 200


def test_disabling_password_login_in_the_admin_revokes_the_users_tokens(setup):
    client = csrf_client(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = csrf_post(
        client,
        f"/admin/auth/user/{setup['awa'].pk}/password/",
        {"usable_password": "false", "unset-password": "1"},
    )
    assert response.status_code == 302, response.content
    setup["awa"].refresh_from_db()
    assert not setup["awa"].has_usable_password()
    _only_awas_tokens_revoked(setup)
    # And no new token with the old password.
    assert Api().post("/auth/token", {"username": "awa", "password": "old-pass-of-awa"}).status_code == 401


def test_set_unusable_password_and_save_revoke_the_users_tokens(setup):
    awa = setup["awa"]
    awa.set_unusable_password()
    awa.save()
    _only_awas_tokens_revoked(setup)


def test_disabling_an_already_disabled_password_revokes_tokens_left_from_before(setup):
    # A token that outlived an earlier disabling (e.g. one done before the hook existed).
    awa = setup["awa"]
    awa.set_unusable_password()
    awa.save()
    PersonalToken.objects.filter(user=awa).update(revoked_at=None)
    awa.set_unusable_password()
    awa.save()
    _only_awas_tokens_revoked(setup)


def test_deactivating_the_account_revokes_its_tokens_for_good(setup):
    awa = setup["awa"]
    awa.is_active = False
    awa.save()
    _only_awas_tokens_revoked(setup)
    awa.is_active = True
    awa.save()  # reactivated: the tokens taken before stay revoked
    assert Api(setup["awa_token"]).get("/products").status_code == 401


def test_saving_an_inactive_account_again_or_without_is_active_revokes_nothing_new(setup):
    awa = setup["awa"]
    awa.is_active = False
    awa.save(update_fields=["first_name"])  # is_active not written: nothing revoked
    awa.is_active = True
    assert Api(setup["awa_token"]).get("/products").status_code == 200


def test_a_save_that_does_not_write_the_disabled_password_revokes_nothing(setup):
    awa = setup["awa"]
    awa.set_unusable_password()
    awa.first_name = "Awa"
    awa.save(update_fields=["first_name"])  # the password column is not written
    assert Api(setup["awa_token"]).get("/products").status_code == 200
    awa.refresh_from_db()
    awa.first_name = "Awa N."
    awa.save()  # the stored password again
    assert Api(setup["awa_token"]).get("/products").status_code == 200


def test_saving_a_user_without_a_new_password_or_logging_in_revokes_nothing(setup):
    awa = setup["awa"]
    awa.first_name = "Awa"
    awa.save()
    assert awa.check_password("old-pass-of-awa")  # a hash upgrade at login is no password change
    assert Api(setup["awa_token"]).get("/products").status_code == 200


def test_expired_tokens_are_left_as_they_are(setup):
    awa = setup["awa"]
    PersonalToken.objects.filter(user=awa).update(expires_at=timezone.now())
    awa.set_password(NEW)
    awa.save()
    assert PersonalToken.objects.get(user=awa).revoked_at is None


def test_the_hook_is_in_the_password_validators():
    names = [v["NAME"] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert "okada.credentials.passwords.RevokeTokensOnPasswordChange" in names


def test_a_login_save_with_the_password_deferred_reads_nothing_more(setup, django_assert_num_queries):
    # `update_fields` without the password is looked at before the password itself: reading a
    # deferred one would load it from the database (a second query) on every such save.
    from django.contrib.auth import get_user_model

    awa = get_user_model().objects.only("id", "last_login").get(pk=setup["awa"].pk)
    awa.last_login = timezone.now()
    with django_assert_num_queries(1):  # the UPDATE alone
        awa.save(update_fields=["last_login"])
    assert "password" not in awa.__dict__  # still deferred: never read
    assert Api(setup["awa_token"]).get("/products").status_code == 200


def test_the_stored_password_is_read_from_the_database_the_save_writes_to(setup):
    # No second database here: a save to an alias that is not configured must fail on that alias,
    # which shows the stored password is read through it (a router's replica would lag).
    from django.contrib.auth import get_user_model
    from django.utils.connection import ConnectionDoesNotExist

    from okada.credentials.passwords import note_password_disabled

    awa = setup["awa"]
    awa.set_unusable_password()
    with pytest.raises(ConnectionDoesNotExist):
        note_password_disabled(sender=get_user_model(), instance=awa, using="no-such-database")
