"""Shared fixtures. Tests run against the real PostgreSQL and Redis that `make test` starts."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from okada.core.api import ratelimit
from okada.core.api.auth import forget_credentials


def pytest_configure(config: pytest.Config) -> None:
    # One clear line instead of a wall of tracebacks when the services are not there.
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=5,
        ).close()
    except psycopg.OperationalError as exc:
        pytest.exit(
            f"cannot connect to PostgreSQL at {db['HOST']}:{db['PORT']} (DATABASE_URL): "
            f"{str(exc).strip().splitlines()[0]} -- run `make up` or fix DATABASE_URL",
            returncode=2,
        )


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (a Redis database reserved for tests) and no API
    credential kept by this process."""
    cache.clear()
    forget_credentials()
    yield


@pytest.fixture(autouse=True)
def _rate_windows_start_with_the_test(monkeypatch):
    """Rate-limit windows are aligned on the clock, so a test whose requests straddled a boundary
    saw its counts start again (a lock-out test failed that way in CI). The limiter's clock starts
    each test one second into a day, the first second of each of its windows (a minute, 15
    minutes, an hour: each divides a day), and then runs as the real one."""
    started = time.time()
    day_start = (started // 86400 + 1) * 86400
    monkeypatch.setattr(ratelimit, "clock", lambda: day_start + 1 + (time.time() - started))


@pytest.fixture(autouse=True)
def _english_outside_requests():
    """Code run by a test outside a request (services, tasks) speaks English, so tests may match
    messages as written in the code. Requests choose their own language (the admin: French by
    default); the French catalogue is checked whole by tests/core/test_translations.py."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(username="staff", password="pw", is_staff=True)


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw", email="r@x.cm")


@pytest.fixture
def order_number_sequence():
    """`order_number_sequence(9_999_998)`: the next order number is 9,999,999.

    Sequences ignore the test's rollback, so the fixture puts the sequence back afterwards (the
    orders that used the moved values are rolled back with the test).
    """
    from django.db import DEFAULT_DB_ALIAS, connection, connections

    with connection.cursor() as cur:
        cur.execute("SELECT last_value, is_called FROM orders_order_number_seq")
        saved = cur.fetchone()

    def move(last_value: int) -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT setval('orders_order_number_seq', %s)", [last_value])

    yield move
    # On a connection of its own: the test's transaction may have been broken by a failure.
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT setval('orders_order_number_seq', %s, %s)", saved)
    finally:
        other.close()
