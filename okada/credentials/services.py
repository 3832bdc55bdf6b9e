"""Issuing, revoking and checking API credentials. The secret is returned once, never stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from catalog.models import Vendor, VendorMember
from okada.core import services as core
from okada.core.actors import Actor
from okada.core.api.auth import credentials_changed
from okada.core.errors import InvalidInput, NotAuthenticated
from okada.core.texts import Text

from .models import STOREFRONT_SCOPES, VENDOR_SCOPES, ApiKey, KeyKind, PersonalToken

KEY_PREFIX = "okk"  # API keys: okk_<prefix>_<secret>
TOKEN_PREFIX = "okt"  # noqa: S105 (a label, not a secret): personal tokens okt_<prefix>_<secret>
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per credential


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_secret(kind: str) -> tuple[str, str]:
    """(public prefix, whole secret): 72 bits to find it, 256 random bits to prove it."""
    prefix = secrets.token_hex(6)
    return prefix, f"{kind}_{prefix}_{secrets.token_urlsafe(32)}"


def split(raw: str) -> tuple[str, str] | None:
    """(kind, prefix) of a presented secret, or None if it is not shaped like one of ours."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] not in (KEY_PREFIX, TOKEN_PREFIX) or len(parts[1]) != 12:
        return None
    return parts[0], parts[1]


def matches(raw: str, stored_hash: str) -> bool:
    return hmac.compare_digest(_hash(raw), stored_hash)


# --- API keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once to whoever asked for it, then forgotten


