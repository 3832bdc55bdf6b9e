"""okada.core.db.one_value and execute: one statement, one round trip, prepared, atomic either way."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from okada.core import db
from okada.core.db import execute, libpq_env, one_value, prepared_rows
from tests.health.test_metrics import db_metric
from tests.testapp.models import Shelf

NEW_SHELF = """INSERT INTO testapp_shelf (id, created_at, updated_at, deleted_by_cascade, code, label)
               VALUES (gen_random_uuid(), now(), now(), false, %s, '') RETURNING code"""


def prepared_statements() -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(statement, '') FROM pg_prepared_statements")
        return [row[0] for row in cur.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_the_statement_commits_by_itself():
    assert connection.get_autocommit() and not connection.in_atomic_block
    assert one_value(NEW_SHELF, ["A"]) == "A"
    # Committed, no transaction left open on the connection.
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert Shelf.all_objects.filter(code="A").exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_in_autocommit_changes_nothing_and_raises_a_django_error():
    with pytest.raises(IntegrityError):
        one_value(NEW_SHELF, [None])  # code is NOT NULL
    assert not Shelf.all_objects.exists()
    assert one_value("SELECT 1 + %s", [1]) == 2  # the connection is fine


@pytest.mark.django_db
def test_inside_a_transaction_a_failure_rolls_back_only_its_savepoint():
    with transaction.atomic():
        Shelf.objects.create(code="kept")
        with pytest.raises(IntegrityError):
            one_value(NEW_SHELF, [None])
        # The caller's transaction is still usable and keeps its own work.
        assert one_value(NEW_SHELF, ["B"]) == "B"
        assert sorted(Shelf.objects.values_list("code", flat=True)) == ["B", "kept"]


@pytest.mark.django_db
def test_without_a_savepoint_a_failure_fails_the_callers_transaction_and_costs_no_round_trip():
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            assert one_value(NEW_SHELF, ["C"], savepoint=False) == "C"
        assert len(queries.captured_queries) == 1  # the statement alone, no SAVEPOINT around it
        with pytest.raises(IntegrityError):
            one_value(NEW_SHELF, [None], savepoint=False)
        # PostgreSQL refuses the rest of the transaction: nothing of it can be kept.
        with pytest.raises(DatabaseError), transaction.atomic():
            Shelf.objects.create(code="after")
        transaction.set_rollback(True)
    assert not Shelf.all_objects.exists()


@pytest.mark.django_db
def test_execute_runs_a_prepared_statement_in_the_callers_transaction():
    shelf = Shelf.objects.create(code="D")
    with CaptureQueriesContext(connection) as queries:
        for label in ("x", "y"):
            execute("UPDATE testapp_shelf SET label = %s WHERE id = %s", [label, shelf.pk])
    assert len(queries.captured_queries) == 2  # no savepoints around them
    assert Shelf.objects.get(pk=shelf.pk).label == "y"
    assert sum("testapp_shelf SET label" in s for s in prepared_statements()) == 1


@pytest.mark.django_db
def test_the_statement_is_prepared_once_per_connection_and_seen_by_djangos_query_log():
    sql = "SELECT %s::integer * 2"
    with CaptureQueriesContext(connection) as queries:
        assert [one_value(sql, [n]) for n in (1, 2, 3)] == [2, 4, 6]
    # (Inside the test's transaction each call has its savepoint; a prepared execution is
    # logged without its text.)
    statements = [q for q in queries.captured_queries if "SAVEPOINT" not in (q["sql"] or "")]
    assert len(statements) == 3
    assert sum("* 2" in s for s in prepared_statements()) == 1


@pytest.mark.django_db
def test_a_database_error_is_wrapped_as_djangos():
    with pytest.raises(DatabaseError):
        one_value("SELECT 1 / %s", [0])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [one_value, prepared_rows], ids=["one_value", "prepared_rows"])
def test_a_connection_that_died_between_requests_is_replaced_not_a_failed_request(run):
    # A kept connection (CONN_MAX_AGE) whose server went away (a restart, a failover) between two
    # requests: Django checks it before the next request's first statement (CONN_HEALTH_CHECKS),
    # and a prepared statement may well be that first statement (the Idempotency-Key lookup, the
    # placement, the product list).
    from django.core.signals import request_finished, request_started

    assert run("SELECT %s::integer * 2", [1]) in (2, [(2,)])
    old_pid = connection.connection.info.backend_pid
    request_finished.send(sender=None)
    with psycopg.connect(**connection.get_connection_params()) as other:
        assert other.execute("SELECT pg_terminate_backend(%s, 10000)", [old_pid]).fetchone() == (True,)
    request_started.send(sender=None)
    assert run("SELECT %s::integer * 2", [2]) in (4, [(4,)])
    assert connection.connection.info.backend_pid != old_pid


@pytest.mark.django_db
def test_every_new_connection_has_postgresql_side_tcp_keepalives():
    # A web or worker host that vanishes mid-transaction must not hold its locks (a placement's
    # stock rows, an Idempotency-Key) for the kernel's two hours: PostgreSQL probes within a minute.
    if str(connection.settings_dict["HOST"]).startswith("/"):
        pytest.skip("over a Unix socket PostgreSQL reports no TCP keepalives")
    fresh = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with fresh.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
                " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')"
            )
            assert cursor.fetchone() == ("30", "10", "3", "60000")
    finally:
        fresh.close()


@pytest.mark.django_db
def test_django_connections_have_client_side_tcp_keepalives():
    # A database host that vanishes mid-query must not hold a worker for the kernel's two hours.
    if str(connection.settings_dict["HOST"]).startswith("/"):
        pytest.skip("no TCP keepalives over a Unix socket")
    fresh = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        fresh.ensure_connection()
        assert client_keepalive(fresh.connection)[:4] == (1, 30, 10, 3)
    finally:
        fresh.close()


def client_keepalive(conn: psycopg.Connection) -> tuple[int, int, int, int, int]:
    """The client end of a connection's TCP socket: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
    TCP_KEEPCNT and TCP_USER_TIMEOUT, as the kernel has them."""
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )
    finally:
        sock.close()


# --- libpq_env: where pg_dump, pg_restore and psql connect -------------------------------------


@pytest.fixture
def database_settings(monkeypatch):
    """The default connection's settings, changed for one test (the open connection keeps its own)."""
    settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
    monkeypatch.setitem(settings_dict, "OPTIONS", dict(settings_dict.get("OPTIONS") or {}))
    return settings_dict


