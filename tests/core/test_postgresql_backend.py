"""okada.core.postgresql: a kept connection's health check skips `SELECT 1` when the connection
was used a moment ago and its socket is quiet, and asks PostgreSQL otherwise (a dropped
connection is still replaced)."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connection, connections

from okada.core.postgresql.base import QUIET_SECONDS, DatabaseWrapper


def _wrapper() -> DatabaseWrapper:
    wrapper = connections[DEFAULT_DB_ALIAS]
    assert isinstance(wrapper, DatabaseWrapper)
    return wrapper


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
def test_a_quiet_connection_used_a_moment_ago_is_reused_without_a_round_trip(kept_connection):
    _next_request()
    connection.close_if_health_check_failed()
    assert connection.connection.info.backend_pid == kept_connection
    # PostgreSQL received nothing: Django's check would have left `SELECT 1` there.
    assert _last_statement(kept_connection) == "SELECT 'health-check-marker'"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_for_longer_is_asked(kept_connection):
    request_finished.send(sender=None)
    wrapper = _wrapper()
    assert wrapper.used_at is not None
    wrapper.used_at -= QUIET_SECONDS + 1  # its request ended over QUIET_SECONDS ago
    request_started.send(sender=None)
    connection.close_if_health_check_failed()
    assert connection.connection.info.backend_pid == kept_connection
    assert _last_statement(kept_connection) == "SELECT 1"


@pytest.mark.django_db(transaction=True)
def test_a_connection_with_something_to_read_is_asked_and_kept_when_it_answers(kept_connection):
    # A notification waiting on the socket: not a dropped connection, but the socket is not quiet,
    # so the check falls back to Django's SELECT 1, which passes, and the connection is kept.
    with connection.cursor() as cursor:
        cursor.execute("LISTEN okada_health_check")
    try:
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute("NOTIFY okada_health_check")
        # Delivered asynchronously: wait (with a deadline) until it is on the socket.
        poller = select.poll()
        poller.register(connection.connection.fileno(), select.POLLIN)
        deadline = time.monotonic() + 10
        while not poller.poll(100):
            assert time.monotonic() < deadline, "the notification never reached the socket"
        _next_request()
        connection.close_if_health_check_failed()
        assert connection.connection.info.backend_pid == kept_connection
        assert _last_statement(kept_connection) == "SELECT 1"
    finally:
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


class _TakeoverProxy:
    """A TCP relay to PostgreSQL whose `take_over()` plays a floating-IP failover: the connections
    it relays get no word of it, and the next packet a client sends on one is answered by a reset.
    Connections made afterwards are relayed as usual."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.relayed: list[socket.socket] = []
        self.stale: set[int] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def take_over(self) -> None:
        self.stale = {id(client) for client in self.relayed}

    def close(self) -> None:
        self.listener.close()
        for sock in self.relayed:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.relayed += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, client: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if source is client and id(client) in self.stale:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()  # a reset: the new host does not know this connection
                    return
                target.sendall(data)
        except OSError:
            pass


@pytest.mark.django_db(transaction=True)
def test_after_a_failover_that_sent_nothing_an_idle_connection_is_replaced():
    settings = connection.settings_dict
    proxy = _TakeoverProxy(str(settings["HOST"]), int(settings["PORT"]))
    wrapper = DatabaseWrapper({**settings, "HOST": "127.0.0.1", "PORT": proxy.port}, alias="failover")
    connections["failover"] = wrapper  # signal receivers of new connections look it up by alias
    backends = []
    try:
        with wrapper.cursor() as cursor:  # a request's query
            cursor.execute("SELECT pg_backend_pid()")
            first_backend = cursor.fetchone()[0]
            backends.append(first_backend)
        wrapper.close_if_unusable_or_obsolete()  # its end
        assert wrapper.used_at is not None
        wrapper.used_at -= QUIET_SECONDS + 1  # idle since, for longer than QUIET_SECONDS
        proxy.take_over()  # the socket stays quiet
        wrapper.close_if_unusable_or_obsolete()  # the next request's start
        with wrapper.cursor() as cursor:  # checked (SELECT 1 gets the reset), replaced, answered
            cursor.execute("SELECT pg_backend_pid()")
            backends.append(cursor.fetchone()[0])
        assert backends[1] != first_backend
    finally:
        wrapper.close()
        del connections["failover"]
        proxy.close()
        with psycopg.connect(**connection.get_connection_params()) as other:  # gone before teardown
            for pid in backends:
                other.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])


@pytest.mark.django_db
def test_inside_a_transaction_the_check_asks_postgresql(kept_connection):
    # Not idle (a test's transaction here): a quiet socket proves nothing about the transaction.
    wrapper = _wrapper()
    wrapper.used_at = time.monotonic()
    assert not connection.get_autocommit()
    assert wrapper._quiet_and_idle() is False