def _check_scopes(scopes: Sequence[str], allowed: Sequence[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(allowed))
    if unknown:
        raise InvalidInput(
            Text(gettext_noop("Scopes not available for this kind of key: %(s)s"), s=", ".join(unknown)),
            field="scopes",
        )
    return sorted(set(scopes))


def api_key_issue(
    *,
    name: str,
    actor: Actor,
    vendor: Vendor | None = None,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """A new vendor key (with `vendor`) or storefront key (without). Staff with the permission
    `credentials.add_apikey`, operators and the system only."""
    actor.require("credentials.add_apikey")
    if not name.strip():
        raise InvalidInput(_("A key needs a name."), field="name")
    kind = KeyKind.VENDOR if vendor is not None else KeyKind.STOREFRONT
    allowed = VENDOR_SCOPES if vendor is not None else [s.value for s in STOREFRONT_SCOPES]
    chosen = _check_scopes(scopes if scopes is not None else allowed, allowed)
    if not chosen:
        raise InvalidInput(_("A key needs at least one scope."), field="scopes")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput(_("The expiry must be in the future."), field="expires_at")
    prefix, secret = _new_secret(KEY_PREFIX)
    with transaction.atomic():
        if vendor is not None:
            # Re-read live, under a lock a vendor's deletion waits for: a deleted vendor's keys
            # would be refused at every request, so issuing one is a mistake to say now.
            vendor = core.locked(
                Vendor.objects,
                vendor.pk,
                gone=Text(gettext_noop("This vendor was deleted: a deleted vendor gets no new API keys.")),
                no_key=True,
            )
        key = ApiKey.objects.create(
            name=name.strip()[:100],
            kind=kind,
            vendor=vendor,
            prefix=prefix,
            key_hash=_hash(secret),
            scopes=chosen,
            expires_at=expires_at,
            created_by=actor.user if getattr(actor.user, "pk", None) else None,
        )
    return IssuedKey(key=key, secret=secret)


def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke at once: the next request with it is refused (401), also by the web processes that
    kept it (credentials_changed). Revoking twice is a no-op."""
    actor.require("credentials.change_apikey")
    with transaction.atomic():
        key = core.locked(ApiKey.objects, key.pk)
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.revoked_by = actor.user if getattr(actor.user, "pk", None) else None
            key.save(update_fields=["revoked_at", "revoked_by", "updated_at"])
            credentials_changed()
    return key


# --- Personal tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: PersonalToken
    secret: str


def personal_token_issue(*, username: str, password: str, vendor_slug: str = "") -> IssuedToken:
    """A token for a vendor user who gives their password (brute force is limited by the caller).

    The user must be active and a member of the vendor (`vendor_slug`, needed only when they
    belong to several). Wrong password, unknown user and non-member get the same refusal, and so
    does a password changed or disabled (or a user deactivated) while the token is issued.
    """
    refused = NotAuthenticated(_("Wrong username or password, or not a vendor member."))
    user = authenticate(username=username, password=password)
    if user is None:
        raise refused
    memberships = VendorMember.objects.filter(user=user, vendor__deleted_at__isnull=True).select_related(
        "vendor"
    )
    if vendor_slug:
        memberships = memberships.filter(vendor__slug=vendor_slug)
    vendors = [m.vendor for m in memberships[:2]]
    if not vendors:
        raise refused
    if len(vendors) > 1:
        raise InvalidInput(_("You work for several vendors: say which one (vendor)."), field="vendor")
    with transaction.atomic():
        # A password change or disabling that commits between authenticate() and the token would
        # revoke (in its own transaction) before the token exists: the token would outlive the
        # password it was taken with. Wait for such a save (its row lock) and check that the
        # password is still the one just checked; the same hash is a usable one. A deactivation
        # is refused too. `user.password` is the stored hash (an upgrade at login saved it).
        current = (
            type(user)
            ._default_manager.select_for_update(no_key=True)
            .filter(pk=user.pk)
            .values_list("password", "is_active")
            .first()
        )
        if current is None or current[0] != user.password or not current[1]:
            raise refused
        prefix, secret = _new_secret(TOKEN_PREFIX)
        token = PersonalToken.objects.create(
            user=user,
            vendor=vendors[0],
            prefix=prefix,
            token_hash=_hash(secret),
            expires_at=timezone.now() + timedelta(hours=settings.OKADA_API_TOKEN_HOURS),
        )
    return IssuedToken(token=token, secret=secret)


def personal_token_revoke(*, token: PersonalToken, actor: Actor) -> PersonalToken:
    """The owner, or staff allowed to change tokens, revoke a token at once."""
    if not (actor.user is not None and actor.user.pk == token.user_id):
        actor.require("credentials.change_personaltoken")
    with transaction.atomic():
        # The hourly prune may have deleted it meanwhile (long expired or revoked): NotFound.
        token = core.locked(PersonalToken.objects, token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at", "updated_at"])
    return token


def personal_tokens_revoke_for_user(*, user: Any, actor: Actor) -> int:
    """Revoke every live personal token of `user` at once (their password changed: a token taken
    with the old one must not outlive it); return how many. API keys are not tied to a user's
    password and stay. The owner, staff allowed to change tokens, or the system."""
    if not (actor.user is not None and actor.user.pk == getattr(user, "pk", None)):
        actor.require("credentials.change_personaltoken")
    if getattr(user, "pk", None) is None:
        return 0
    now = timezone.now()
    # One UPDATE, not a loop: a device that logs in often may hold many tokens. Tokens are read
    # from the database on every request (never kept by the web processes), so the next request
    # with one of them is refused.
    return PersonalToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now).update(
        revoked_at=now, updated_at=now
    )


PRUNE_BATCH = 5000  # tokens per DELETE: each statement stays short


def personal_tokens_prune(*, now: datetime | None = None) -> int:
    """Delete personal tokens that expired, or were revoked, more than
    OKADA_API_TOKEN_RETENTION_DAYS ago; return how many. Idempotent (the hourly job).

    A token stops working the moment it expires or is revoked; its row is kept that long only to
    show who used the API until then.
    """
    # Never a cutoff in the future: a negative setting would delete tokens still in use.
    days = max(0, settings.OKADA_API_TOKEN_RETENTION_DAYS)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    stale = PersonalToken.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff))
    deleted = 0
    while ids := list(stale.values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += PersonalToken.objects.filter(pk__in=ids).delete()[0]
    return deleted


# --- Using them -----------------------------------------------------------------------------------


def credential_touch(model: Any, pk: Any, last_used_at: datetime | None) -> None:
    """Record a use, at most once a minute per credential: the condition is checked in the
    UPDATE, so concurrent requests of one credential write it once."""
    now = timezone.now()
    if last_used_at is not None and now - last_used_at < TOUCH_EVERY:
        return
    model.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_EVERY), pk=pk).update(
        last_used_at=now
    )
