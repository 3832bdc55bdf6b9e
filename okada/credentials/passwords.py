"""A user's new password revokes their personal API tokens (README "API credentials").

The hook is Django's own notion of "the password changed": `AbstractBaseUser.save()` calls
`password_validation.password_changed(raw, user)` on every AUTH_PASSWORD_VALIDATORS entry after a
user whose `set_password()` was called is saved. That is every way a password is set: the admin's
password form (AdminPasswordChangeForm), Django's password-change and reset views (SetPasswordForm),
`manage.py changepassword`, `create_user`, and `set_password()` + `save()` anywhere. It is not
called for a hash upgrade at login (`check_password` clears the raw password before saving: the
same password), which a signal comparing the stored hash could not tell from a change. Listed last
in AUTH_PASSWORD_VALIDATORS (tests/credentials/test_passwords.py checks it is there); it refuses
no password, and its help text (under every password form) says what a new password does. Not
covered: `set_unusable_password()` (the admin's "disable password-based authentication"), which
Django does not report as a password change (deactivating the account stops the tokens).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from okada.core.actors import Actor

from .services import personal_tokens_revoke_for_user


class RevokeTokensOnPasswordChange:
    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None and getattr(user, "pk", None) is not None:
            personal_tokens_revoke_for_user(user=user, actor=Actor.system("password changed"))

    def get_help_text(self) -> str:
        return _("A new password revokes the personal API tokens taken with the old one.")
