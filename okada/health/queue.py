"""The Celery queue as the broker (Redis) holds it: its length, and its recent history."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache as django_cache

# kombu keeps one Redis list per priority step next to the queue's own list.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
SAMPLES_KEY = "health:celery-queue-samples"
SAMPLES_KEPT_SECONDS = 2 * 3600


@cache
def _broker(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def queue_names() -> list[str]:
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


def queue_length(name: str | None = None) -> int:
    """Tasks waiting in the broker's queue (LLEN of the queue and its priority lists)."""
    name = name or queue_names()[0]
    client = _broker(settings.CELERY_BROKER_URL)
    keys = [name, *(f"{name}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        return int(sum(pipe.execute()))


def record_sample(length: int, *, now: float | None = None) -> list[tuple[float, int]]:
    """Add a reading of the queue length to its history (kept two hours) and return the history,
    oldest first. Only the alert evaluation writes it (single-flight)."""
    now = time.time() if now is None else now
    samples: list[Any] = django_cache.get(SAMPLES_KEY) or []
    samples = [(t, n) for t, n in samples if t >= now - SAMPLES_KEPT_SECONDS]
    samples.append((now, length))
    django_cache.set(SAMPLES_KEY, samples, SAMPLES_KEPT_SECONDS)
    return samples


def growing_for(samples: list[tuple[float, int]], minutes: float, *, now: float | None = None) -> bool:
    """Whether the queue grew over the last `minutes`: readings cover the whole window, it never
    emptied in it, and it ends longer than it started."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    before = [s for s in samples if s[0] <= start]
    window = [s for s in samples if s[0] > start]
    if not before or not window:
        return False  # not watched long enough to say
    first = before[-1]
    readings = [first, *window]
    return all(n > 0 for _, n in readings) and readings[-1][1] > first[1]
