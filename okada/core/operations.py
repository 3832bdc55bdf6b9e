"""Migration operations for big tables: indexes built and dropped, comments changed, without
blocking writers.

Django drops the index of a field whose `db_index` turns off with a plain DROP INDEX, which takes
an ACCESS EXCLUSIVE lock: every write to the table queues behind it while it waits for running
transactions. `drop_field_index()` keeps Django's state change and drops the index CONCURRENTLY
instead. Migrations that use it, or `add_index_concurrently()`, must set `atomic = False`.

`manage.py migrate` bounds every lock wait (OKADA_MIGRATE_LOCK_TIMEOUT), because writers queue
behind a DDL statement that waits. A CONCURRENTLY statement is the exception: its SHARE UPDATE
EXCLUSIVE lock conflicts with no writer, and it then waits for every older transaction (a nightly
pg_dump, for minutes): bounding that wait protects nobody and would throw a finished build away,
so these operations lift the bound for such statements (`_concurrently`). Each of them can run
again after an interruption: an index an interrupted build left INVALID is dropped and built
again, a constraint already attached is kept.

Django changes a column's comment (`db_comment`) with `ALTER COLUMN ... TYPE <the same type>`
before the COMMENT: no rewrite, but an ACCESS EXCLUSIVE lock held to the end of the migration,
and on a foreign key column PostgreSQL validates the constraint again, reading the whole table
under that lock. `comments_only()` keeps Django's state change and runs the COMMENT alone, which
changes the catalog only (SHARE UPDATE EXCLUSIVE: reads and writes go on).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, transaction

from okada.core.db import session_lock_timeout


def _concurrently(schema_editor: Any, sql: str) -> None:
    """Run a CREATE/DROP INDEX CONCURRENTLY with no lock_timeout (see the module's docstring)."""
    with session_lock_timeout(schema_editor.connection, 0):
        schema_editor.execute(sql)


def _plain_or_concurrently(schema_editor: Any, sql: str) -> None:
    """A plain DROP/CREATE INDEX (partitioned tables) keeps migrate's bound: writers wait behind it."""
    if " CONCURRENTLY " in sql:
        _concurrently(schema_editor, sql)
    else:
        schema_editor.execute(sql)


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
        _plain_or_concurrently(schema_editor, f"DROP INDEX {how}IF EXISTS {index}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        table, column, index, how = target(apps, schema_editor)
        _plain_or_concurrently(
            schema_editor, f"CREATE INDEX {how}IF NOT EXISTS {index} ON {table} ({column})"
        )

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )


def _only_the_comment_differs(old: Any, new: Any) -> bool:
    *_, old_kwargs = old.deconstruct()
    *_, new_kwargs = new.deconstruct()
    old_kwargs.pop("db_comment", None)
    new_kwargs.pop("db_comment", None)
    return type(old) is type(new) and old_kwargs == new_kwargs


def comment_only(app_label: str, operation: migrations.AlterField) -> migrations.SeparateDatabaseAndState:
    """`operation` changes a field's `db_comment` and nothing else: COMMENT ON COLUMN (reversible)."""
    model_name, field_name, comment = operation.model_name, operation.name, operation.field.db_comment

    def set_comment(apps: Any, schema_editor: Any, text: str | None) -> None:
        model = apps.get_model(app_label, model_name)
        field = model._meta.get_field(field_name)
        if not _only_the_comment_differs(field, operation.field):
            raise ValueError(
                f"{app_label}.{model_name}.{field_name}: comment_only() changes more than the comment"
            )
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"COMMENT ON COLUMN {quote(model._meta.db_table)}.{quote(field.column)} IS "
            + ("NULL" if not text else schema_editor.quote_value(text))
        )

    def forwards(apps: Any, schema_editor: Any) -> None:
        set_comment(apps, schema_editor, comment)

    def backwards(apps: Any, schema_editor: Any) -> None:  # `apps` holds the field as it was
        model = apps.get_model(app_label, model_name)
        set_comment(apps, schema_editor, model._meta.get_field(field_name).db_comment)

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )


def comments_only(app_label: str, operations: list[Any]) -> list[Any]:
    """A generated migration's operations with each AlterField run by `comment_only()`: for a
    migration that changes comments and nothing else (AlterModelTableComment is a COMMENT already)."""
    return [comment_only(app_label, op) if isinstance(op, migrations.AlterField) else op for op in operations]


