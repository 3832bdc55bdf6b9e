"""Marketplace events counted in Redis where they happen, for the health page and /metrics:
one pipelined round trip (a total and an hourly bucket kept two days), and a Redis that is down
never fails the caller. Only refusals are counted this way: placements are read from the orders
themselves.

In `okada.core` so that the domains count where things happen without importing `okada.health`,
which reads the counters for its page and /metrics."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.cache import cache

log = logging.getLogger(__name__)


def _redis() -> Any:
    """The cache's Redis client (django-redis): the counters live beside the cache."""
    return cache.client.get_client(write=True)  # type: ignore[attr-defined]


PREFIX = "okada:count:"
HOURLY_KEPT_SECONDS = 2 * 24 * 3600


def _hour_key(name: str, when: dt.datetime) -> str:
    return f"{PREFIX}{name}:{when.astimezone(dt.UTC):%Y%m%d%H}"


def count(name: str, *, now: dt.datetime | None = None) -> None:
    """Add one to the counter `name` (its total and the current UTC hour's bucket)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        client = _redis()
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(PREFIX + name)
            pipe.incr(_hour_key(name, now))
            pipe.expire(_hour_key(name, now), HOURLY_KEPT_SECONDS)
            pipe.execute()
    except Exception:  # counting must never cost the caller its answer
        log.warning("could not count %s", name, exc_info=True)


def total(name: str) -> int:
    """The counter's total since Redis keeps it (a Prometheus counter: it may restart at zero)."""
    value = _redis().get(PREFIX + name)
    return int(value or 0)


def hourly(name: str, *, hours: int, now: dt.datetime | None = None) -> list[tuple[dt.datetime, int]]:
    """The counts of the last `hours` UTC hours, oldest first (the current hour last)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    starts = [now - dt.timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    values = _redis().mget([_hour_key(name, s) for s in starts])
    return [(s, int(v or 0)) for s, v in zip(starts, values, strict=True)]
