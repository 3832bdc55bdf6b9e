"""`Authorization: Bearer <key>`: who is calling, as an Actor, with the credential's scopes.

The lookup itself belongs to the app that stores credentials (vendor API keys, storefront keys,
personal tokens reference vendors, which okada.core must not import): it is the function named
by `OKADA_API_CREDENTIAL_RESOLVER`, `(raw_token) -> Credential | None`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from okada.core.actors import Actor
from okada.core.errors import NotAllowed, NotAuthenticated


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

    @property
    def vendor_id(self) -> Any:
        return self.actor.vendor_id


@cache
def _resolver() -> Callable[[str], Credential | None]:
    return import_string(settings.OKADA_API_CREDENTIAL_RESOLVER)


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
        credential = _resolver()(token)
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
        needed = getattr(view, "required_scopes", {}).get(request.method)
        if needed and needed not in credential.scopes:
            raise NotAllowed(
                _("This credential lacks the scope %(scope)s.") % {"scope": needed}, scope=needed
            )
        roles = getattr(view, "allowed_roles", None)
        if isinstance(roles, dict):
            roles = roles.get(request.method, set())
        if roles is not None and credential.actor.role not in roles:
            raise NotAllowed(_("This credential cannot use this endpoint."))
        return True


# --- Signed requests (e.g. payment provider callbacks) ------------------------------------------


class InvalidSignature(NotAuthenticated):
    code = "invalid_signature"
    default_message = _("The request signature is missing or wrong.")


class SignedBodyAuthentication(authentication.BaseAuthentication):
    """`X-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with a shared secret.

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
        given = request.headers.get(self.header, "")
        expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not secret or not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidSignature()
        credential = Credential(scope_key=f"signed:{name}", actor=Actor.system(name), label=name)
        attach(request, credential)
        return None, credential

    def authenticate_header(self, request: Request) -> str:
        return f'Signature header="{self.header}"'
