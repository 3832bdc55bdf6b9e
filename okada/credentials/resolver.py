"""`OKADA_API_CREDENTIAL_RESOLVER`: a bearer secret -> the Credential it proves, or None.

One indexed query (by the public prefix), a constant-time hash comparison, and at most one
`last_used_at` write per credential per minute. API keys may be kept by the web processes
(`Credential.cacheable`, see okada.core.api.auth): revoking one and deleting a vendor call
`credentials_changed()`. Personal tokens are read on every request (a user deactivated or
removed from the vendor in the admin stops them at once, and nothing tells the cache).
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog.models import VendorMember
from okada.core.actors import Actor
from okada.core.api.auth import Credential

from .models import VENDOR_SCOPES, ApiKey, KeyKind, PersonalToken
from .services import KEY_PREFIX, credential_touch, matches, split


def resolve(raw: str) -> Credential | None:
    shape = split(raw)
    if shape is None:
        return None
    kind, prefix = shape
    return _api_key(raw, prefix) if kind == KEY_PREFIX else _personal_token(raw, prefix)


def _live(now: object) -> Q:
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _api_key(raw: str, prefix: str) -> Credential | None:
    now = timezone.now()
    key = (
        ApiKey.objects.filter(_live(now), prefix=prefix)
        .filter(Q(vendor__isnull=True) | Q(vendor__deleted_at__isnull=True))
        .only("id", "name", "kind", "vendor_id", "key_hash", "scopes", "last_used_at", "expires_at")
        .order_by()
        .first()
    )
    if key is None or not matches(raw, key.key_hash):
        return None
    credential_touch(ApiKey, key.pk, key.last_used_at)
    if key.kind == KeyKind.VENDOR:
        actor = Actor(role=Actor.VENDOR, vendor_id=key.vendor_id, label=key.name)
    else:
        actor = Actor(role=Actor.STOREFRONT, label=key.name)
    return Credential(
        scope_key=f"key:{key.pk}",
        actor=actor,
        scopes=frozenset(key.scopes),
        label=key.name,
        cacheable=True,
        expires_at=key.expires_at,
    )


def _personal_token(raw: str, prefix: str) -> Credential | None:
    now = timezone.now()
    member = VendorMember.objects.filter(user_id=OuterRef("user_id"), vendor_id=OuterRef("vendor_id"))
    token = (
        PersonalToken.objects.filter(_live(now), Exists(member), prefix=prefix)
        .filter(user__is_active=True, vendor__deleted_at__isnull=True)
        .select_related("user")
        .order_by()
        .first()
    )
    if token is None or not matches(raw, token.token_hash):
        return None
    credential_touch(PersonalToken, token.pk, token.last_used_at)
    actor = Actor(role=Actor.VENDOR, user=token.user, vendor_id=token.vendor_id)
    return Credential(
        scope_key=f"token:{token.pk}",
        actor=actor,
        scopes=frozenset(VENDOR_SCOPES),
        label=f"token:{token.user.get_username()}",
    )
