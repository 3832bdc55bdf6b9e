"""The README's settings table names every environment variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# env("X"), env.int("X", ...), env.db("X"), env.list("X") ... in okada/settings/*.py
READ = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def _read_by_settings() -> set[str]:
    settings = (ROOT / "okada" / "settings").glob("*.py")
    return {name for path in settings for name in READ.findall(path.read_text())}


def _readme_table() -> set[str]:
    section = (ROOT / "README.md").read_text().split("## Settings (environment)", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, re.M))


def test_the_readme_settings_table_lists_every_variable_the_settings_read():
    read = _read_by_settings()
    assert {"DATABASE_URL", "SECRET_KEY", "OKADA_MOBILE_MONEY_DEADLINE_MINUTES"} <= read  # the scan works
    assert read - _readme_table() == set()


def test_the_readme_settings_table_lists_nothing_the_settings_do_not_read():
    assert _readme_table() - _read_by_settings() == {"DJANGO_SETTINGS_MODULE"}  # read by manage.py, wsgi...
