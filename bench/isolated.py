"""Run code in a fresh process whose Django talks to a scratch database (each with its own connection)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any

# spawn, not fork: a forked child would share the parent's database sockets.
CONTEXT = multiprocessing.get_context("spawn")


def setup_django(database_url: str) -> None:
    """In a child process: Django with okada.settings.local against `database_url`, DEBUG off
    (DEBUG keeps every query in memory and is not what production runs)."""
    os.environ.update(
        DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="okada.settings.local", DJANGO_DEBUG="0"
    )
    import django

    django.setup()


def _call(queue: Any, database_url: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        setup_django(database_url)
        queue.put((True, fn(*args)))
    except BaseException as exc:
        queue.put((False, f"{type(exc).__name__}: {exc}"))
        raise


def call(database_url: str, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a child process set up for `database_url`; its result must pickle."""
    queue = CONTEXT.Queue()
    process = CONTEXT.Process(target=_call, args=(queue, database_url, fn, args))
    process.start()
    ok, result = queue.get()
    process.join()
    if not ok:
        raise RuntimeError(f"{fn.__name__} failed: {result}")
    return result
