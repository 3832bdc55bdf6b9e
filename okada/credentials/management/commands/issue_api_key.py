"""`manage.py issue_api_key --vendor <slug> [--name N] [--scopes ...]` or `--storefront`: a new
API key, printed once (only its hash is kept)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations
from django.utils import timezone

from catalog.models import Vendor
from okada.core.actors import Actor
from okada.core.errors import DomainError
from okada.credentials.models import ApiKey, Scope
from okada.credentials.services import api_key_issue


class Command(BaseCommand):
    help = "Issue a vendor or storefront API key and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--vendor", metavar="SLUG", help="a key acting for this vendor")
        who.add_argument("--storefront", action="store_true", help="a storefront key (places orders)")
        parser.add_argument(
            "--name", default="", help="what the key is for (default: the vendor or storefront)"
        )
        parser.add_argument(
            "--scopes",
            nargs="+",
            choices=[s.value for s in Scope],
            help="default: every scope of its kind",
        )
        parser.add_argument("--expires-days", type=int, help="the key stops working after this many days")

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        vendor = None
        if options["vendor"] is not None:
            # An empty slug (`--vendor "$SLUG"`, SLUG unset) is a mistake, not a storefront key.
            if not options["vendor"].strip():
                raise CommandError("--vendor needs a vendor's slug (Catalog > Vendors in the admin)")
            vendor = Vendor.objects.filter(slug=options["vendor"]).first()
            if vendor is None:
                raise CommandError(f"no live vendor with slug {options['vendor']!r}")
        days = options["expires_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-days must be positive")
        try:
            expires_at = timezone.now() + timedelta(days=days) if days else None
        except OverflowError:
            raise CommandError("--expires-days is too large (the date would pass the year 9999)") from None
        longest = ApiKey._meta.get_field("name").max_length or 0
        if len(options["name"].strip()) > longest:  # not cut: the name is the operator's own
            raise CommandError(f"--name is {len(options['name'].strip())} characters long: at most {longest}")
        name = options["name"] or (f"{vendor.slug} integration" if vendor else "storefront")
        try:
            issued = api_key_issue(
                name=name,
                vendor=vendor,
                scopes=options["scopes"],
                expires_at=expires_at,
                actor=Actor(role=Actor.STAFF, label="issue_api_key"),  # an operator at the console
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        key = issued.key
        self.stderr.write(
            f"{key.kind} key {key.name!r} ({key.prefix}), scopes {' '.join(key.scopes)}"
            + (f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "")
            + ". It is shown once; only its hash is kept:"
        )
        self.stdout.write(issued.secret)
