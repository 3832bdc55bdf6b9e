"""Brute force on every password login: the admin's form and POST /api/v1/auth/token share one
lock-out (okada.core.login_guard), which survives a Redis outage in each process's memory."""

from __future__ import annotations

import io
import logging
import socket
import uuid

import pytest
from django.test import Client, override_settings

from okada.core.api import ratelimit
from okada.credentials.models import PersonalToken
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import Api, problem

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass"


@pytest.fixture(autouse=True)
def _closed_breaker():
    ratelimit._breaker.until = 0.0
    yield
    ratelimit._breaker.until = 0.0


@pytest.fixture
def staff():
    """A staff user with a fresh name: its lock-out counter starts empty in Redis and in memory."""
    user = UserFactory(username=f"ops-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def _admin_login(
    username: str, password: str, *, address: str = "10.9.0.1", language: str = ""
) -> tuple[Client, str]:
    client = Client(REMOTE_ADDR=address)
    if language:
        client.post("/i18n/setlang/", {"language": language, "next": "/admin/login/"})
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    return client, response.content.decode() if response.status_code == 200 else ""


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_the_admin_locks_an_account_out_after_repeated_failures(staff):
    for _ in range(3):
        client, page = _admin_login(staff.username, "guess")
        assert not _logged_in(client)
        assert "Too many failed logins" not in page and "Trop de tentatives" not in page
    client, page = _admin_login(staff.username, PASSWORD, address="10.9.0.2")  # the right one, elsewhere
    assert not _logged_in(client)
    assert "Trop de tentatives de connexion" in page  # French by default
    client, page = _admin_login(staff.username, PASSWORD, address="10.9.0.3", language="en")
    assert not _logged_in(client)
    assert "Too many failed logins for this account or from this address: try again in" in page


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_an_address_guessing_many_accounts_is_locked_out(staff):
    address = f"10.{uuid.uuid4().int % 250}.1.1"
    for n in range(3):
        _admin_login(f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", address=address)
    client, page = _admin_login(staff.username, PASSWORD, address=address)
    assert not _logged_in(client)
    assert "Trop de tentatives de connexion" in page
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.9.9")  # another address
    assert _logged_in(client)


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_a_success_clears_the_accounts_failures(staff):
    for _ in range(2):
        _admin_login(staff.username, "guess", address="10.9.1.1")
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.1.2")
    assert _logged_in(client)
    for _ in range(2):
        _admin_login(staff.username, "guess", address="10.9.1.3")
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.1.4")
    assert _logged_in(client)  # 2 + 2 failures, but the success in between cleared the first two


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_guesses_through_the_api_and_the_admin_add_up(staff):
    vendor = VendorFactory()
    vendor.members.create(user=staff)
    _admin_login(staff.username, "guess", address="10.9.2.1")
    _admin_login(staff.username, "guess", address="10.9.2.2")
    api = Api(REMOTE_ADDR="10.9.2.3")
    assert api.post("/auth/token", {"username": staff.username, "password": "guess"}).status_code == 401
    locked = api.post("/auth/token", {"username": staff.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert problem(locked)["code"] == "throttled"
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.2.4")
    assert not _logged_in(client)
    assert not PersonalToken.objects.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_without_redis_the_lock_out_still_holds_in_memory(staff, caplog):
    vendor = VendorFactory()
    vendor.members.create(user=staff)
    with (
        override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"),
        caplog.at_level(logging.WARNING, logger="okada.core.api.ratelimit"),
    ):
        api = Api(REMOTE_ADDR="10.9.3.1")
        for _ in range(3):
            assert (
                api.post("/auth/token", {"username": staff.username, "password": "guess"}).status_code == 401
            )
        assert api.post("/auth/token", {"username": staff.username, "password": PASSWORD}).status_code == 429
        client, page = _admin_login(staff.username, PASSWORD, address="10.9.3.2")
        assert not _logged_in(client)
        assert "Trop de tentatives de connexion" in page
    assert "Redis unavailable" in caplog.text
    assert not PersonalToken.objects.exists()


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="3/15minutes")
def test_without_redis_a_right_password_still_logs_in_and_clears_the_memory_count(staff):
    with override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"):
        for _ in range(2):
            _admin_login(staff.username, "guess", address="10.9.4.1")
        client, _page = _admin_login(staff.username, PASSWORD, address="10.9.4.2")
        assert _logged_in(client)
        for _ in range(2):
            _admin_login(staff.username, "guess", address="10.9.4.3")
        client, _page = _admin_login(staff.username, PASSWORD, address="10.9.4.4")
        assert _logged_in(client)


def test_memory_counts_are_bounded(monkeypatch):
    """A flood of new addresses during an outage cannot grow the process without bound: past the
    bound a new key is not counted (fails open), known keys still are."""
    counts = ratelimit._LocalCounts()
    monkeypatch.setattr(counts, "MAX_KEYS", 2)
    far = 2**40
    assert counts.incr("a", far) == 1
    assert counts.incr("b", far) == 1
    assert counts.incr("c", far) is None
    assert counts.incr("a", far) == 2
    assert counts.incr("d", 1.0) is None  # full of live keys
    counts.delete("b")
    assert counts.incr("d", 1.0) == 1
    assert counts.incr("e", far) == 1  # "d" had expired (at t=1): pruned to make room


@override_settings(OKADA_API_LOGIN_RATE_LIMIT="2/15minutes")
def test_unlock_login_lets_a_locked_out_account_in_at_once(staff):
    from django.core.management import call_command

    for _ in range(2):
        _admin_login(staff.username, "guess", address="10.9.5.1")
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.5.2")
    assert not _logged_in(client)
    out = io.StringIO()
    call_command("unlock_login", staff.username.upper(), "--address", "10.9.5.1", stdout=out)
    assert f"cleared login:user:{staff.username}" in out.getvalue()
    client, _page = _admin_login(staff.username, PASSWORD, address="10.9.5.1")
    assert _logged_in(client)


def test_unlock_login_says_when_redis_cannot_be_reached(staff):
    from django.core.management import CommandError, call_command

    with (
        override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"),
        pytest.raises(CommandError, match="Redis cannot be reached"),
    ):
        call_command("unlock_login", staff.username)