def test_libpq_env_leaves_the_host_to_libpq_when_the_settings_have_none(database_settings, monkeypatch):
    # An empty HOST means the Unix socket, for psycopg (Django) and for every libpq tool alike.
    monkeypatch.setitem(database_settings, "HOST", "")
    monkeypatch.setitem(database_settings, "PORT", "")
    monkeypatch.setenv("PGHOST", "elsewhere.example")  # the caller's PG* never leak in
    env = libpq_env()
    assert "PGHOST" not in env and "PGPORT" not in env
    assert env["PGDATABASE"] == database_settings["NAME"]


def test_libpq_env_passes_every_options_key_libpq_knows_and_no_other(database_settings, monkeypatch):
    monkeypatch.setitem(database_settings, "PASSWORD", "s3cret")
    database_settings["OPTIONS"].update(
        sslmode="verify-full",
        sslrootcert="/etc/okada/root.crt",
        connect_timeout=7,
        application_name="okada archive",
        target_session_attrs="read-write",
        options="-c lock_timeout=5s",
        sslcompression=True,
        prepare_threshold=100,  # psycopg's, not libpq's
        isolation_level=1,  # Django's
        keepalives=1,  # libpq's, but it reads no variable for it
    )
    monkeypatch.setenv("PGPASSWORD", "stale")
    env = libpq_env("another_db")
    assert {k: v for k, v in env.items() if k.startswith("PG")} == {
        "PGHOST": str(database_settings["HOST"]),
        "PGPORT": str(database_settings["PORT"]),
        "PGUSER": str(database_settings["USER"]),
        "PGPASSWORD": "s3cret",  # in the environment, never on a command line
        "PGDATABASE": "another_db",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/okada/root.crt",
        "PGCONNECT_TIMEOUT": "7",
        "PGAPPNAME": "okada archive",
        "PGTARGETSESSIONATTRS": "read-write",
        "PGOPTIONS": "-c lock_timeout=5s",
        "PGSSLCOMPRESSION": "1",
    }


def test_a_setting_wins_over_the_same_key_in_options_as_for_django(database_settings, monkeypatch):
    database_settings["OPTIONS"].update(host="/var/run/other", port=6543)
    env = libpq_env()
    assert env["PGHOST"] == str(database_settings["HOST"]) and env["PGPORT"] == str(database_settings["PORT"])
    monkeypatch.setitem(database_settings, "HOST", "")
    assert libpq_env()["PGHOST"] == "/var/run/other"  # psycopg would connect there too


def test_postgresql_program_is_the_newest_installed_version_by_number(monkeypatch):
    found = db.postgresql_program("pg_dump")
    assert found is not None and os.access(found, os.X_OK)  # the real one, on this machine
    installed = ["/usr/lib/postgresql/15/bin/pg_dump", "/usr/lib/postgresql/9/bin/pg_dump"]
    monkeypatch.setattr(db.glob, "glob", lambda pattern: list(installed))
    assert db.postgresql_program("pg_dump") == "/usr/lib/postgresql/15/bin/pg_dump"  # not "9" > "15"
    monkeypatch.setattr(db.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(db.shutil, "which", lambda name: None)
    assert db.postgresql_program("pg_dump") is None


def _ordinary_division(divisor: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 / %s", [divisor])


@pytest.mark.django_db(transaction=True)  # autocommit: no savepoint statements around the calls
@pytest.mark.parametrize(
    "run",
    [
        _ordinary_division,
        lambda d: one_value("SELECT 1 / %s", [d]),
        lambda d: prepared_rows("SELECT 1 / %s", [d]),
    ],
    ids=["django-cursor", "one_value", "prepared_rows"],
)
def test_prepared_statements_and_their_errors_are_in_the_database_metrics_as_any_query(run):
    # django-prometheus's series, as /metrics shows them: a prepared statement is counted, timed,
    # and its failure counted by type, exactly as a statement of Django's own cursors.
    def figures() -> list[float]:
        return [
            db_metric("django_db_execute_total"),
            db_metric("django_db_query_duration_seconds_count"),
            db_metric("django_db_errors_total", type="DivisionByZero"),
        ]

    run(1)  # the connection is open, the statement prepared
    before = figures()
    run(2)
    with pytest.raises(DatabaseError):
        run(0)
    after = figures()
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 1]
