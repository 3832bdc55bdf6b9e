"""The README's settings table names every environment variable the settings read."""

from __future__ import annotations

import json
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
    code = f"import json; from django.conf import settings; {code}"
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
        ("OKADA_API_BODY_TIMEOUT_SECONDS", "0"),  # no time at all: every body a 408
        ("OKADA_SYNC_LOCK_TIMEOUT_MS", "0"),  # PostgreSQL reads 0 as no limit at all
        ("OKADA_MIGRATE_LOCK_TIMEOUT", "0"),  # the same (seconds, a float)
        ("OKADA_LOG_FORMAT", "xml"),  # json or plain
        ("OKADA_HEALTH_SEQUENCE_ALERT_PERCENT", "-1"),  # a float
        ("OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT", "150"),  # a share of 100: never reached
        ("OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT", "100.5"),
        ("OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS", "0"),  # the hourly job pruned what it had just taken
        ("OKADA_HEALTH_SNAPSHOT_QUERIES", "0"),  # no statement kept: no delta ever
        ("OKADA_STUCK_MINUTES", "pending=-5"),
        ("OKADA_HEALTH_LONG_QUERY_MINUTES", "five"),  # a float
        ("OKADA_HEALTH_IDLE_TRANSACTION_MINUTES", "-1"),
        ("OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES", "2"),  # below the warning's 5: never a warning
        ("OKADA_HEALTH_MULTIXACT_ALERT_PERCENT", "101"),
        ("OKADA_METRICS_ALLOWED_IPS", "10.0.0.0/8,10.0.0.300"),  # matched nobody, silently
        ("FORWARDED_ALLOW_IPS", "localhost"),
        ("OKADA_PARTITION_RETENTION_MONTHS", "36"),  # table=months, without the table
        ("OKADA_STUCK_MINUTES", "pending=ten"),
        ("OKADA_STUCK_MINUTES", "pendng=10"),  # a status that does not exist would be ignored
        # Stock.level stops counting at LOW_STOCK_CAP (20): every product would be "low stock"
        ("OKADA_LOW_STOCK_THRESHOLD", "20"),
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


