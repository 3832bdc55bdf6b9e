"""What an account can do beyond its Django permissions, as a registry.

Whoever may change an account (its password included) or delete it may become it, or take it away
from its owner: the users' admin (okada.core.admin.UserAdmin) leaves an account to an editor only
if the editor could get all it can do anyway. Its Django permissions the admin compares itself.
Some accounts hold none and are powerful all the same: a vendor's member gets a personal API
token with their password (POST /api/v1/auth/token) and acts for the vendor. `okada.core`
imports no domain app, so each app declares such powers from its AppConfig's `ready()`::

    from okada.core import account_powers

    account_powers.register(account_powers.Power(
        key="catalog.vendor_member",        # unique; registering the key again replaces it
        permission="catalog.add_vendormember",  # whoever holds it could get the power anyway
        held=lambda account: VendorMember.objects.filter(user=account).exists(),  # one EXISTS
        refusal=_("This account is a vendor's member ... ask someone who ..."),
    ))

`held(account)` is asked only of an editor who lacks the power's permission (never of a
superuser's): one query at most per power and account, never per row of a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Power:
    key: str
    permission: str  # "app_label.codename": who holds it may edit an account holding the power
    held: Callable[[Any], bool]  # whether the account holds the power now
    refusal: Any  # what the editor is told (translated, lazily): why not, and whom to ask


_registry: dict[str, Power] = {}


def register(power: Power) -> Power:
    _registry[power.key] = power
    return power


def unregister(key: str) -> None:
    _registry.pop(key, None)


def registered() -> list[Power]:
    return [p for _, p in sorted(_registry.items())]


def beyond(account: Any, editor: Any) -> list[Power]:
    """The powers `account` holds that `editor` could not get: an editor holding a power's
    permission is not asked about it (no query); a superuser holds every permission."""
    if editor.is_superuser:
        return []
    return [p for p in registered() if not editor.has_perm(p.permission) and p.held(account)]
