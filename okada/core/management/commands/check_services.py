"""Fail with one clear line when PostgreSQL or Redis cannot be reached (instead of a traceback)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, no_translations
from django.db import connection

from okada.core import health


def _where(url: str) -> str:
    # Never print a password.
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or ''}{parts.path}"


class Command(BaseCommand):
    help = "Check that the database and Redis answer; exit 1 with a clear message if not."

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        db = settings.DATABASES["default"]
        try:
            connection.ensure_connection()
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"cannot connect to PostgreSQL at {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
                f"/{db.get('NAME')} (DATABASE_URL): {first_line}"
            ) from None
        try:
            health.CORE_CHECKS["redis"]()
        except Exception as exc:
            raise CommandError(
                f"cannot connect to Redis at {_where(settings.REDIS_URL)} (REDIS_URL): {exc}"
            ) from None
        self.stdout.write(self.style.SUCCESS("PostgreSQL and Redis answer."))
