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


def test_a_suspended_vendors_member_still_gets_a_token_that_reads_but_does_not_write(member):
    # Tokens follow what a suspended vendor's credentials may do (README "Vendor status"): read
    # and move orders, not change the catalog or stock; so logging in is not refused.
    from catalog.services import vendor_suspend
    from okada.core.actors import Actor

    _user, vendor = member
    ProductFactory(vendor=vendor)
    vendor_suspend(vendor=vendor, actor=Actor(role=Actor.STAFF, label="ops"))
    response = Api().post("/auth/token", {"username": "awa", "password": "s3cret-pass"})
    assert response.status_code == 201, response.content
    api = Api(response.json()["token"])
    assert len(api.get("/products").json()["results"]) == 1
    write = api.post("/products", {"sku": "NEW-1", "name": "Nouveau", "price_xaf": 500})
    assert write.status_code == 403
    assert problem(write)["code"] == "vendor_suspended"


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
    assert not PersonalToken.objects.exists()
    # From another address the owner still gets in (one address alone locks no one out: see
    # tests/core/test_login_guard.py for the account's and the address's own limits).
    assert (
        Api(REMOTE_ADDR="10.0.0.10")
        .post("/auth/token", {"username": "awa", "password": "s3cret-pass"})
        .status_code
        == 201
    )


def test_unknown_fields_are_refused():
    response = Api().post("/auth/token", {"username": "a", "password": "b", "remember": True})
    assert response.status_code == 400
    assert problem(response)["errors"]["remember"] == ["Champ inconnu."]  # French by default


@pytest.mark.django_db(transaction=True)
@override_settings(OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT="3/15minutes")
def test_concurrent_guesses_check_no_more_passwords_than_the_lock_out_allows(monkeypatch):
    """Each attempt is counted before its password is checked: guesses sent at once cannot all
    pass a check made before any of them failed."""
    import functools
    import threading
    import uuid

    from okada.credentials import services
    from tests.concurrency import WAIT, in_thread, poll

    username = f"racer-{uuid.uuid4().hex[:8]}"  # a fresh lock-out counter in Redis
    vendor = VendorFactory()
    user = UserFactory(username=username)
    user.set_password("s3cret-pass")
    user.save()
    vendor.members.create(user=user)
    checking, statuses, go = [], [], threading.Event()
    real = services.personal_token_issue

    def held(**kwargs):
        checking.append(kwargs["username"])
        go.wait(WAIT)  # every attempt that got this far checks its password at once
        return real(**kwargs)

    monkeypatch.setattr(services, "personal_token_issue", held)
    attempts = 8

    def guess(n: int) -> None:
        api = Api(REMOTE_ADDR=f"10.7.0.{n}")  # one address each: only the username's count matters
        statuses.append(api.post("/auth/token", {"username": username, "password": f"guess-{n}"}).status_code)

    threads = [in_thread(functools.partial(guess, n)) for n in range(attempts)]
    poll(lambda: len(checking) + statuses.count(429) == attempts, "every guess checked or refused")
    go.set()
    for thread, errors in threads:
        thread.join(WAIT)
        assert not errors, errors
    assert sorted(statuses) == [401] * 3 + [429] * 5
    right = Api(REMOTE_ADDR="10.7.1.1").post("/auth/token", {"username": username, "password": "s3cret-pass"})
    assert right.status_code == 429  # still locked out
