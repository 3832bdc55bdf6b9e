"""What concurrency tests share: waiting for an event with a deadline (never a sleep), running code
in a thread with connections of its own, racing two writes for one row lock, driving several
threads step by step by the locks they wait for, and the test database's URL for other processes."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

WAIT = 30  # seconds: a deadline for events, never a sleep
RUN_WAIT = 120  # seconds: a deadline for a whole run_together


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

    return Started(run).thread, errors


def a_lock_is_awaited() -> bool:
    """Some backend waits for a lock (seen in pg_locks from the test's own connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return bool(cursor.fetchone()[0])


def race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """`first` in a transaction held open until `second`, on another connection, waits for a
    lock it holds; then `first` commits. Each one's result, or the exception it raised.

    With `first` deleting a row, `second` is a service that has read the row before the delete
    commits and then waits to lock it: the "deleted between lookup and lock" case.

    A `second` that takes no lock `first` holds runs to its end while `first` is still open (what
    a missing lock looks like); the test then sees both results as they came.
    """
    holding, release = threading.Event(), threading.Event()
    results: list[Any] = [None, None]

    def hold() -> None:
        try:
            with transaction.atomic():
                results[0] = first()
                holding.set()
                release.wait(WAIT)  # not committed yet: its locks are held
        except Exception as exc:  # reported to the test
            results[0] = exc
        finally:
            holding.set()
            connections.close_all()

    def wait() -> None:
        try:
            results[1] = second()
        except Exception as exc:  # reported to the test
            results[1] = exc
        finally:
            connections.close_all()

    holder, waiter = threading.Thread(target=hold), threading.Thread(target=wait)
    holder.start()
    assert holding.wait(WAIT)
    waiter.start()
    try:
        poll(
            lambda: a_lock_is_awaited() or not waiter.is_alive(),
            "the second write to wait for the first one's lock (or to end without waiting)",
        )
    finally:
        release.set()
        holder.join(WAIT)
        waiter.join(WAIT)
    return results[0], results[1]


def lock_waiters() -> int:
    """How many backends of this database wait for a lock (pg_stat_activity's wait event, seen from
    the test's own connection): a test counts them to know that the call it started last waits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


class Started:
    """`call` running in a thread with database connections of its own, started at once: a test
    drives several of them step by step, polling lock_waiters() between steps (never sleeping).
    join() returns what the call returned, or the exception it raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, args=(call,))
        self.thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except Exception as exc:  # reported to the test
            self.result = exc
        finally:
            connections.close_all()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def join(self) -> Any:
        self.thread.join(RUN_WAIT)
        assert not self.thread.is_alive(), "still running at the deadline"
        return self.result


def database_url() -> str:
    """DATABASE_URL of the test database, for processes of their own (manage.py, a Celery worker)."""
    db = connections[DEFAULT_DB_ALIAS].settings_dict
    password = f":{quote(str(db['PASSWORD']), safe='')}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def post_together(url: str, body: bytes, headers: list[dict[str, str]]) -> list[tuple[int, bytes]]:
    """POST `body` to `url` (a live test server) once per entry of `headers`, all at the same
    moment (a barrier), each from a thread of its own; their (status, body), in that order."""
    barrier = threading.Barrier(len(headers), timeout=60)

    def send(sent: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method="POST", headers=sent)  # noqa: S310 (our live server)
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (our live server)
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        return list(pool.map(send, headers))


def run_together(calls: Sequence[Callable[[], Any]], workers: int = 20) -> list[Any]:
    """Run `calls` on `workers` threads that start at the same instant; return each call's result
    or the exception it raised, in the order of `calls`."""
    barrier = threading.Barrier(workers, timeout=RUN_WAIT)
    results: list[Any] = [None] * len(calls)

    def worker(first: int) -> None:
        try:
            barrier.wait()
            for i in range(first, len(calls), workers):
                try:
                    results[i] = calls[i]()
                except Exception as exc:  # reported to the test, which asserts on it
                    results[i] = exc
        finally:
            connections.close_all()

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(worker, n) for n in range(workers)]
        for future in futures:
            future.result(timeout=RUN_WAIT)  # re-raises a worker's own failure (e.g. a broken barrier)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results
