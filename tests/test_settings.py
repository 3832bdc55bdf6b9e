"""The README's settings table names every environment variable the settings read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def _settings_load(
    code: str = "settings.OKADA_STUCK_MINUTES", **env: str
) -> subprocess.CompletedProcess[str]:
    """Load the local settings in a process of its own, with `env` added to the environment, and
    run `code` (printing what it should show)."""
    code = f"from django.conf import settings; {code}"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "okada.settings.local", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OKADA_BACKUP_MAX_AGE_HOURS", "36h"),  # a number
        ("OKADA_BACKUP_KEEP_PRE_MIGRATION", "three"),  # a number
        ("OKADA_BACKUP_KEEP_DAILY", "-1"),  # a count: kept no daily backup at all
        ("OKADA_API_MAX_BODY_BYTES", "-5"),  # a size
        ("OKADA_SYNC_LOCK_TIMEOUT_MS", "0"),  # PostgreSQL reads 0 as no limit at all
        ("OKADA_HEALTH_SEQUENCE_ALERT_PERCENT", "-1"),  # a float
        ("OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS", "0"),  # the hourly job pruned what it had just taken
        ("OKADA_HEALTH_SNAPSHOT_QUERIES", "0"),  # no statement kept: no delta ever
        ("OKADA_STUCK_MINUTES", "pending=-5"),
        ("OKADA_HEALTH_LONG_QUERY_MINUTES", "five"),  # a float
        ("OKADA_PARTITION_RETENTION_MONTHS", "36"),  # table=months, without the table
        ("OKADA_STUCK_MINUTES", "pending=ten"),
        ("OKADA_STUCK_MINUTES", "pendng=10"),  # a status that does not exist would be ignored
    ],
)
def test_a_variable_the_settings_cannot_read_is_named_in_the_error(variable, value):
    # Once a bare ValueError ("invalid literal for int() with base 10: '36h'") that named no
    # variable: the operator had to guess which of seventy to fix.
    loaded = _settings_load(**{variable: value})
    assert loaded.returncode != 0
    last = loaded.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured:")
    assert variable in last and repr(value) in last


def test_good_values_of_those_variables_are_read():
    loaded = _settings_load(
        OKADA_STUCK_MINUTES="pending=10", OKADA_PARTITION_RETENTION_MONTHS="orders_orderevent=36"
    )
    assert loaded.returncode == 0, loaded.stderr


def test_keepalives_given_in_database_url_are_kept_and_the_others_defaulted():
    url = os.environ.get("DATABASE_URL", "postgres://okada:secret@127.0.0.1:5432/okada")
    loaded = _settings_load(
        "o = settings.DATABASES['default']['OPTIONS']; "
        "print(o['keepalives_idle'], o['keepalives_interval'], o['keepalives_count'], o['keepalives'])",
        DATABASE_URL=url + ("&" if "?" in url else "?") + "keepalives_idle=60",
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["60", "10", "3", "1"]
