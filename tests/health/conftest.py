"""Helpers for database health tests: sessions of their own (real connections), polling with a
deadline, and staff of each role."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from django.db import DatabaseError, connections

from okada.core.roles import OPERATIONS
from tests.catalog.factories import role_user

WAIT = 30  # seconds: a deadline, never a sleep


def wait_until(predicate: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling with a deadline


def backend_pid(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


@contextmanager
def session(autocommit: bool = True) -> Iterator[Any]:
    """A database connection of its own (another backend), closed afterwards."""
    conn = connections.create_connection("default")
    conn.set_autocommit(autocommit)
    try:
        yield conn
    finally:
        with suppress(DatabaseError):  # the test may have terminated it
            if not autocommit:
                conn.rollback()
            conn.close()


@contextmanager
def in_thread(sql: str, params: Any = None) -> Iterator[tuple[int, list[Any]]]:
    """Run `sql` on a session of its own in another thread; yields (its backend pid, results:
    [rows] or [exception] once it ends). The block runs while it runs."""
    results: list[Any] = []
    ready = threading.Event()
    pid: list[int] = []

    def run() -> None:
        with session() as conn:
            pid.append(backend_pid(conn))
            ready.set()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    results.append(cur.fetchall() if cur.description else [])
            except BaseException as exc:
                results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        ready.wait(WAIT)
        yield pid[0], results
    finally:
        thread.join(WAIT)


@pytest.fixture
def operations_user():
    return role_user(OPERATIONS, username="ops", email="ops@x.cm")
