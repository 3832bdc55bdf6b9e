"""`Authorization: Bearer <key>`: who is calling, as an Actor, with the credential's scopes.

The lookup itself belongs to the app that stores credentials (vendor API keys, storefront keys,
personal tokens reference vendors, which okada.core must not import): it is the function named
by `OKADA_API_CREDENTIAL_RESOLVER`, `(raw_token) -> Credential | None`.

Each web process keeps the credentials it resolved that say they may be kept (`cacheable`), by
the SHA-256 of the secret, for `OKADA_API_CREDENTIAL_CACHE_SECONDS` at most (and never past the
credential's own expiry). A kept one is trusted only while the Redis key `GENERATION` still holds
the value it had when the credential was read from the database; that value is read in the round
trip that counts the request for the rate limit, so a request with a kept credential makes no
database query and one Redis round trip. `credentials_changed()` (revocation, a deleted vendor)
sets the generation to a new random value (never a counter a lost key could repeat), so every
process drops what it kept at its next request. When Redis cannot be read nothing kept is
trusted: every request reads the database.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from okada.core.actors import Actor
from okada.core.errors import NotAllowed, NotAuthenticated
from okada.core.texts import Text

from . import ratelimit

log = logging.getLogger(__name__)
GENERATION = "okada:credentials:generation"


@dataclass(frozen=True)
class Credential:
    """An authenticated caller.

    `scope_key` names the credential for rate limits and idempotency records ("key:<uuid>",
    "token:<uuid>"): two credentials never share one, even for the same vendor.
    """

    scope_key: str
    actor: Actor
    scopes: frozenset[str] = field(default_factory=frozenset)
    label: str = ""
    # The resolver allows web processes to keep this answer (see the module docstring): only
    # when every change that ends the credential calls credentials_changed().
    cacheable: bool = False
    expires_at: datetime | None = None

    @property
    def vendor_id(self) -> Any:
        return self.actor.vendor_id


@cache
def _resolver() -> Callable[[str], Credential | None]:
    return import_string(settings.OKADA_API_CREDENTIAL_RESOLVER)


class _Kept(NamedTuple):
    credential: Credential
    generation: Any  # GENERATION's value (bytes or None) when the credential was read
    until: float  # time.monotonic() after which it is read again


_kept: dict[str, _Kept] = {}  # SHA-256 of the secret -> the credential (this process)


def forget_credentials() -> None:
    """Drop what this process kept (tests; credentials_changed() reaches every process)."""
    _kept.clear()


def credentials_changed() -> None:
    """A credential stopped working (revoked, its vendor deleted): web processes drop the ones
    they kept. Called at once and again after the transaction commits (a request in between could
    otherwise keep what it read before the commit). If Redis cannot be reached, kept credentials
    still expire after OKADA_API_CREDENTIAL_CACHE_SECONDS."""

    def bump() -> None:
        try:
            # A new random value, not a counter: a generation lost with Redis's data (a flush, a
            # failover) comes back as another value, never as one a process kept keys under.
            ratelimit.value_set(GENERATION, uuid.uuid4().hex)
        except redis.RedisError as exc:
            log.warning(
                "credential cache: Redis unavailable, processes keep credentials up to %ss: %s",
                settings.OKADA_API_CREDENTIAL_CACHE_SECONDS,
                exc,
            )

    bump()
    transaction.on_commit(bump)


def _from_cache(digest: str, request: Request) -> Credential | None:
    kept = _kept.get(digest)
    if kept is None:
        return None
    credential = kept.credential
    expired = credential.expires_at is not None and credential.expires_at <= timezone.now()
    if expired or time.monotonic() > kept.until:
        _kept.pop(digest, None)
        return None
    # One round trip: count the request (the throttle then uses this count) and read the generation.
    usage = ratelimit.hit(credential.scope_key, ratelimit.credential_rate(), read=GENERATION)
    if usage is None:  # Redis cannot be read: nothing kept is trusted
        _kept.pop(digest, None)
        return None
    ratelimit.counted(request, credential.scope_key, usage)
    if usage.read != kept.generation:  # a credential changed somewhere: read them all again
        _kept.clear()
        return None
    return credential


def resolve(token: str, request: Request) -> Credential | None:
    """The credential a bearer secret proves: kept by this process, or from the resolver."""
    seconds = settings.OKADA_API_CREDENTIAL_CACHE_SECONDS
    if seconds <= 0:
        return _resolver()(token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    credential = _from_cache(digest, request)
    if credential is not None:
        return credential
    # Read the generation before the database: a change committed in between makes it stale.
    # Never set, or lost with Redis's data: a random one is started (read is False without Redis).
    read, generation = ratelimit.value_or_start(GENERATION, uuid.uuid4().hex)
    credential = _resolver()(token)
    if credential is not None and credential.cacheable and read:
        _kept[digest] = _Kept(credential, generation, time.monotonic() + seconds)
    return credential


class BearerAuthentication(authentication.BaseAuthentication):
    """Sets `request.user` (the credential's user or None), `request.auth` (the Credential) and
    `request.actor` (its Actor) on the DRF request and on the Django request under it."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Send the credential as: Authorization: Bearer <key>."))
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid credential.")) from None
        credential = resolve(token, request)
        if credential is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked credential."))
        attach(request, credential)
        return credential.actor.user, credential

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def attach(request: Request, credential: Credential) -> None:
    request.credential = credential  # type: ignore[attr-defined]
    request.actor = credential.actor  # type: ignore[attr-defined]
    # The Django request too: middleware (the access log) sees who called.
    request._request.credential = credential  # type: ignore[attr-defined]
    request._request.actor = credential.actor  # type: ignore[attr-defined]


