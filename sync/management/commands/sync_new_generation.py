"""`manage.py sync_new_generation`: the restore hook. Every device downloads again on its next pull."""

from typing import Any

from django.core.management.base import BaseCommand, no_translations

from sync.services import generation_rotate


class Command(BaseCommand):
    help = (
        "Start a new sync generation after restoring this database from a backup: every device's "
        "next pull answers reset: true and the device downloads its data again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reason", default="database restored", help="why (logged)")

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        generation = generation_rotate(reason=options["reason"])
        self.stdout.write(f"sync generation is now {generation}: devices will download again")
