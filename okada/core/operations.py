"""Migration operations for indexes on big tables: built and dropped without blocking writers.

Django drops the index of a field whose `db_index` turns off with a plain DROP INDEX, which takes
an ACCESS EXCLUSIVE lock: every write to the table queues behind it while it waits for running
transactions. `drop_field_index()` keeps Django's state change and drops the index CONCURRENTLY
instead. Migrations that use it, or `AddIndexConcurrently`, must set `atomic = False`.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _partitioned(schema_editor: Any, table: str) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0])


def drop_field_index(app_label: str, operation: migrations.AlterField) -> migrations.SeparateDatabaseAndState:
    """`operation` turns a field's own index off; drop that index CONCURRENTLY (reversible).

    PostgreSQL cannot drop or build a partitioned table's index concurrently: there the index is
    dropped (or built) plainly, which locks each partition briefly.
    """
    model_name, field_name = operation.model_name, operation.name

    def target(apps: Any, schema_editor: Any) -> tuple[str, str, str, str]:
        model = apps.get_model(app_label, model_name)
        table = model._meta.db_table
        column = model._meta.get_field(field_name).column
        index = schema_editor._create_index_name(table, [column], suffix="")
        how = "" if _partitioned(schema_editor, table) else "CONCURRENTLY "
        quote = schema_editor.quote_name
        return quote(table), quote(column), quote(index), how

    def forwards(apps: Any, schema_editor: Any) -> None:
        _, _, index, how = target(apps, schema_editor)
        schema_editor.execute(f"DROP INDEX {how}IF EXISTS {index}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        table, column, index, how = target(apps, schema_editor)
        schema_editor.execute(f"CREATE INDEX {how}IF NOT EXISTS {index} ON {table} ({column})")

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )
