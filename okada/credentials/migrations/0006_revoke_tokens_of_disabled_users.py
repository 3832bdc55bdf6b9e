"""Revoke the live personal tokens of users whose password is disabled, or who are inactive.

Since okada.credentials.passwords, disabling a user's password (`set_unusable_password()` + save)
revokes their personal tokens. A password disabled before that release left them live until they
expired (OKADA_API_TOKEN_HOURS): they are revoked here, once. An inactive user's tokens are
refused by the resolver already; revoked too, so that reactivating the account does not bring
back tokens taken before it was deactivated.

The write is what `services.personal_tokens_revoke_for_user` writes: `revoked_at` and `updated_at`
set to one `now`, on tokens not revoked and not expired yet (an expired one stays as it is; one
revoked earlier keeps its `revoked_at`). Replicated, not called: a migration runs against the
historical models of its point in the graph, and the service (its permission check, the models
of the latest code) may change after it.

Cache: none to clear. Personal tokens are read from the database on every request (the resolver
makes them not `cacheable`; only API keys are kept by web processes, okada.core.api.auth), and
their revocation calls no `credentials_changed()` for that reason: the first request with a
token revoked here, once this commits, is a 401, with no lag.

Not reversed: a revoked token stays revoked (its user takes a new one with their password).
"""

from typing import Any

from django.conf import settings
from django.db import migrations
from django.db.models import Q
from django.utils import timezone

# Django's unusable password (make_password(None), set_unusable_password()):
# django.contrib.auth.hashers.UNUSABLE_PASSWORD_PREFIX, kept here as this migration's own value.
UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 (a marker, not a password)


def revoke(apps: Any, schema_editor: Any) -> None:
    PersonalToken = apps.get_model("credentials", "PersonalToken")
    now = timezone.now()
    PersonalToken.objects.using(schema_editor.connection.alias).filter(
        Q(user__password__startswith=UNUSABLE_PASSWORD_PREFIX) | Q(user__is_active=False),
        revoked_at__isnull=True,
        expires_at__gt=now,
    ).update(revoked_at=now, updated_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("credentials", "0005_more_verbose_names"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(revoke, migrations.RunPython.noop, elidable=False)]
