"""Rate limits in Redis: a fixed window per credential, one round trip per request, failing open.

`hit(key, rate)` counts one request in the current window (`INCR` + `EXPIRE NX` in one
pipeline; windows are aligned on the clock, so when one resets is arithmetic) and says whether it
is allowed, how many remain and when the window resets: enough for `429` + `Retry-After` and the
`RateLimit-*` headers on every answer. `hit(..., read=name)` reads one more key in the same
round trip (the credential cache's generation, see `auth`), which `value_or_start` and
`value_set` read and write on their own, on the same connection. Hand-written rather than the
`limits` library because that one needs two or three round trips for the same figures.

When Redis cannot be reached the request is allowed (the API keeps answering) and the failure is
logged; Redis is then left alone for a few seconds so that each request does not pay a timeout.
Login lock-outs are the exception (`hit(..., local=True)`): they count in the process's memory
instead, so an outage weakens them (each worker counts alone) rather than lifting them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from okada.core import clients

log = logging.getLogger(__name__)

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# The wall clock the windows are aligned on (a name of its own so that tests can start a test's
# windows with it: requests that straddle a boundary see their count start again).
clock = time.time

BACKOFF_SECONDS = 5.0  # after a Redis failure, skip it this long (fail open without waiting)


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`"600/minute"`, `"10/15minutes"`, `"5/s"`..."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*", text)
        unit = next((u for u in UNITS if match and u.startswith(match.group(3))), None)
        if not match or unit is None:
            raise ValueError(f"not a rate: {text!r} (e.g. 600/minute, 10/15minutes)")
        return cls(int(match.group(1)), int(match.group(2) or 1) * UNITS[unit])

    @property
    def policy(self) -> str:
        return f"{self.limit};w={self.window}"


@dataclass(frozen=True)
class Usage:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets
    policy: str
    read: bytes | None = None  # the value of `hit(..., read=)`'s key
    counter: str = ""  # the Redis key counted (its window), for `take_back`

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": self.policy,
        }


class _Breaker:
    """Remembers a recent Redis failure (per process) so that the next requests skip Redis."""

    def __init__(self) -> None:
        self.until = 0.0
        self.lock = threading.Lock()

    def open(self) -> bool:
        return time.monotonic() < self.until

    def trip(self) -> None:
        with self.lock:
            self.until = time.monotonic() + BACKOFF_SECONDS


_breaker = _Breaker()


class _LocalCounts:
    """Fixed-window counts kept in this process while Redis cannot be reached (`hit(local=True)`)."""

    MAX_KEYS = 100_000  # a flood of names during an outage cannot grow it without bound

    def __init__(self) -> None:
        self.counts: dict[str, tuple[int, float]] = {}  # name -> (count, expires at)
        self.lock = threading.Lock()
        self.pruned_at = 0.0

    def incr(self, name: str, expires_at: float) -> int | None:
        """The new count of `name`; None when full of live counts (that request is not counted:
        fails open, as every limit does without Redis)."""
        with self.lock:
            now = clock()
            if name not in self.counts and len(self.counts) >= self.MAX_KEYS:
                if now - self.pruned_at >= 1.0:  # a full table is swept at most once a second
                    self.pruned_at = now
                    self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
                if len(self.counts) >= self.MAX_KEYS:
                    return None
            count, expires = self.counts.get(name, (0, expires_at))
            if expires <= now:
                count, expires = 0, expires_at
            self.counts[name] = (count + 1, expires)
            return count + 1

    def decr(self, name: str) -> None:
        with self.lock:
            count, expires = self.counts.get(name, (0, 0.0))
            if count > 1:
                self.counts[name] = (count - 1, expires)
            else:  # nothing left to count: the room goes back
                self.counts.pop(name, None)

    def delete(self, name: str) -> None:
        with self.lock:
            self.counts.pop(name, None)

    def delete_prefixed(self, prefix: str) -> None:
        with self.lock:
            self.counts = {k: v for k, v in self.counts.items() if not k.startswith(prefix)}


_local = _LocalCounts()
LOCAL = "local:"  # Usage.counter of a count kept in this process


@cache
def _client(url: str) -> redis.Redis:
    # Short timeouts: a slow or unreachable Redis must not hold up the request.
    return redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)


def hit(
    key: str, rate: Rate, *, count: bool = True, read: str | None = None, local: bool = False
) -> Usage | None:
    """Count a request against `key`; None when Redis is unavailable (the caller allows it).

    With `count=False` only reads the current usage (e.g. to check a login lock-out). With
    `read`, the value of that Redis key comes back in the same round trip as `Usage.read`. With
    `local`, a count Redis cannot keep is kept in this process's memory instead of being dropped.
    """
    now = int(clock())
    window_start = now // rate.window
    name = f"okada:rl:{key}:{rate.window}:{window_start}"
    if _breaker.open():
        return _hit_local(name, rate, now) if local and count else None
    try:
        pipe = _client(settings.OKADA_API_RATELIMIT_REDIS_URL).pipeline(transaction=False)
        if count:
            pipe.incr(name)
            pipe.expire(name, rate.window + 1, nx=True)
        else:
            pipe.get(name)
        if read is not None:
            pipe.get(read)
        results = pipe.execute()
    except redis.RedisError as exc:
        _breaker.trip()
        log.warning(
            "rate limiter: Redis unavailable, limits not enforced (login lock-outs count in memory) "
            "for %ss: %s",
            BACKOFF_SECONDS,
            exc,
        )
        return _hit_local(name, rate, now) if local and count else None
    return _usage(
        int(results[0] or 0),
        rate,
        now,
        count=count,
        counter=name if count else "",
        read=results[-1] if read is not None else None,
    )


def _usage(used: int, rate: Rate, now: int, *, count: bool, counter: str, read: bytes | None = None) -> Usage:
    return Usage(
        allowed=used <= rate.limit if count else used < rate.limit,
        limit=rate.limit,
        remaining=max(rate.limit - used, 0),
        reset=(now // rate.window + 1) * rate.window - now,  # 1 to window seconds
        policy=rate.policy,
        read=read,
        counter=counter,
    )


def _hit_local(name: str, rate: Rate, now: int) -> Usage | None:
    used = _local.incr(name, expires_at=(now // rate.window + 1) * rate.window)
    return None if used is None else _usage(used, rate, now, count=True, counter=LOCAL + name)


# Decrement only a count that still exists (never leave a negative key without expiry behind).
_TAKE_BACK = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


def take_back(usage: Usage | None) -> None:
    """Uncount the request `hit` counted in `usage` (in its own window): e.g. a login attempt,
    counted before its password was checked, that turned out not to be a failure."""
    if usage is None or not usage.counter:
        return
    if usage.counter.startswith(LOCAL):
        _local.decr(usage.counter.removeprefix(LOCAL))
        return
    try:
        _client(settings.OKADA_API_RATELIMIT_REDIS_URL).eval(_TAKE_BACK, 1, usage.counter)
    except redis.RedisError as exc:
        log.warning("rate limiter: Redis unavailable: %s", exc)


def value_or_start(name: str, start: str) -> tuple[bool, Any]:
    """(read, value) of the Redis key `name`, set to `start` first when it has none (whoever sets
    it first wins); read is False when Redis cannot be reached or failed a moment ago."""
    if _breaker.open():
        return False, None
    try:
        client = _client(settings.OKADA_API_RATELIMIT_REDIS_URL)
        value = client.get(name)
        if value is None:
            client.set(name, start, nx=True)
            value = client.get(name)
        return True, value
    except redis.RedisError:
        return False, None


def value_set(name: str, value: str) -> None:
    """Set the Redis key `name` (raises redis.RedisError: the caller says what not setting it means)."""
    _client(settings.OKADA_API_RATELIMIT_REDIS_URL).set(name, value)


def reset(key: str, rate: Rate) -> bool:
    """Forget the current window of `key` (a successful login clears its failures); False when
    Redis could not be reached (this process's memory count is forgotten all the same)."""
    window_start = int(clock()) // rate.window
    name = f"okada:rl:{key}:{rate.window}:{window_start}"
    _local.delete(name)
    try:
        _client(settings.OKADA_API_RATELIMIT_REDIS_URL).delete(name)
    except redis.RedisError as exc:
        log.warning("rate limiter: Redis unavailable: %s", exc)
        return False
    return True


def reset_prefixed(prefix: str) -> bool:
    """`reset` of every key that starts with `prefix` (e.g. one username's counts from every
    address), whatever its window."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", f"okada:rl:{prefix}") + "*"  # Redis glob, escaped
    _local.delete_prefixed(f"okada:rl:{prefix}")
    try:
        client = _client(settings.OKADA_API_RATELIMIT_REDIS_URL)
        names = list(client.scan_iter(match=pattern, count=1000))
        if names:
            client.delete(*names)
    except redis.RedisError as exc:
        log.warning("rate limiter: Redis unavailable: %s", exc)
        return False
    return True


def client_ip(request: Any) -> str:
    """The caller's address, behind the proxies of OKADA_TRUSTED_PROXIES too (okada.core.clients)."""
    return clients.key_address(getattr(request, "_request", request))


@cache
def parse_rate(text: str) -> Rate:
    return Rate.parse(text)


def credential_rate() -> Rate:
    """`OKADA_API_RATE_LIMIT`: the limit of every credential."""
    return parse_rate(settings.OKADA_API_RATE_LIMIT)


def counted(request: Any, key: str, usage: Usage) -> None:
    """Say that this request was already counted against `key` (authentication does it in the
    round trip that checks its cache): the throttle then uses `usage` instead of counting again."""
    getattr(request, "_request", request)._ratelimit_counted = (key, usage)


class CredentialRateThrottle(BaseThrottle):
    """`OKADA_API_RATE_LIMIT` per credential; `OKADA_API_ANON_RATE_LIMIT` per IP without one (and
    for a credential that failed authentication: ApiView counts those against the address).

    The usage is kept on the request so that the view adds the `RateLimit-*` headers.
    """

    def allow_request(self, request: Request, view: Any, *, anonymous: bool = False) -> bool:
        """Count this request. `anonymous`: against the address, whatever the request says it
        carries (a credential that failed authentication)."""
        scope_key = None if anonymous else getattr(request.auth, "scope_key", None)
        if scope_key:
            key, rate = scope_key, credential_rate()
        else:
            # IPv6: per /64, as failed logins are (clients.subscriber)
            key, rate = (
                f"ip:{clients.subscriber(client_ip(request))}",
                parse_rate(settings.OKADA_API_ANON_RATE_LIMIT),
            )
        already = getattr(request._request, "_ratelimit_counted", None)
        if already is not None and already[0] == key and already[1].limit == rate.limit:
            usage: Usage | None = already[1]
        else:
            usage = hit(key, rate)
        request.ratelimit = usage  # type: ignore[attr-defined]
        self.usage = usage
        return usage is None or usage.allowed

    def wait(self) -> float | None:
        return float(self.usage.reset) if self.usage else None