def _drop_invalid_index(schema_editor: Any, name: str) -> None:
    """An index a failed CONCURRENTLY build left behind (INVALID): dropped, so a rerun builds it."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT NOT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)", [name])
        row = cursor.fetchone()
    if row and row[0]:
        _concurrently(schema_editor, f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def _exists(schema_editor: Any, relation: str) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [relation])
        return bool(cursor.fetchone()[0])


def _has_constraint(schema_editor: Any, table: str, name: str) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s)",
            [table, name],
        )
        return bool(cursor.fetchone()[0])


def add_unique_concurrently(
    app_label: str, operation: migrations.AddConstraint
) -> migrations.SeparateDatabaseAndState:
    """`operation` adds a plain UNIQUE constraint on columns: build its index CONCURRENTLY (reads
    and writes go on), then attach it as the constraint (`ADD CONSTRAINT ... USING INDEX`, a
    catalog change under a brief ACCESS EXCLUSIVE lock, given up after OKADA_MIGRATE_LOCK_TIMEOUT
    like every lock `manage.py migrate` waits for; rerun the migration then). Reversible.

    Django's own AddConstraint builds the index inside ALTER TABLE, blocking writes for the whole
    build. If rows break the rule, the build fails and nothing is left behind."""
    constraint: Any = getattr(operation, "constraint")  # noqa: B009 (untyped in django-stubs)
    model_name: str = getattr(operation, "model_name")  # noqa: B009
    if constraint.condition is not None or constraint.expressions or not constraint.fields:
        raise ValueError("add_unique_concurrently() takes a plain UNIQUE constraint on columns")
    name = constraint.name

    def forwards(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        if _has_constraint(schema_editor, model._meta.db_table, name):
            return  # attached by an earlier, interrupted run of the migration
        columns = ", ".join(quote(model._meta.get_field(f).column) for f in constraint.fields)
        _drop_invalid_index(schema_editor, name)
        try:
            _concurrently(
                schema_editor,
                f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} ON {table} ({columns})",
            )
        except Exception:
            _drop_invalid_index(schema_editor, name)
            raise
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} UNIQUE USING INDEX {quote(name)}"
            )

    def backwards(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"ALTER TABLE {quote(model._meta.db_table)} DROP CONSTRAINT IF EXISTS {quote(name)}"
        )

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )


def drop_index_concurrently(
    operation: migrations.RemoveConstraint | migrations.RemoveIndex, *, create_sql: str
) -> migrations.SeparateDatabaseAndState:
    """`operation` removes a partial unique constraint or an index (an index either way in
    PostgreSQL): DROP INDEX CONCURRENTLY; backwards runs `create_sql` (CREATE ... CONCURRENTLY)."""
    name: str = getattr(operation, "name")  # noqa: B009 (untyped in django-stubs)

    def forwards(apps: Any, schema_editor: Any) -> None:
        _concurrently(schema_editor, f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        _drop_invalid_index(schema_editor, name)
        _plain_or_concurrently(schema_editor, create_sql)

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )


def add_index_concurrently(
    app_label: str, operation: migrations.AddIndex
) -> migrations.SeparateDatabaseAndState:
    """Django's AddIndexConcurrently, able to run again after an interruption (an INVALID index
    left behind is dropped and built again; a valid one is kept) and without migrate's bound on
    the wait for older transactions (see the module's docstring). Reversible."""
    model_name: str = getattr(operation, "model_name")  # noqa: B009 (untyped in django-stubs)
    index = operation.index

    def forwards(apps: Any, schema_editor: Any) -> None:
        _drop_invalid_index(schema_editor, index.name)
        if _exists(schema_editor, index.name):
            return
        with session_lock_timeout(schema_editor.connection, 0):
            try:
                schema_editor.add_index(apps.get_model(app_label, model_name), index, concurrently=True)
            except Exception:
                _drop_invalid_index(schema_editor, index.name)
                raise

    def backwards(apps: Any, schema_editor: Any) -> None:
        with session_lock_timeout(schema_editor.connection, 0):
            schema_editor.remove_index(apps.get_model(app_label, model_name), index, concurrently=True)

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )


_ON_ONLY = "CREATE INDEX %(name)s ON ONLY %(table)s%(using)s (%(columns)s)%(include)s%(extra)s%(condition)s"
_CONCURRENTLY = (
    "CREATE INDEX CONCURRENTLY %(name)s ON %(table)s%(using)s (%(columns)s)%(include)s%(extra)s%(condition)s"
)


