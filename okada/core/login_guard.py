"""Brute-force protection for every password login: the API's `POST /auth/token` and the admin's
login form share it (and its counts: guesses at one user's password add up wherever they arrive).

Failed attempts are counted per username and per client address (`OKADA_API_LOGIN_RATE_LIMIT`,
default 10 per 15 minutes); past the limit every attempt, right or wrong, is refused until the
window ends. Each attempt is counted before its password is checked and taken back when it was not
a failure, so guesses sent at once cannot all pass a check made before any of them failed. A
success clears the username's count.

Counts live in Redis; while Redis cannot be reached they are kept in each process's memory
(`ratelimit.hit(local=True)`): the lock-out is weaker during an outage (each worker counts alone),
never lifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from okada.core.api import ratelimit


class LockedOut(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # seconds until the window ends


@dataclass
class Attempt:
    username_key: str
    rate: ratelimit.Rate
    counted: list[ratelimit.Usage | None] = field(default_factory=list)

    def not_a_failure(self) -> None:
        """The password was not found wrong (an error, a question back): uncount the attempt."""
        for usage in self.counted:
            ratelimit.take_back(usage)
        self.counted = []

    def succeeded(self) -> None:
        """The right password: uncount the attempt and clear the username's failures."""
        self.not_a_failure()
        ratelimit.reset(self.username_key, self.rate)


def begin(username: str, address: str) -> Attempt:
    """Count a login attempt for `username` from `address` before its password is checked.

    Raises LockedOut (nothing counted) when either is past the limit. A failed attempt needs
    nothing more: its counts stay.
    """
    rate = ratelimit.parse_rate(settings.OKADA_API_LOGIN_RATE_LIMIT)
    attempt = Attempt(username_key=f"login:user:{username.lower()}", rate=rate)
    for key in (attempt.username_key, f"login:ip:{address}"):
        usage = ratelimit.hit(key, rate, local=True)
        attempt.counted.append(usage)
        if usage is not None and not usage.allowed:
            attempt.not_a_failure()  # refused unchecked: not a failure
            raise LockedOut(usage.reset)
    return attempt
