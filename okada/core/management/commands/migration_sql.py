"""Write the SQL our migrations run by hand (RunSQL) to files, one per operation and direction.

`make lint` runs squawk, a PostgreSQL migration linter, over them: the functions, sequences and
indexes written by hand are checked like code, while the migrations stay exactly as they ran.
Django's own generated SQL is not written (makemigrations owns it), nor RunPython's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, no_translations
from django.db import migrations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation


def _run_sql(operations: Iterable[Operation]) -> Iterator[migrations.RunSQL]:
    for operation in operations:
        if isinstance(operation, migrations.RunSQL):
            yield operation
        elif isinstance(operation, migrations.SeparateDatabaseAndState):
            yield from _run_sql(operation.database_operations)


def _statements(sql: Any) -> str:
    """RunSQL's sql: a string, or a list of strings and (sql, params) pairs; noop is ''."""
    if isinstance(sql, str):
        return sql
    parts = [(part[0] if isinstance(part, list | tuple) else part).strip() for part in sql]
    return "\n".join(part if part.endswith(";") else part + ";" for part in parts)


def _written_here(out: Path, path: Path) -> bool:
    """What this command writes under `out`: `<app>/` and `<app>/<migration>.<n>.<direction>.sql`."""
    parts = path.relative_to(out).parts
    if len(parts) == 1:
        return path.is_dir() and not path.is_symlink()
    return len(parts) == 2 and path.suffix == ".sql" and path.is_file() and not path.is_symlink()


class Command(BaseCommand):
    help = "Write the hand-written SQL of this project's migrations to files (for squawk)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, default=Path(settings.BASE_DIR) / "var" / "migration-sql")

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        # Files of an earlier run are replaced (a migration's SQL may be gone since), but only
        # they: `--out .` must not empty the checkout.
        if out.exists():
            if not out.is_dir():
                raise CommandError(f"--out {out} is not a directory")
            others = [p for p in out.rglob("*") if not _written_here(out, p)]
            if others:
                raise CommandError(
                    f"--out {out} holds files migration_sql did not write (e.g. {others[0]}): "
                    "nothing deleted; give a new or empty directory"
                )
            shutil.rmtree(out)
        base = Path(settings.BASE_DIR).resolve()
        loader = MigrationLoader(None, ignore_no_migrations=True)  # no database needed
        written = 0
        for (app, name), migration in sorted(loader.disk_migrations.items()):
            app_path = Path(apps.get_app_config(app).path).resolve()
            if base not in app_path.parents or ".venv" in app_path.parts:
                continue  # Django's and third-party apps' migrations
            for number, operation in enumerate(_run_sql(migration.operations), start=1):
                for direction, sql in (("forward", operation.sql), ("reverse", operation.reverse_sql)):
                    text = _statements(sql) if sql else ""
                    if not text.strip():
                        continue
                    path = out / app / f"{name}.{number}.{direction}.sql"
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(text.strip() + "\n")
                    except OSError as exc:
                        raise CommandError(f"--out {out}: cannot write {path}: {exc.strerror}") from None
                    written += 1
        self.stdout.write(f"{written} SQL files in {out}")
