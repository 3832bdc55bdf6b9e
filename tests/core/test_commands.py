"""Management commands of the core, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py as a user does, in a process of its own, with `env` added."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_services_gives_one_clear_line_when_database_url_points_at_nothing():
    result = manage(
        "check_services",
        DATABASE_URL="postgres://okada@127.0.0.1:1/nowhere",
        DJANGO_SETTINGS_MODULE="okada.settings.test",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/nowhere (DATABASE_URL)" in result.stderr


def test_check_services_gives_one_clear_line_when_redis_is_unreachable():
    result = manage(
        "check_services", REDIS_URL="redis://127.0.0.1:1/0", DJANGO_SETTINGS_MODULE="okada.settings.local"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot connect to Redis at 127.0.0.1:1/0 (REDIS_URL)" in result.stderr


@pytest.mark.django_db
def test_ensure_admin_creates_one_admin_once_and_prints_its_password():
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "Admin user created: admin / " in out.getvalue()
    password = out.getvalue().split("admin / ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)

    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert "already exists" in again.getvalue()
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["", "  ", "ops admin!"])
def test_ensure_admin_refuses_a_username_the_login_form_would_refuse(username):
    # An empty one was a ValueError traceback; "ops admin!" made a superuser nobody could sign in
    # as from the admin's form (Django's username validator was skipped).
    with pytest.raises(CommandError, match="--username"):
        call_command("ensure_admin", "--username", username, stdout=StringIO())
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_ensure_admin_says_when_a_user_that_is_not_a_superuser_has_the_name():
    # It was an IntegrityError traceback: a staff account named admin, no superuser yet.
    get_user_model().objects.create_user("admin", password="x")
    with pytest.raises(CommandError, match=r"a user named 'admin' exists but is not a superuser"):
        call_command("ensure_admin", stdout=StringIO())
    assert not get_user_model().objects.filter(is_superuser=True).exists()


def test_production_settings_pass_check_deploy_without_warnings():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="okada.settings.production",
        SECRET_KEY="x" * 20 + "-production-secret-key-with-enough-entropy-9f8e7d6c5b4a",
        ALLOWED_HOSTS="okada.cm",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_migration_sql_writes_each_hand_written_statement_as_the_migration_runs_it(tmp_path):
    from importlib import import_module

    call_command("migration_sql", out=tmp_path, stdout=StringIO())

    v4 = import_module("orders.migrations.0010_order_place_v4")
    forward = (tmp_path / "orders" / "0010_order_place_v4.1.forward.sql").read_text()
    assert forward == f"{v4.UUID7.strip()}\n{v4.SQL.strip()}\n"  # a list of statements, joined
    search = import_module("catalog.migrations.0001_initial").SEARCH_SQL
    assert (tmp_path / "catalog" / "0001_initial.1.forward.sql").read_text() == search.strip() + "\n"
    assert not (tmp_path / "auth").exists()  # Django's own migrations are not ours to lint


def test_migration_sql_replaces_its_own_files_and_deletes_nothing_else(tmp_path):
    # `--out` was emptied with rmtree, whatever it held: `migration_sql --out .` deleted the
    # checkout, `--out ~` a home directory. Now only the SQL files it writes are replaced.
    call_command("migration_sql", out=tmp_path, stdout=StringIO())
    stale = tmp_path / "orders" / "0001_gone.1.forward.sql"
    stale.write_text("SELECT 1;\n")
    call_command("migration_sql", out=tmp_path, stdout=StringIO())  # its own output: replaced
    assert not stale.exists()
    assert (tmp_path / "catalog" / "0001_initial.1.forward.sql").exists()

    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(CommandError, match=r"--out .* holds files migration_sql did not write"):
        call_command("migration_sql", out=tmp_path, stdout=StringIO())
    assert keep.read_text() == "mine"
    assert (tmp_path / "catalog" / "0001_initial.1.forward.sql").exists()  # nothing deleted


def test_every_command_of_ours_runs_untranslated():
    # Operators and cron read English (README quotes it), whatever LANGUAGE_CODE is: Django runs a
    # command in LANGUAGE_CODE unless its handle() says @no_translations.
    from importlib import import_module

    from django.conf import settings
    from django.core.management import get_commands, load_command_class

    def ours(app: str) -> bool:
        where = Path(import_module(app).__file__ or "").resolve()
        return where.is_relative_to(settings.BASE_DIR) and ".venv" not in where.parts

    commands = {name: app for name, app in get_commands().items() if ours(app)}
    assert {"maintain_partitions", "backup", "restore_backup", "issue_api_key"} <= set(commands)
    translated = [
        name
        for name, app in commands.items()
        if load_command_class(app, name).handle.__qualname__ != "no_translations.<locals>.wrapper"
    ]
    assert translated == [], "decorate their handle() with django.core.management.base.no_translations"
