"""Who is acting, and why: the history user and change reason for every write.

Requests get their user from simple-history's middleware. Services, management commands and tasks
say it explicitly::

    with acting_as(user=staff, reason="supplier recall"):
        product_soft_delete(product=p)

Nested blocks keep the outer value for whatever they do not set. A ContextVar (not a thread local)
so it also follows async code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Acting:
    user: Any = None  # a User, or None for the system
    reason: str = ""


_current: ContextVar[Acting] = ContextVar("okada_acting", default=Acting())  # noqa: B039 (frozen)


def current() -> Acting:
    return _current.get()


@contextmanager
def acting_as(*, user: Any = None, reason: str | None = None) -> Iterator[Acting]:
    outer = _current.get()
    acting = replace(
        outer,
        user=user if user is not None else outer.user,
        reason=reason if reason is not None else outer.reason,
    )
    token = _current.set(acting)
    try:
        yield acting
    finally:
        _current.reset(token)


def history_user(instance: Any = None, request: Any = None, **kwargs: Any) -> Any:
    """`get_user` for HistoricalRecords: the explicit actor first, then the request's user."""
    acting = _current.get()
    if acting.user is not None:
        return acting.user
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return None
