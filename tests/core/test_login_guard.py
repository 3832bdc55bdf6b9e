"""Brute force on every password login: the admin's form and POST /api/v1/auth/token share one
lock-out (okada.core.login_guard), which survives a Redis outage in each process's memory."""

from __future__ import annotations

import io
import logging
import random
import socket
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from okada.core.api import ratelimit
from okada.credentials.models import PersonalToken
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import Api, problem

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass"
LOCKED_FR = "Trop de tentatives de connexion"
LOCKED_EN = "Too many failed logins for this account or from this address: try again in"
LIMITS = {
    "OKADA_API_LOGIN_RATE_LIMIT": "3/15minutes",  # one username from one address
    "OKADA_API_LOGIN_ADDRESS_RATE_LIMIT": "6/15minutes",
    "OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT": "5/15minutes",
}


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch):
    """Redis is reachable again, and no memory counts are left from another test."""
    ratelimit._breaker.until = 0.0
    monkeypatch.setattr(ratelimit, "_local", ratelimit._LocalCounts())
    with override_settings(**LIMITS):
        yield
    ratelimit._breaker.until = 0.0


@pytest.fixture
def staff():
    """A staff user (and vendor member) with a fresh name: its counters start empty."""
    user = UserFactory(username=f"ops-{uuid.uuid4().hex[:8]}", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    VendorFactory().members.create(user=user)
    return user


def _address() -> str:
    """A fresh client address (its counter starts empty)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _admin_login(username: str, password: str, address: str, *, language: str = "") -> tuple[Client, str]:
    client = Client(REMOTE_ADDR=address)
    if language:
        client.post("/i18n/setlang/", {"language": language, "next": "/admin/login/"})
    response = client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    return client, response.content.decode() if response.status_code == 200 else ""


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _token(username: str, password: str, address: str) -> int:
    return (
        Api(REMOTE_ADDR=address).post("/auth/token", {"username": username, "password": password}).status_code
    )


def test_the_admin_locks_a_username_out_of_an_address_after_repeated_failures(staff):
    here = _address()
    for _ in range(3):
        client, page = _admin_login(staff.username, "guess", here)
        assert not _logged_in(client)
        assert LOCKED_FR not in page
    client, page = _admin_login(staff.username, PASSWORD, here)  # the right one, refused
    assert not _logged_in(client)
    assert LOCKED_FR in page  # French by default
    client, page = _admin_login(staff.username, PASSWORD, here, language="en")
    assert not _logged_in(client)
    assert LOCKED_EN in page
    # One address cannot lock its owner out: from their own address they log in.
    client, _page = _admin_login(staff.username, PASSWORD, _address())
    assert _logged_in(client)


def test_an_address_guessing_many_accounts_is_locked_out(staff):
    here = _address()
    for n in range(6):
        _admin_login(f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", here)
    client, page = _admin_login(staff.username, PASSWORD, here)
    assert not _logged_in(client)
    assert LOCKED_FR in page
    client, _page = _admin_login(staff.username, PASSWORD, _address())
    assert _logged_in(client)


def test_guesses_at_one_account_from_many_addresses_lock_it(staff):
    for _ in range(5):
        _admin_login(staff.username, "guess", _address())
    client, page = _admin_login(staff.username, PASSWORD, _address())
    assert not _logged_in(client)
    assert LOCKED_FR in page
    assert _token(staff.username, PASSWORD, _address()) == 429


def test_a_success_clears_the_usernames_failures(staff):
    here = _address()
    for _ in range(2):
        _admin_login(staff.username, "guess", here)
    assert _logged_in(_admin_login(staff.username, PASSWORD, here)[0])
    for _ in range(2):
        _admin_login(staff.username, "guess", here)
    assert _logged_in(_admin_login(staff.username, PASSWORD, here)[0])  # 2 + 2, cleared between


def test_guesses_through_the_api_and_the_admin_add_up(staff):
    here = _address()
    _admin_login(staff.username, "guess", here)
    _admin_login(staff.username, "guess", here)
    assert _token(staff.username, "guess", here) == 401
    locked = Api(REMOTE_ADDR=here).post("/auth/token", {"username": staff.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert problem(locked)["code"] == "throttled"
    assert not _logged_in(_admin_login(staff.username, PASSWORD, here)[0])
    assert not PersonalToken.objects.exists()


def test_spellings_of_one_username_count_together(staff):
    here = _address()
    for spelling in (staff.username.upper(), f" {staff.username} ", staff.username):
        assert _token(spelling, "guess", here) == 401
    assert _token(staff.username, PASSWORD, here) == 429


def test_ipv6_addresses_count_per_64(staff):
    for host in (1, 2, 3):
        _admin_login(staff.username, "guess", f"2001:db8:0:7::{host}")
    assert not _logged_in(_admin_login(staff.username, PASSWORD, "2001:db8:0:7::ffff")[0])
    assert _logged_in(_admin_login(staff.username, PASSWORD, "2001:db8:0:8::1")[0])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_redis_the_lock_out_still_holds_in_memory(staff, caplog):
    here = _address()
    with (
        override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"),
        caplog.at_level(logging.WARNING, logger="okada.core.api.ratelimit"),
    ):
        for _ in range(3):
            assert _token(staff.username, "guess", here) == 401
        assert _token(staff.username, PASSWORD, here) == 429
        client, page = _admin_login(staff.username, PASSWORD, here)
        assert not _logged_in(client)
        assert LOCKED_FR in page
    assert "Redis unavailable" in caplog.text
    assert not PersonalToken.objects.exists()


def test_without_redis_a_right_password_still_logs_in_and_clears_the_memory_count(staff):
    here = _address()
    with override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"):
        for _ in range(2):
            _admin_login(staff.username, "guess", here)
        assert _logged_in(_admin_login(staff.username, PASSWORD, here)[0])
        for _ in range(2):
            _admin_login(staff.username, "guess", here)
        assert _logged_in(_admin_login(staff.username, PASSWORD, here)[0])


def test_memory_counts_are_bounded(monkeypatch):
    """A flood of new names during an outage cannot grow the process without bound: past the
    bound a new name is not counted (fails open), known ones still are; a count taken back to
    nothing gives its room back; expired counts are swept to make room."""
    counts = ratelimit._LocalCounts()
    monkeypatch.setattr(counts, "MAX_KEYS", 2)
    far = 2**40
    assert counts.incr("a", far) == 1
    assert counts.incr("b", far) == 1
    assert counts.incr("c", far) is None
    assert counts.incr("a", far) == 2
    counts.decr("b")  # taken back to nothing: "b" gives its room back
    assert counts.incr("d", 1.0) == 1
    counts.pruned_at = 0.0
    assert counts.incr("e", far) == 1  # "d" had expired (at t=1): swept to make room
    assert set(counts.counts) == {"a", "e"}


def test_unlock_login_lets_a_locked_out_account_in_at_once(staff):
    here = _address()
    for n in range(5):
        _admin_login(staff.username, "guess", here if n < 3 else _address())
    assert not _logged_in(_admin_login(staff.username, PASSWORD, _address())[0])  # the account's lock
    out = io.StringIO()
    call_command("unlock_login", staff.username.upper(), stdout=out)
    assert "cleared the failed logins" in out.getvalue()
    assert _logged_in(_admin_login(staff.username, PASSWORD, here)[0])  # the pair's count too


@pytest.mark.parametrize("typo", ["not-an-ip", "10.0.0.300", "203.0.113.7:51234", ""])
def test_unlock_login_refuses_an_address_that_is_not_one_and_clears_nothing(staff, typo):
    # A typo once cleared a counter no login ever uses and said "cleared": the operator left
    # believing the address unlocked. Now it is refused and nothing is cleared.
    here = _address()
    for _ in range(3):
        _admin_login(staff.username, "guess", here)
    with pytest.raises(CommandError, match=r"--address .* is not an IP address"):
        call_command("unlock_login", staff.username, "--address", typo, stdout=io.StringIO())
    assert not _logged_in(_admin_login(staff.username, PASSWORD, here)[0])  # still locked out


@pytest.mark.parametrize("blank", ["", "  "])
def test_unlock_login_refuses_a_blank_username(staff, blank):
    # `unlock_login "$USER_NAME"` with the variable unset said "cleared the failed logins of ''":
    # no login has a blank username, so nothing the operator meant was cleared.
    here = _address()
    for _ in range(3):
        _admin_login(staff.username, "guess", here)
    with pytest.raises(CommandError, match="username"):
        call_command("unlock_login", blank, "--address", here, stdout=io.StringIO())
    assert not _logged_in(_admin_login(staff.username, PASSWORD, here)[0])  # nothing cleared


def test_unlock_login_with_an_ipv6_address_clears_its_64(staff):
    # IPv6 addresses count per /64: any address of that /64 names the same counter.
    net = f"2001:db8:{random.randrange(1, 0xFFFF):x}:{random.randrange(1, 0xFFFF):x}"
    for n in range(6):  # six usernames: only the address's count reaches its limit
        _admin_login(f"guess-{uuid.uuid4().hex[:8]}", "guess", f"{net}::{n + 1}")
    assert not _logged_in(_admin_login(staff.username, PASSWORD, f"{net}::99")[0])  # the address's lock
    call_command("unlock_login", staff.username, "--address", f"{net}::abcd", stdout=io.StringIO())
    assert _logged_in(_admin_login(staff.username, PASSWORD, f"{net}::99")[0])


def test_unlock_login_says_when_redis_cannot_be_reached(staff):
    with (
        override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"),
        pytest.raises(CommandError, match="Redis cannot be reached"),
    ):
        call_command("unlock_login", staff.username)


def test_a_mistyped_rate_setting_is_a_system_check_error():
    from okada.core.checks import rate_settings_parse

    assert rate_settings_parse() == []
    with override_settings(OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT="fifty a day"):
        (error,) = rate_settings_parse()
    assert error.id == "okada.E003"
    assert "OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT" in error.msg and "not a rate" in error.msg


def _through_proxy_login(username: str, password: str, *, peer: str, forwarded_for: str) -> bool:
    client = Client(REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded_for)
    client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})
    return _logged_in(client)


def test_behind_the_local_proxy_one_clients_guesses_lock_that_client_not_everyone(staff, settings):
    # gunicorn gives every request through a local proxy REMOTE_ADDR 127.0.0.1: counted against
    # it, one client's guesses locked every user of the proxy out.
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1"]
    guesser, honest = _address(), _address()
    for n in range(6):
        _through_proxy_login(
            f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", peer="127.0.0.1", forwarded_for=guesser
        )
    assert not _through_proxy_login(staff.username, PASSWORD, peer="127.0.0.1", forwarded_for=guesser)
    assert _through_proxy_login(staff.username, PASSWORD, peer="127.0.0.1", forwarded_for=honest)
    # The API's token endpoint alike.
    for forwarded_for, expected in ((guesser, 429), (honest, 201)):
        api = Api(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)
        assert (
            api.post("/auth/token", {"username": staff.username, "password": PASSWORD}).status_code
            == expected
        )


def test_a_peer_that_is_no_trusted_proxy_cannot_escape_its_lockout_by_naming_other_clients(staff, settings):
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1"]
    here = _address()
    for n in range(6):  # a new made-up client each time
        _through_proxy_login(
            f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", peer=here, forwarded_for=_address()
        )
    assert not _through_proxy_login(staff.username, PASSWORD, peer=here, forwarded_for=_address())
    client, page = _admin_login(staff.username, PASSWORD, here)
    assert not _logged_in(client)
    assert LOCKED_FR in page


def test_ipv4_clients_of_a_dual_stack_socket_count_as_their_ipv4_address(staff, settings):
    # gunicorn bound to [::] (GUNICORN_BIND) sees an IPv4 peer as ::ffff:a.b.c.d. Read as IPv6,
    # the local proxy (::ffff:127.0.0.1) was no trusted proxy, so its clients all counted as it,
    # and every IPv4 client fell in one /64 (::/64): one guesser locked everybody out.
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1"]
    guesser, honest = _address(), _address()
    for n in range(6):
        _through_proxy_login(
            f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", peer="::ffff:127.0.0.1", forwarded_for=guesser
        )
    assert not _through_proxy_login(staff.username, PASSWORD, peer="::ffff:127.0.0.1", forwarded_for=guesser)
    assert _through_proxy_login(staff.username, PASSWORD, peer="::ffff:127.0.0.1", forwarded_for=honest)
    # Straight from IPv4 clients, no proxy.
    guesser, honest = f"::ffff:{_address()}", f"::ffff:{_address()}"
    for n in range(6):
        _admin_login(f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", guesser)
    assert not _logged_in(_admin_login(staff.username, PASSWORD, guesser)[0])
    assert _logged_in(_admin_login(staff.username, PASSWORD, honest)[0])


def test_a_proxy_that_writes_the_port_after_the_client_still_keeps_clients_apart(staff, settings):
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1"]
    guesser, honest = _address(), _address()
    for n in range(6):
        name = f"nobody-{n}-{uuid.uuid4().hex[:6]}"
        _through_proxy_login(name, "guess", peer="127.0.0.1", forwarded_for=f"{guesser}:4711")
    for client, expected in ((f"{guesser}:5000", False), (f"{honest}:4711", True)):
        assert (
            _through_proxy_login(staff.username, PASSWORD, peer="127.0.0.1", forwarded_for=client) is expected
        )


@pytest.mark.parametrize("header", ["HTTP_X_REAL_IP", "HTTP_FORWARDED"])
def test_a_client_cannot_escape_its_lockout_by_naming_itself_in_headers_the_proxy_passes_on(
    staff, settings, header
):
    # nginx passes Forwarded and X-Real-IP on as the client wrote them unless it is told to set
    # them: only X-Forwarded-For, which it appends to, names the client.
    settings.OKADA_TRUSTED_PROXIES = ["127.0.0.1"]

    def naming_itself() -> dict[str, Any]:
        return {header: f"for={_address()}" if header == "HTTP_FORWARDED" else _address()}

    for n in range(6):
        browser = Client(REMOTE_ADDR="127.0.0.1", **naming_itself())
        browser.post("/admin/login/", {"username": f"nobody-{n}-{uuid.uuid4().hex[:6]}", "password": "guess"})
    browser = Client(REMOTE_ADDR="127.0.0.1", **naming_itself())
    browser.post("/admin/login/", {"username": staff.username, "password": PASSWORD, "next": "/admin/"})
    assert not _logged_in(browser)
