"""credentials migration 0006: personal tokens of users whose password was disabled (or who were
deactivated) before a disabled password revoked them are revoked, run by Django's migration
executor on rows as they were before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from okada.credentials.models import PersonalToken
from okada.credentials.services import personal_token_issue
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import Api

pytestmark = pytest.mark.django_db

BEFORE = ("credentials", "0005_more_verbose_names")
REVOKE = ("credentials", "0006_revoke_tokens_of_disabled_users")


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def _member_token(vendor: Any, username: str) -> tuple[Any, PersonalToken, str]:
    user = UserFactory(username=username)
    user.set_password(f"pass-of-{username}")
    user.save()
    vendor.members.create(user=user)
    issued = personal_token_issue(username=username, password=f"pass-of-{username}")
    return user, issued.token, issued.secret


def test_live_tokens_of_disabled_passwords_and_inactive_users_are_revoked_and_no_other():
    migrate(BEFORE)
    vendor = VendorFactory()
    _, normal, normal_secret = _member_token(vendor, "normal")
    disabled_user, disabled, disabled_secret = _member_token(vendor, "disabled")
    inactive_user, inactive, _ = _member_token(vendor, "inactive")
    revoked_user, revoked, _ = _member_token(vendor, "revoked-earlier")
    expired_user, expired, _ = _member_token(vendor, "expired")
    # As before a disabled password revoked tokens: a queryset update, which no hook sees (as the
    # code of before saw no disabling at all). The token still works, and is read once (any
    # cache would now hold it).
    type(disabled_user).objects.filter(pk=disabled_user.pk).update(password=make_password(None))
    type(inactive_user).objects.filter(pk=inactive_user.pk).update(is_active=False)
    type(revoked_user).objects.filter(pk=revoked_user.pk).update(password=make_password(None))
    type(expired_user).objects.filter(pk=expired_user.pk).update(password=make_password(None))
    revoked_at = timezone.now() - timedelta(hours=3)
    PersonalToken.objects.filter(pk=revoked.pk).update(revoked_at=revoked_at)
    expires_at = timezone.now() - timedelta(minutes=5)
    PersonalToken.objects.filter(pk=expired.pk).update(expires_at=expires_at)
    assert Api(disabled_secret).get("/products").status_code == 200
    assert Api(normal_secret).get("/products").status_code == 200
    before = timezone.now()

    migrate(REVOKE)

    tokens = {t.pk: t for t in PersonalToken.objects.all()}
    assert tokens[normal.pk].revoked_at is None
    for pk in (disabled.pk, inactive.pk):
        when = tokens[pk].revoked_at
        assert when is not None and before <= when <= timezone.now()
        assert tokens[pk].updated_at == when  # as the service writes it
    assert tokens[revoked.pk].revoked_at == revoked_at  # revoked earlier: its time kept
    assert (tokens[expired.pk].revoked_at, tokens[expired.pk].expires_at) == (None, expires_at)
    # The next request with the revoked token is refused at once; the other user's still works.
    assert Api(disabled_secret).get("/products").status_code == 401
    assert Api(normal_secret).get("/products").status_code == 200
