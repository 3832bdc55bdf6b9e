"""POST /api/v1/auth/token: tokens for vendor members, brute force stopped in Redis."""

from __future__ import annotations

import pytest
from django.test import override_settings

from okada.credentials.models import PersonalToken
from tests.catalog.factories import ProductFactory, UserFactory, VendorFactory
from tests.credentials.factories import Api, problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    vendor = VendorFactory()
    user = UserFactory(username="awa")
    user.set_password("s3cret-pass")
    user.save()
    vendor.members.create(user=user)
    return user, vendor


def test_a_member_gets_a_token_that_works_for_their_vendor(member):
    _user, vendor = member
    ProductFactory(vendor=vendor)
    response = Api().post("/auth/token", {"username": "awa", "password": "s3cret-pass"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    assert body["expires_at"].endswith("Z")
    assert response["Cache-Control"] == "no-store"
    products = Api(body["token"]).get("/products")
    assert products.status_code == 200
    assert len(products.json()["results"]) == 1


def test_a_token_answer_is_never_stored_for_replay(member):
    api = Api()
    first = api.post("/auth/token", {"username": "awa", "password": "s3cret-pass"}, HTTP_IDEMPOTENCY_KEY="t")
    second = api.post("/auth/token", {"username": "awa", "password": "s3cret-pass"}, HTTP_IDEMPOTENCY_KEY="t")
    assert first.json()["token"] != second.json()["token"]
    assert PersonalToken.objects.count() == 2


def test_wrong_passwords_and_non_members_get_the_same_401(member):
    UserFactory(username="outsider").set_password("pw")
    for body in (
        {"username": "awa", "password": "nope"},
        {"username": "ghost", "password": "nope"},
        {"username": "outsider", "password": "pw"},
    ):
        response = Api().post("/auth/token", body)
        assert response.status_code == 401
        # No Accept-Language: the project's default language, French.
        assert problem(response)["detail"].startswith("Identifiant ou mot de passe incorrect, ou pas membre")
    assert not PersonalToken.objects.exists()


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_repeated_failures_lock_the_username_out_even_with_the_right_password(member):
    api = Api(REMOTE_ADDR="10.0.0.9")
    for _ in range(3):
        assert api.post("/auth/token", {"username": "awa", "password": "guess"}).status_code == 401
    locked = api.post("/auth/token", {"username": "awa", "password": "s3cret-pass"})
    assert locked.status_code == 429
    assert problem(locked)["code"] == "throttled"
    assert int(locked["Retry-After"]) > 0
    # From another address too: the username is locked.
    assert (
        Api(REMOTE_ADDR="10.0.0.10")
        .post("/auth/token", {"username": "awa", "password": "s3cret-pass"})
        .status_code
        == 429
    )
    assert not PersonalToken.objects.exists()


def test_unknown_fields_are_refused():
    response = Api().post("/auth/token", {"username": "a", "password": "b", "remember": True})
    assert response.status_code == 400
    assert problem(response)["errors"]["remember"] == ["Champ inconnu."]  # French by default