def test_comma_separated_values_are_read_with_spaces_after_the_commas():
    """`ALLOWED_HOSTS=okada.cm, www.okada.cm` as people write lists: django-environ kept
    " www.okada.cm", a host no request names, so every request for it was a 400 (DisallowedHost),
    with nothing said at start-up. gunicorn reads FORWARDED_ALLOW_IPS so too ("127.0.0.1, ::1"),
    which Okada refused; and a table=months pair after a space named no table."""
    loaded = _settings_load(
        "print(json.dumps([settings.ALLOWED_HOSTS, settings.OKADA_TRUSTED_PROXIES,"
        " settings.OKADA_METRICS_ALLOWED_IPS, settings.OKADA_PARTITION_RETENTION_MONTHS]))",
        ALLOWED_HOSTS="okada.cm, www.okada.cm,",
        FORWARDED_ALLOW_IPS="127.0.0.1, ::1",
        OKADA_METRICS_ALLOWED_IPS=" 10.0.0.0/8 , 192.168.1.7",
        OKADA_PARTITION_RETENTION_MONTHS="sync_change=6, orders_orderevent = 36",
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == [
        ["okada.cm", "www.okada.cm"],
        ["127.0.0.1", "::1"],
        ["10.0.0.0/8", "192.168.1.7"],
        {"sync_change": "6", "orders_orderevent": "36"},
    ]


def test_keepalives_given_in_database_url_are_kept_and_the_others_defaulted():
    url = os.environ.get("DATABASE_URL", "postgres://okada:secret@127.0.0.1:5432/okada")
    loaded = _settings_load(
        "o = settings.DATABASES['default']['OPTIONS']; "
        "print(o['keepalives_idle'], o['keepalives_interval'], o['keepalives_count'], o['keepalives'])",
        DATABASE_URL=url + ("&" if "?" in url else "?") + "keepalives_idle=60",
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["60", "10", "3", "1"]


def test_the_low_stock_threshold_goes_up_to_just_below_the_cap_of_stock_level():
    # The settings cannot import models: their limit is written out, and must follow the model's.
    from catalog.models import LOW_STOCK_CAP

    highest = _settings_load(
        "print(settings.OKADA_LOW_STOCK_THRESHOLD)", OKADA_LOW_STOCK_THRESHOLD=str(LOW_STOCK_CAP - 1)
    )
    assert highest.returncode == 0, highest.stderr
    assert highest.stdout.strip() == str(LOW_STOCK_CAP - 1)
    assert _settings_load(OKADA_LOW_STOCK_THRESHOLD=str(LOW_STOCK_CAP)).returncode != 0


# Where a variable's value lands when it is not a setting of the same name.
_LANDS_IN = {
    "CONN_MAX_AGE": "DATABASES['default']['CONN_MAX_AGE']",
    "DJANGO_DEBUG": "DEBUG",
    "DJANGO_SECURE_SSL_REDIRECT": "SECURE_SSL_REDIRECT",
    "DJANGO_SECURE_HSTS_SECONDS": "SECURE_HSTS_SECONDS",
    "OKADA_MTN_MOMO_CALLBACK_SECRET": "OKADA_PAYMENT_CALLBACK_SECRETS['mtn_momo']",
    "OKADA_ORANGE_MONEY_CALLBACK_SECRET": "OKADA_PAYMENT_CALLBACK_SECRETS['orange_money']",
    "FORWARDED_ALLOW_IPS": "OKADA_TRUSTED_PROXIES",
}


def _readme_defaults() -> dict[str, str]:
    """The table's default cell of each variable whose default is a value written out: the first
    `literal` of the cell (`plain` (`json` in production): plain), or "" for "empty ..."."""
    section = (ROOT / "README.md").read_text().split("## Settings (environment)", 1)[1].split("\n## ", 1)[0]
    defaults = {}
    for name, cell in re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", section, re.M):
        if literal := re.match(r"`([^`]*)`", cell):
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*|manage\.py", literal.group(1)):  # another variable's
                defaults[name] = literal.group(1)
        elif cell.startswith("empty"):
            defaults[name] = ""
    return defaults


_SHOWN = """
import json, pathlib, sys
from django.conf import settings

def shown(v):
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, pathlib.Path) or type(v).__name__ == "Path":  # environ.Path too
        return str(pathlib.Path(str(v)).relative_to(settings.BASE_DIR))
    if isinstance(v, dict):
        return ",".join(f"{k}={n}" for k, n in v.items())
    if isinstance(v, list):
        return ",".join(v)
    return f"{v:g}" if isinstance(v, float) else str(v)

print(json.dumps({name: shown(eval("settings." + where)) for name, where in json.loads(sys.argv[1]).items()}))
"""


def _shown(names: list[str], module: str) -> dict[str, str]:
    """The values `names` have in the settings `module` with none of the table's variables set,
    written as the README writes them."""
    keep = {"DATABASE_URL", "REDIS_URL"}  # the private services: no default to check
    env = {k: v for k, v in os.environ.items() if k not in _readme_table() or k in keep}
    env["DJANGO_SETTINGS_MODULE"] = module
    if module.endswith("production"):  # required there
        env |= {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "okada.cm"}
    loaded = subprocess.run(
        [sys.executable, "-c", _SHOWN, json.dumps({name: _LANDS_IN.get(name, name) for name in names})],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    return json.loads(loaded.stdout)


def test_the_readme_settings_table_gives_the_defaults_the_settings_use():
    # Names were checked, defaults were not: a table whose default differs from the code sends an
    # operator tuning a limit the wrong way. "production only" variables and "empty" defaults are
    # read in the production settings; the others as a developer runs them (local settings).
    defaults = _readme_defaults()
    assert len(defaults) >= 50  # the parse works
    production = [n for n, d in defaults.items() if n.startswith("DJANGO_SECURE_") or d == ""]
    actual = _shown(production, "okada.settings.production")
    actual |= _shown([n for n in defaults if n not in production], "okada.settings.local")
    assert {n: (d, actual[n]) for n, d in defaults.items() if actual[n] != d} == {}


def test_a_replica_url_adds_a_replica_database_set_up_as_the_primary_and_mirrored_in_tests():
    primary = "postgres://okada:secret@127.0.0.1:5432/okada"
    show = (
        "d = settings.DATABASES; r = d.get('replica'); o = r and r['OPTIONS']; "
        "print(json.dumps(r and [r['HOST'], r['ENGINE'], r['CONN_HEALTH_CHECKS'], o['keepalives_idle'], "
        "o['prepare_threshold'] == d['default']['OPTIONS']['prepare_threshold'], r['TEST']['MIRROR']]))"
    )
    with_replica = _settings_load(
        show, DATABASE_URL=primary, DATABASE_REPLICA_URL="postgres://okada:secret@standby:5432/okada"
    )
    assert with_replica.returncode == 0, with_replica.stderr
    assert json.loads(with_replica.stdout) == ["standby", "okada.core.postgresql", True, 30, True, "default"]
    without = _settings_load(show, DATABASE_URL=primary, DATABASE_REPLICA_URL="")
    assert without.returncode == 0, without.stderr
    assert json.loads(without.stdout) is None
