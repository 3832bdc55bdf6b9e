"""Monthly range partitions for the append-only tables (stock ledger, order events, change feed).

- `partition_table(table)` is a migration operation: it turns the table Django just created into
  a table partitioned by month on `created_at`, with primary key (id, created_at), a DEFAULT
  partition (so an insert never fails for lack of a partition) and months around today.
- `ensure_month_partitions(table, start, end)` creates the monthly partitions covering a date
  range; rows that had landed in the DEFAULT partition for those months are moved into the new
  partition in the same transaction. Idempotent. Run it in a transaction of its own: the DEFAULT
  partition stays locked against inserts until that transaction ends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, migrations, transaction


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_p{month:%Y%m}"


def _exists(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    return bool(cursor.fetchone()[0])


def create_month_partition(cursor: Any, table: str, month: dt.date) -> bool:
    """Create the partition of `table` for `month`; return False if it already existed."""
    month = month_start(month)
    name = partition_name(table, month)
    if _exists(cursor, name):
        return False
    start, end = month.isoformat(), add_months(month, 1).isoformat()
    default = f"{table}_default"
    # Wait a little for locks, never long: writers must not queue behind maintenance. Restored
    # below, so a caller's transaction keeps its own setting.
    cursor.execute("SELECT current_setting('lock_timeout')")
    previous = cursor.fetchone()[0]
    cursor.execute("SET LOCAL lock_timeout = '5s'")
    # Build the partition detached, move any rows the DEFAULT partition caught for this month,
    # then attach: ATTACH refuses while DEFAULT still holds rows of the range.
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    if _exists(cursor, default):
        # Block inserts into DEFAULT until ATTACH: a row arriving between the move and the
        # attach would make ATTACH fail.
        cursor.execute(f'LOCK TABLE "{default}" IN SHARE ROW EXCLUSIVE MODE')
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{default}" WHERE created_at >= %s AND created_at < %s RETURNING *) '
            f'INSERT INTO "{name}" SELECT * FROM moved',
            [start, end],
        )
    cursor.execute(
        f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end]
    )
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    return True


def ensure_month_partitions(table: str, start: dt.date, end: dt.date) -> list[str]:
    """Create every missing monthly partition of `table` from start's month to end's month."""
    created = []
    month = month_start(start)
    with transaction.atomic(), connection.cursor() as cursor:
        while month <= end:
            if create_month_partition(cursor, table, month):
                created.append(partition_name(table, month))
            month = add_months(month, 1)
    return created


def partition_table(table: str, *, months_back: int = 1, months_ahead: int = 3) -> migrations.RunPython:
    """Migration operation: make `table` (empty, just created) partitioned by month."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cur:
            cur.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
                "AND indexname <> %s",
                [table, f"{table}_pkey"],
            )
            index_defs = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT obj_description(%s::regclass, 'pg_class')", [table])
            comment = cur.fetchone()[0]
            cur.execute(
                f'CREATE TABLE "{table}__p" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                f"INCLUDING COMMENTS) PARTITION BY RANGE (created_at)"
            )
            cur.execute(f'DROP TABLE "{table}"')
            cur.execute(f'ALTER TABLE "{table}__p" RENAME TO "{table}"')
            cur.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id, created_at)')
            for index_def in index_defs:
                cur.execute(index_def)
            if comment:
                cur.execute(f'COMMENT ON TABLE "{table}" IS %s', [comment])
            cur.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
            today = dt.date.today()
            month = add_months(month_start(today), -months_back)
            while month <= add_months(month_start(today), months_ahead):
                create_month_partition(cur, table, month)
                month = add_months(month, 1)

    # Reversing the CreateModel that precedes this drops the whole table anyway.
    return migrations.RunPython(forwards, migrations.RunPython.noop)
