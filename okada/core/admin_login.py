"""The admin's login form, with the same brute-force lock-out as the API's logins."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import ngettext

from okada.core import login_guard
from okada.core.api import ratelimit


class LockOutAdminLoginForm(AdminAuthenticationForm):
    """Counts each attempt before the password is checked (okada.core.login_guard); past the limit
    every attempt, right or wrong, is refused until the window ends."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if not username or not self.cleaned_data.get("password"):
            return super().clean()  # nothing checked: "this field is required"
        try:
            attempt = login_guard.begin(username, ratelimit.client_ip(self.request))
        except login_guard.LockedOut as locked:
            minutes = -(-locked.retry_after // 60)
            raise ValidationError(
                ngettext(
                    "Too many failed logins for this account or from this address: "
                    "try again in %(n)d minute.",
                    "Too many failed logins for this account or from this address: "
                    "try again in %(n)d minutes.",
                    minutes,
                )
                % {"n": minutes},
                code="locked_out",
            ) from None
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if error.code != "invalid_login":  # not a wrong password (counts stay for those)
                attempt.not_a_failure()
            raise
        except BaseException:
            attempt.not_a_failure()
            raise
        attempt.succeeded()
        return cleaned
