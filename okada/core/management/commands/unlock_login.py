"""`manage.py unlock_login <username> [--address IP]`: lift a failed-login lock-out now
(okada.core.login_guard) instead of waiting for its window to end."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations

from okada.core import login_guard


class Command(BaseCommand):
    help = "Clear a username's failed logins (from every address), and optionally an address's."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the account locked out (any case)")
        parser.add_argument(
            "--address",
            help="also clear this client address's count (all usernames; an IPv6 address clears its /64)",
        )

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        if not options["username"].strip():  # `unlock_login "$NAME"`, NAME unset: no login has it
            raise CommandError("unlock_login needs the username that is locked out: nothing cleared")
        address = options["address"]
        if address is not None:
            # Counters are keyed by the address the web server saw: a typo would clear a counter
            # no login uses, and the lock-out would stay.
            try:
                address = str(ipaddress.ip_address(address.strip()))
            except ValueError:
                raise CommandError(
                    f"--address {address!r} is not an IP address (e.g. 203.0.113.7 or 2001:db8::1, "
                    "without a port): nothing cleared"
                ) from None
        if not login_guard.unlock(options["username"], address or ""):
            raise CommandError(
                "Redis cannot be reached (OKADA_API_RATELIMIT_REDIS_URL): nothing cleared. While it is "
                "down, lock-outs are counted in each web worker's memory: restarting the web "
                "server clears them."
            )
        where = f" and the address {address}" if address else ""
        self.stdout.write(f"cleared the failed logins of {options['username']!r}{where}")
