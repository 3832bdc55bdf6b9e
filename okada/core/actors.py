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
from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from .texts import Text


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


@dataclass(frozen=True)
class Actor:
    """Who asks a service for a change: decides what they may do (see orders.services.TRANSITIONS).

    role is one of "vendor", "staff", "storefront", "system". A vendor actor acts for one vendor
    (`vendor_id`); `user` is the Django user when there is one (it also becomes the history user).
    """

    role: str
    user: Any = None
    vendor_id: Any = None
    label: str = ""

    VENDOR: ClassVar[str] = "vendor"
    STAFF: ClassVar[str] = "staff"
    STOREFRONT: ClassVar[str] = "storefront"
    SYSTEM: ClassVar[str] = "system"

    def __str__(self) -> str:
        who = self.label or (getattr(self.user, "username", "") if self.user is not None else "")
        return f"{self.role}:{who}" if who else self.role

    @classmethod
    def system(cls, label: str = "") -> Actor:
        return cls(role=cls.SYSTEM, label=label)

    @classmethod
    def for_staff_user(cls, user: Any) -> Actor:
        """The actor for an operations user (admin): STAFF, with the permissions of their groups.

        Refuses a user who is not active staff: being logged in is not a role.
        """
        from .errors import NotAllowed

        if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
            raise NotAllowed(_("Only active staff accounts can do this."))
        return cls(role=cls.STAFF, user=user)

    def can(self, perm: str) -> bool:
        """May this actor use the Django permission `perm` ("orders.change_order")?

        The system may do anything; staff acting through a user have that user's permissions
        (groups, superuser); staff without a user are trusted operators (management commands);
        vendors and the storefront have none: their rights are the rules of each service.
        """
        if self.role == self.SYSTEM:
            return True
        if self.role == self.STAFF:
            return self.user is None or bool(self.user.has_perm(perm))
        return False

    def require(self, perm: str) -> None:
        """Raise NotAllowed unless the actor `can(perm)`: services call it before every change."""
        from .errors import NotAllowed

        if not self.can(perm):
            raise NotAllowed(
                Text(
                    gettext_noop(
                        "You do not have the permission “%(label)s” (%(perm)s): ask an administrator "
                        "for a role that has it."
                    ),
                    label=permission_label(perm),
                    perm=perm,
                ),
                permission=perm,
            )

    def require_if_staff(self, perm: str) -> None:
        """Staff (the admin) need `perm`; vendors and the storefront are bound by each service's own
        rules (their vendor, the transitions their role may make), the system may do anything."""
        if self.role == self.STAFF:
            self.require(perm)


# Django names a model's default permissions in English only ("Can change order"), in the
# database: the refusal names them in the reader's language from the model instead.
DEFAULT_PERMISSION_LABELS = {
    "add": gettext_noop("Can add %(name)s"),
    "change": gettext_noop("Can change %(name)s"),
    "delete": gettext_noop("Can delete %(name)s"),
    "view": gettext_noop("Can view %(name)s"),
}


def permission_label(perm: str) -> Text:
    """What staff read for the permission `perm` ("catalog.adjust_stock"): its name as the model
    declares it (Meta.permissions, translated), or "Can change orders" for a default one; the
    code itself when no installed model has it."""
    from django.apps import apps

    app_label, _dot, codename = perm.partition(".")
    try:
        models = apps.get_app_config(app_label).get_models()
    except LookupError:
        return Text(perm)
    for model in models:
        opts = model._meta
        for code, name in opts.permissions:
            if code == codename:
                return Text.of(name)
        for action in opts.default_permissions:
            if codename == f"{action}_{opts.model_name}" and action in DEFAULT_PERMISSION_LABELS:
                return Text(DEFAULT_PERMISSION_LABELS[action], name=Text.of(opts.verbose_name_plural))
    return Text(perm)


@contextmanager
def acting_for(actor: Actor, reason: str | None = None) -> Iterator[Acting]:
    """History context for a service call made on behalf of `actor`.

    Without a user (storefront key, system job) the history user is empty, so the reason names
    the actor: "order placed [storefront]".
    """
    if reason and actor.user is None:
        reason = f"{reason} [{actor}]"
    with acting_as(user=actor.user, reason=reason) as acting:
        yield acting
