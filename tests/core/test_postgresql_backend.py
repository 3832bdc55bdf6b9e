"""okada.core.postgresql: a kept connection's health check skips `SELECT 1` when its socket is
quiet, and asks PostgreSQL whenever it is not (a dropped connection is still replaced)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connection, connections

from okada.core.postgresql.base import DatabaseWrapper


def _last_statement(pid: int) -> str:
    """What PostgreSQL says the backend `pid` ran last (pg_stat_activity), read on another connection."""
    with psycopg.connect(**connection.get_connection_params()) as other:
        row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0])


def _next_request() -> None:
    """Between two requests, as the handler signals them: the connection is kept (CONN_MAX_AGE)
    and checked again before the next request's first statement."""
    request_finished.send(sender=None)
    request_started.send(sender=None)


@pytest.fixture
def kept_connection() -> Iterator[int]:
    """The backend pid of a connection that just ran a recognisable statement."""
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'health-check-marker'")
    yield connection.connection.info.backend_pid


@pytest.mark.django_db(transaction=True)
def test_a_quiet_kept_connection_is_reused_without_a_round_trip(kept_connection):
    _next_request()
    connection.close_if_health_check_failed()
    assert connection.connection.info.backend_pid == kept_connection
    # PostgreSQL received nothing: Django's check would have left `SELECT 1` there.
    assert _last_statement(kept_connection) == "SELECT 'health-check-marker'"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


@pytest.mark.django_db(transaction=True)
def test_a_connection_with_something_to_read_is_asked_and_kept_when_it_answers(kept_connection):
    # A notification waiting on the socket: not a dropped connection, but the socket is not quiet,
    # so the check falls back to Django's SELECT 1, which passes, and the connection is kept.
    with connection.cursor() as cursor:
        cursor.execute("LISTEN okada_health_check")
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("NOTIFY okada_health_check")
    _next_request()
    connection.close_if_health_check_failed()
    assert connection.connection.info.backend_pid == kept_connection
    assert _last_statement(kept_connection) == "SELECT 1"
    with connection.cursor() as cursor:
        cursor.execute("UNLISTEN *")


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_by_the_orms_next_query(kept_connection):
    request_finished.send(sender=None)
    with psycopg.connect(**connection.get_connection_params()) as other:
        stopped = other.execute("SELECT pg_terminate_backend(%s, 10000)", [kept_connection]).fetchone()
    assert stopped == (True,)
    request_started.send(sender=None)
    with connection.cursor() as cursor:  # no OperationalError: replaced before the statement
        cursor.execute("SELECT 3")
        assert cursor.fetchone() == (3,)
    assert connection.connection.info.backend_pid != kept_connection


@pytest.mark.django_db
def test_inside_a_transaction_the_check_asks_postgresql():
    # Not idle (a test's transaction here): the quiet socket proves nothing about the transaction.
    assert not connection.get_autocommit()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    wrapper = connections[DEFAULT_DB_ALIAS]
    assert isinstance(wrapper, DatabaseWrapper)
    assert wrapper._quiet_and_idle() is False
    assert wrapper.is_usable() is True
