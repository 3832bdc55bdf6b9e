"""`manage.py update_messages` (`make messages`): refresh the French catalogues from the code.

- `locale/fr/LC_MESSAGES/django.po`: every translatable string of the project (Python and
  templates), through Django's makemessages; strings no longer in the code are dropped.
- `locale/vendor/<package>/fr/LC_MESSAGES/django.po`: the strings of libraries that ship no
  French (django-unfold), extracted from the installed package. Strings Django's own French
  catalogues already translate are filled in from them, so the admin says the same thing twice
  the same way.

Then translate the new empty `msgstr` entries and run `make` (the .mo files are compiled by the
project's set-up). `tests/core/test_translations.py` fails on any untranslated or stale entry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, no_translations

LANGUAGE = "fr"
VENDORED = ("unfold",)  # installed packages whose French we keep (they ship none)
# Not shipped to users: no strings to translate there.
SKIP = {".venv", "var", "bench", "tests", "docs", "locale", "node_modules", ".git", ".ci"}


def project_po() -> Path:
    return Path(settings.BASE_DIR) / "locale" / LANGUAGE / "LC_MESSAGES" / "django.po"


def vendor_po(package: str) -> Path:
    return Path(settings.BASE_DIR) / "locale" / "vendor" / package / LANGUAGE / "LC_MESSAGES" / "django.po"


def extract_project(out: Path) -> None:
    """makemessages over the project's own code, into `out` (merged with what `out` has)."""
    base = Path(settings.BASE_DIR)
    sources = [p for p in base.iterdir() if p.name not in SKIP and (p.is_dir() or p.suffix == ".py")]
    _extract(sources, out)


def extract_vendor(package: str, out: Path) -> None:
    """makemessages over an installed package, into `out` (merged with what `out` has)."""
    module = __import__(package)
    _extract([Path(str(module.__file__)).resolve().parent], out)


def _extract(sources: list[Path], out: Path) -> None:
    """Run makemessages in a scratch directory holding links to `sources`, then copy the
    catalogue to `out`: the real locale/ directories never see a half-written file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for source in sources:
            (root / source.name).symlink_to(source)
        target = root / "locale" / LANGUAGE / "LC_MESSAGES" / "django.po"
        target.parent.mkdir(parents=True)
        if out.exists():
            shutil.copy(out, target)
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        django_admin = [sys.executable, "-m", "django"]
        subprocess.run(
            [
                *django_admin,
                "makemessages",
                "-l",
                LANGUAGE,
                "--symlinks",
                "--no-obsolete",
                "--add-location=file",
            ],
            cwd=root,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, out)


def fill_from_django(po_path: Path) -> int:
    """Fill empty entries with Django's own French for the same msgid (consistent wording)."""
    import django
    import polib

    known: dict[Any, Any] = {}
    base = Path(django.__file__).resolve().parent
    for catalogue in (
        base / "conf/locale/fr/LC_MESSAGES/django.po",
        base / "contrib/admin/locale/fr/LC_MESSAGES/django.po",
    ):
        for entry in polib.pofile(str(catalogue)):
            if entry.msgstr or entry.msgstr_plural:
                known[(entry.msgctxt, entry.msgid, entry.msgid_plural)] = entry
    po = polib.pofile(str(po_path))
    filled = 0
    for entry in po:
        if entry.translated():
            continue
        twin = known.get((entry.msgctxt, entry.msgid, entry.msgid_plural))
        if twin is not None:
            entry.msgstr, entry.msgstr_plural = twin.msgstr, dict(twin.msgstr_plural)
            if "fuzzy" in entry.flags:
                entry.flags.remove("fuzzy")
            filled += 1
    po.save()
    return filled


class Command(BaseCommand):
    help = "Refresh the French catalogues (project and vendored libraries) from the code."

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        extract_project(project_po())
        self.stdout.write(f"{project_po()}: {self._untranslated(project_po())} untranslated")
        for package in VENDORED:
            extract_vendor(package, vendor_po(package))
            filled = fill_from_django(vendor_po(package))
            left = self._untranslated(vendor_po(package))
            self.stdout.write(f"{vendor_po(package)}: {filled} filled from Django, {left} untranslated")

    @staticmethod
    def _untranslated(path: Path) -> int:
        import polib

        return len([e for e in polib.pofile(str(path)) if not e.translated() and not e.obsolete])
