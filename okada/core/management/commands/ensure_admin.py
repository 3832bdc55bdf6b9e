"""Create the first admin user once, printing its password; later runs change nothing."""

from __future__ import annotations

import secrets
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, no_translations
from django.db import models


class Command(BaseCommand):
    help = "Create a superuser named 'admin' with a random password if no superuser exists."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@okada.local")

    @no_translations
    def handle(self, *args: Any, username: str, email: str, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user already exists (reset with `manage.py changepassword`).")
            return
        # The rules of the username field (create_superuser checks none): the admin's login form
        # could not sign in a name with a space, and an empty one was a traceback.
        try:
            field = cast("models.Field[Any, Any]", user_model._meta.get_field(user_model.USERNAME_FIELD))
            field.clean(username, None)
        except ValidationError as exc:
            raise CommandError(f"--username {username!r}: {' '.join(exc.messages)}") from None
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"a user named {username!r} exists but is not a superuser: make it one in the admin "
                "(Users, superuser status) or give another --username"
            )
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin user created: {username} / {password}"))
        self.stdout.write("Keep this password: it is shown only once.")