def _partition_index_name(table: str, partition: str, index: str) -> str:
    """The name of `index`'s copy on `partition`: `<index>_<the partition's own part>` (p202501,
    default), within PostgreSQL's 63 bytes."""
    own = partition[len(table) + 1 :] if partition.startswith(f"{table}_") else partition
    name = f"{index}_{own}"
    if len(name.encode()) > 63:
        name = f"{index[:50]}_{hashlib.sha1(partition.encode()).hexdigest()[:8]}"  # noqa: S324 (a name)
    return name


def _index_partitions(schema_editor: Any, table: str, index: str) -> list[tuple[str, str | None]]:
    """Each partition of `table` (the DEFAULT one included) and the name of its index attached to
    `index` (None when it has none yet)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT part.relname, attached.relname FROM pg_inherits p "
            "JOIN pg_class part ON part.oid = p.inhrelid "
            "LEFT JOIN (pg_inherits ip JOIN pg_class attached ON attached.oid = ip.inhrelid "
            "           JOIN pg_index ai ON ai.indexrelid = ip.inhrelid) "
            "  ON ip.inhparent = to_regclass(%s) AND ai.indrelid = part.oid "
            "WHERE p.inhparent = to_regclass(%s) ORDER BY 1",
            [schema_editor.quote_name(index), schema_editor.quote_name(table)],
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]


def add_partitioned_index(
    app_label: str, operation: migrations.AddIndex
) -> migrations.SeparateDatabaseAndState:
    """`operation` adds an index to a table partitioned by month: built the way that blocks no
    writer, which PostgreSQL's CREATE INDEX on the parent is not (it builds every partition's
    index in one statement, writes to the whole table waiting meanwhile; CONCURRENTLY is refused
    on a partitioned table):

    1. `CREATE INDEX ... ON ONLY parent`: the parent's index alone, INVALID, a catalog change
       (under migrate's lock bound: writers wait for it, briefly);
    2. `CREATE INDEX CONCURRENTLY` on each partition, the DEFAULT one included (reads and writes
       go on);
    3. `ALTER INDEX parent_index ATTACH PARTITION partition_index` for each: a catalog change. Once
       every partition's is attached, PostgreSQL marks the parent's VALID.

    Partitions made later (okada.partitions.ddl.create_month_partition: CREATE TABLE LIKE, then
    ATTACH) get it as they get every index of the parent: ATTACH PARTITION builds it on the new
    table. Runs again after an interruption: a partition index an interrupted build left INVALID
    is dropped and built again, those built or attached already are kept. Reversible (the
    parent's index is dropped with those attached to it, plainly: PostgreSQL cannot drop a
    partitioned index CONCURRENTLY). The migration must set `atomic = False`."""
    model_name: str = getattr(operation, "model_name")  # noqa: B009 (untyped in django-stubs)
    index = operation.index

    def statement(apps: Any, schema_editor: Any, sql: str) -> Any:
        model = apps.get_model(app_label, model_name)
        return index.create_sql(model, schema_editor, sql=sql), model._meta.db_table

    def forwards(apps: Any, schema_editor: Any) -> None:
        quote = schema_editor.quote_name
        parent, table = statement(apps, schema_editor, _ON_ONLY)
        if not _exists(schema_editor, quote(index.name)):
            schema_editor.execute(str(parent))
        # A partition added while this runs gets its index from ATTACH: the list is read again
        # until every partition has one attached.
        while missing := [
            p for p, attached in _index_partitions(schema_editor, table, index.name) if not attached
        ]:
            for partition in missing:
                name = _partition_index_name(table, partition, index.name)
                _drop_invalid_index(schema_editor, name)
                if not _exists(schema_editor, quote(name)):
                    build, _ = statement(apps, schema_editor, _CONCURRENTLY)
                    build.parts["table"] = quote(partition)
                    build.parts["name"] = quote(name)
                    try:
                        _concurrently(schema_editor, str(build))
                    except Exception:
                        _drop_invalid_index(schema_editor, name)
                        raise
                schema_editor.execute(f"ALTER INDEX {quote(index.name)} ATTACH PARTITION {quote(name)}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        quote = schema_editor.quote_name
        table = apps.get_model(app_label, model_name)._meta.db_table
        partitions = [p for p, _ in _index_partitions(schema_editor, table, index.name)]
        # The partitions' attached indexes go with it; any an interrupted run left unattached after.
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(index.name)}")
        for partition in partitions:
            name = _partition_index_name(table, partition, index.name)
            _concurrently(schema_editor, f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")

    return migrations.SeparateDatabaseAndState(
        state_operations=[operation],
        database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
    )
