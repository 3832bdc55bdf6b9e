"""What concurrency tests share: waiting for an event with a deadline (never a sleep), running code
in a thread with connections of its own, and the test database's URL for other processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

WAIT = 30  # seconds: a deadline for events, never a sleep


def poll(condition: Callable[[], object], what: str, seconds: float = WAIT) -> None:
    """Return as soon as `condition()` is true; fail the test if it is not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start `target` in a thread (its own database connections, closed at its end); what it
    raises is collected in the returned list for the test to check after join()."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def database_url() -> str:
    """DATABASE_URL of the test database, for processes of their own (manage.py, a Celery worker)."""
    db = connections[DEFAULT_DB_ALIAS].settings_dict
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