class IsAuthenticatedCredential(permissions.BasePermission):
    """Every endpoint needs a credential unless it says otherwise (`permission_classes = []`),
    and the scope the view asks for the method (`required_scopes`)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not hasattr(view, str(request.method).lower()):
            return True  # the view answers 405 Method Not Allowed
        credential = request.auth
        if not isinstance(credential, Credential):
            raise exceptions.NotAuthenticated()
        if request.method == "OPTIONS":
            return True  # the view's description (DRF's metadata): nothing of any row
        # HEAD is GET without the body (Django serves it with `get`): GET's scope and roles, else
        # a HEAD would tell a key without the read scope whether an id exists (200 or 404).
        method = "GET" if request.method == "HEAD" else request.method
        needed = getattr(view, "required_scopes", {}).get(method) or ()
        for scope in (needed,) if isinstance(needed, str) else needed:  # one scope, or all of several
            if scope not in credential.scopes:
                raise NotAllowed(
                    Text(gettext_noop("This credential lacks the scope %(scope)s."), scope=scope), scope=scope
                )
        roles = getattr(view, "allowed_roles", None)
        if isinstance(roles, dict):
            roles = roles.get(method, set())
        if roles is not None and credential.actor.role not in roles:
            raise NotAllowed(_("This credential cannot use this endpoint."))
        return True


# --- Signed requests (e.g. payment provider callbacks) ------------------------------------------


class InvalidSignature(NotAuthenticated):
    code = "invalid_signature"
    default_message = _("The request signature is missing or wrong.")


class SignedBodyAuthentication(authentication.BaseAuthentication):
    """`X-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with a shared secret (hex digits
    in either case).

    A subclass says whose secret applies (`signer`). The signature is checked on the bytes as
    received, before anything is parsed or changed; a bad one is a 401 `invalid_signature`.
    The credential is the system acting as that signer (`Actor.system(name)`).
    """

    header = "X-Signature"

    def signer(self, request: Request) -> tuple[str, str]:
        """(name, secret) of the party expected to sign this request."""
        raise NotImplementedError

    def authenticate(self, request: Request) -> tuple[Any, Credential]:
        name, secret = self.signer(request)
        scheme, _, digest = request.headers.get(self.header, "").partition("=")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()  # lowercase
        # Hex digits in either case (some gateways send uppercase); compared in constant time.
        if (
            not secret
            or scheme != "sha256"
            or not hmac.compare_digest(digest.lower().encode(), expected.encode())
        ):
            raise InvalidSignature()
        credential = Credential(scope_key=f"signed:{name}", actor=Actor.system(name), label=name)
        attach(request, credential)
        return None, credential

    def authenticate_header(self, request: Request) -> str:
        return f'Signature header="{self.header}"'
