"""Shared fixtures. Tests run against the real PostgreSQL and Redis that `make test` starts."""

from __future__ import annotations

import datetime as dt
import functools
import time

import pytest
from django.core.cache import cache
from django.utils import timezone

from okada.core.api import ratelimit
from okada.core.api.auth import forget_credentials
from okada.partitions import ddl
from okada.partitions import services as partition_services


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


@functools.cache
def _partitions_made_for() -> dt.date:
    """The UTC month the migrations made the test database's partitions around (once a run)."""
    from django.db.migrations.recorder import MigrationRecorder

    applied = MigrationRecorder.Migration.objects.get(app="orders", name="0001_initial").applied
    return ddl.utc_month_of(applied)


@pytest.fixture(autouse=True)
def _partition_plans_in_the_test_databases_month(monkeypatch):
    """The migrations make each partitioned table's months around the month they run in, once,
    when the run starts: in a run that crossed the first of a month (UTC), the planner saw the
    newest month of its horizon missing, and the tests that expect nothing to do, or no partition
    missing, on the real tables failed. The partition planner's clock stops at the test's start
    (so a test that reads the month agrees with the code that reads it again), and never goes
    past the last instant of the month the partitions were made for."""
    started = timezone.now()

    def clock() -> dt.datetime:
        month_end = ddl.month_bounds(_partitions_made_for())[1] - dt.timedelta(microseconds=1)
        return min(started, month_end)

    monkeypatch.setattr(partition_services, "clock", clock)


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
