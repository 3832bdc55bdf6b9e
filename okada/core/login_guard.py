"""Brute-force protection for every password login: the API's `POST /auth/token` and the admin's
login form share it (and its counts: guesses at one user's password add up wherever they arrive).

Failed attempts are counted three ways, each with its limit per window; past any of them every
attempt it covers, right or wrong, is refused until the window ends:
- one username from one address (`OKADA_API_LOGIN_RATE_LIMIT`, 10 per 15 minutes): the lock a
  guesser meets first, and the only one a typo-prone colleague meets;
- one address, whatever the usernames (`OKADA_API_LOGIN_ADDRESS_RATE_LIMIT`, 50): a guesser
  trying many accounts. Higher, because a mobile carrier's NAT puts many honest users behind one
  address; IPv6 addresses count per /64 (what one subscriber gets);
- one username, whatever the addresses (`OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT`, 50): guesses at
  one account spread over many addresses. Higher than the first, so that one address alone
  cannot lock anyone out of their account (the superuser `admin` included): it takes several.
Each attempt is counted before its password is checked and taken back when it was not a failure,
so guesses sent at once cannot all pass a check made before any of them failed. A success clears
the username's counts (not the address's).

Counts live in Redis; while Redis cannot be reached they are kept in each process's memory
(`ratelimit.hit(local=True)`): the lock-out is weaker during an outage (each worker counts alone),
not lifted.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from django.conf import settings

from okada.core import clients
from okada.core.api import ratelimit


class LockedOut(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # seconds until the window ends


def _username(username: str) -> str:
    """One counter for every spelling the login forms treat alike (and a few more: stricter)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def _address(address: str) -> str:
    """An IPv4 address as is; an IPv6 one as its /64."""
    return clients.subscriber(address)


def _keys(username: str, address: str) -> dict[str, ratelimit.Rate]:
    """The counters of an attempt, the address's first (a locked address adds no others)."""
    rate = ratelimit.parse_rate
    user, where = _username(username), _address(address)
    return {
        f"login:ip:{where}": rate(settings.OKADA_API_LOGIN_ADDRESS_RATE_LIMIT),
        f"login:user:{user}": rate(settings.OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT),
        f"login:pair:{user}:{where}": rate(settings.OKADA_API_LOGIN_RATE_LIMIT),
    }


@dataclass
class Attempt:
    username: str
    address: str
    counted: list[ratelimit.Usage | None] = field(default_factory=list)

    def not_a_failure(self) -> None:
        """The password was not found wrong (an error, a question back): uncount the attempt."""
        for usage in self.counted:
            ratelimit.take_back(usage)
        self.counted = []

    def succeeded(self) -> None:
        """The right password: uncount the attempt and clear the username's failures (from
        everywhere, and from this address)."""
        self.not_a_failure()
        keys = _keys(self.username, self.address)
        for key in list(keys)[1:]:  # the username's and the pair's, not the address's
            ratelimit.reset(key, keys[key])


def begin(username: str, address: str) -> Attempt:
    """Count a login attempt for `username` from `address` before its password is checked.

    Raises LockedOut (nothing counted) when any of its counters is past its limit. A failed
    attempt needs nothing more: its counts stay.
    """
    attempt = Attempt(username=username, address=address)
    for key, rate in _keys(username, address).items():
        usage = ratelimit.hit(key, rate, local=True)
        attempt.counted.append(usage)
        if usage is not None and not usage.allowed:
            attempt.not_a_failure()  # refused unchecked: not a failure
            raise LockedOut(usage.reset)
    return attempt


def unlock(username: str, address: str = "") -> bool:
    """Lift `username`'s lock-out now (`manage.py unlock_login`): its failures from every address,
    and `address`'s own count when one is given. False when Redis could not be reached (this
    process's memory counts are cleared all the same)."""
    keys = _keys(username, address or "-")
    ip_key, user_key, _pair_key = keys
    cleared = ratelimit.reset(user_key, keys[user_key])
    cleared = ratelimit.reset_prefixed(f"login:pair:{_username(username)}:") and cleared
    if address:
        cleared = ratelimit.reset(ip_key, keys[ip_key]) and cleared
    return cleared
