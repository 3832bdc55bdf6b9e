"""`manage.py unlock_login <username> [--address IP]`: lift a failed-login lock-out now
(okada.core.login_guard) instead of waiting for its window to end."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations

from okada.core.api import ratelimit


class Command(BaseCommand):
    help = "Clear a username's (and optionally an address's) failed-login count."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the account locked out (any case)")
        parser.add_argument("--address", help="also clear this client address's count")

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        rate = ratelimit.parse_rate(settings.OKADA_API_LOGIN_RATE_LIMIT)
        keys = [f"login:user:{options['username'].lower()}"]
        if options["address"]:
            keys.append(f"login:ip:{options['address']}")
        for key in keys:
            if not ratelimit.reset(key, rate):
                raise CommandError(
                    "Redis cannot be reached (OKADA_API_RATELIMIT_REDIS_URL): nothing cleared. While it is "
                    "down, lock-outs are counted in each web worker's memory: restarting the web "
                    "server clears them."
                )
            self.stdout.write(f"cleared {key}")
