"""A user's new password, or a disabled one, revokes their personal API tokens (README "API
credentials"). Two hooks, because Django reports only the first as a password change.

A new password: Django's own notion of "the password changed". `AbstractBaseUser.save()` calls
`password_validation.password_changed(raw, user)` on every AUTH_PASSWORD_VALIDATORS entry after a
user whose `set_password()` was called is saved. That is every way a password is set: the admin's
password form (AdminPasswordChangeForm), Django's password-change and reset views (SetPasswordForm),
`manage.py changepassword`, `create_user`, and `set_password()` + `save()` anywhere. It is not
called for a hash upgrade at login (`check_password` clears the raw password before saving: the
same password), which a signal comparing any stored hash could not tell from a change. Listed last
in AUTH_PASSWORD_VALIDATORS (tests/credentials/test_passwords.py checks it is there); it refuses
no password, and its help text (under every password form) says what a new password does.

A disabled password: `set_unusable_password()` (the admin's "disable password-based
authentication", or any code) followed by a save, which Django does not report. The user model is
Django's, so no service of ours sees every such save: `note_password_disabled` (pre_save of the
user model, connected in CredentialsConfig.ready) compares the stored password with the unusable
one about to be written, and `revoke_tokens_if_password_disabled` (post_save, once the row is
written) revokes. A hash upgrade always writes a usable password, so it never counts. Only a save
through the model is seen: a queryset `update(password=...)` is not.

A deactivated account (`is_active` set to False, the admin's checkbox) is seen by the same hooks
and revokes the same way: its tokens are refused while it is inactive anyway, but they would work
again once it is reactivated.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from okada.core.actors import Actor

from .services import personal_tokens_revoke_for_user

DISABLED = "_okada_password_disabled"  # the reason to revoke: set by pre_save, read by post_save


class RevokeTokensOnPasswordChange:
    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None and getattr(user, "pk", None) is not None:
            personal_tokens_revoke_for_user(user=user, actor=Actor.system("password changed"))

    def get_help_text(self) -> str:
        return _("A new password revokes the personal API tokens taken with the old one.")


def note_password_disabled(
    sender: Any,
    instance: Any,
    raw: bool = False,
    update_fields: Any = None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """pre_save of the user model: does this save replace the stored password with an unusable
    one, or deactivate the account? Read from the database only then (a save writing an unusable
    password or `is_active=False`), so logins (`update_fields=["last_login"]`) and ordinary saves
    cost no query. Disabling it again counts too (a new unusable value): it revokes tokens that
    outlived an earlier disabling.

    The password is looked at last: a save that does not write it may come from an instance that
    deferred it (`only("id", "last_login")`), and reading it would load it (a query). The stored
    row is read from the database the save writes to (`using`), never one a router would pick."""
    instance.__dict__.pop(DISABLED, None)
    if raw or instance.pk is None:
        return
    deactivating = (update_fields is None or "is_active" in update_fields) and not instance.is_active
    disabling = (update_fields is None or "password" in update_fields) and not instance.has_usable_password()
    if not (deactivating or disabling):
        return
    rows = sender._default_manager.db_manager(using)
    stored = rows.filter(pk=instance.pk).values_list("password", "is_active").first()
    if stored is None:
        return
    if disabling and stored[0] != instance.password:
        instance.__dict__[DISABLED] = "password disabled"
    elif deactivating and stored[1]:
        instance.__dict__[DISABLED] = "account deactivated"


def revoke_tokens_if_password_disabled(sender: Any, instance: Any, **kwargs: Any) -> None:
    """post_save of the user model: the row now holds the disabled password (or the account is
    inactive); revoke the tokens (in the save's transaction when there is one, as the admin's)."""
    reason = instance.__dict__.pop(DISABLED, None)
    if reason:
        personal_tokens_revoke_for_user(user=instance, actor=Actor.system(reason))
