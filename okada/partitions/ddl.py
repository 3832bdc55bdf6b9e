"""The SQL of monthly range partitions: create, read, detach, repair. No policy here (registry.py),
no scheduling (services.py): these functions do one DDL change each, on the cursor they are given.

- `partition_table(table)` is a migration operation: it turns the table Django just created into
  a table partitioned by month on its key, with primary key (id, key), a DEFAULT partition (so an
  insert never fails for lack of a partition) and months around today.
- `create_month_partition(cursor, table, month)` creates one month; rows the DEFAULT partition
  caught for that month move into it in the same transaction.
- `ensure_month_partitions(table, start, end)` creates every missing month of a range.
- `partitions(cursor, table)` reads a table's partitions and their bounds from the catalog.
- `append_only(table, hint=...)` is a migration operation: a row trigger on the parent (cloned by
  PostgreSQL to every partition, those attached later included) that refuses UPDATE and DELETE.
  The only rows maintenance deletes are those it moves out of DEFAULT into their month: it lifts
  the trigger on DEFAULT for that statement, in the same transaction, under its ACCESS EXCLUSIVE
  lock (`create_month_partition`). DETACH and DROP fire no row trigger.

Bounds are exact UTC months, passed as timezone-aware datetimes: a bare date would be read in the
session's TimeZone and, under Africa/Douala, start each month at 23:00 UTC the day before.

Locks: writers take the parent, then the partition a row goes to. Creating a month takes the
parent first too (EXCLUSIVE: writers wait before they route a row, see `create_month_partition`;
SHARE UPDATE EXCLUSIVE, which writers never wait for, on a table without DEFAULT), then the
DEFAULT partition (ACCESS EXCLUSIVE, which ATTACH needs anyway): the same order, so no deadlock.
`lock_timeout` bounds how long anyone queues behind us; the caller retries later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection, migrations, transaction
from django.utils.translation import gettext_noop, ngettext_lazy

from okada.core.texts import Text

UTC = dt.UTC
DEFAULT_LOCK_TIMEOUT_MS = 5000
# Written on a partition just before it is detached for retirement: a standalone table carrying
# it is ours to archive and drop, whatever interrupted the run that detached it.
RETIRING_MARK = "okada: retiring partition"
# The row trigger that makes a table append-only (`append_only`); the same name on every table.
APPEND_ONLY_TRIGGER = "okada_append_only"


class PartitionError(Exception):
    """A partition change the catalog refuses (name taken by another table, overlapping bounds),
    raised with a Text."""


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) in UTC."""
    month = month_start(month)
    nxt = add_months(month, 1)
    return (
        dt.datetime(month.year, month.month, 1, tzinfo=UTC),
        dt.datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
    )


def utc_month_of(instant: dt.datetime) -> dt.date:
    return instant.astimezone(UTC).date().replace(day=1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_p{month:%Y%m}"


def default_name(table: str) -> str:
    return f"{table}_default"


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as the catalog describes it."""

    name: str
    starts_at: dt.datetime | None  # None for DEFAULT (and MINVALUE bounds)
    ends_at: dt.datetime | None  # None for DEFAULT (and MAXVALUE bounds)
    is_default: bool
    detach_pending: bool  # an interrupted DETACH ... CONCURRENTLY: FINALIZE it
    estimated_rows: int | None  # pg_class.reltuples; None until the table is first analysed
    total_bytes: int  # table + indexes + TOAST

    @property
    def month(self) -> dt.date | None:
        """The UTC month the bounds cover exactly, or None (DEFAULT, or bounds that are not one)."""
        if self.starts_at is None or self.ends_at is None:
            return None
        month = utc_month_of(self.starts_at)
        return month if (self.starts_at, self.ends_at) == month_bounds(month) else None


# pg_get_expr renders bounds as text in the session's TimeZone with its offset, e.g.
# FOR VALUES FROM ('2026-03-01 00:00:00+00') TO ('2026-04-01 00:00:00+00'): casting that text
# back gives the exact instant whatever the TimeZone. MINVALUE/MAXVALUE/DEFAULT give NULLs.
_PARTITIONS_SQL = r"""
SELECT c.relname,
       (regexp_match(b.expr, '^FOR VALUES FROM \(''([^'']*)''\) TO'))[1]::timestamptz,
       (regexp_match(b.expr, 'TO \(''([^'']*)''\)$'))[1]::timestamptz,
       b.expr = 'DEFAULT',
       i.inhdetachpending,
       CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END,
       pg_total_relation_size(c.oid)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
WHERE i.inhparent = to_regclass(%s)
ORDER BY 2 NULLS FIRST, 1
"""


def partitions(cursor: Any, table: str) -> list[PartitionInfo]:
    """The partitions of `table` (DEFAULT first, then by start), from the catalog: no table scan."""
    cursor.execute(_PARTITIONS_SQL, [table])
    return [PartitionInfo(*row) for row in cursor.fetchall()]


def table_exists(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    return bool(cursor.fetchone()[0])


def is_partitioned(cursor: Any, table: str) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [table]
    )
    return bool(cursor.fetchone()[0])


def set_local_lock_timeout(cursor: Any, milliseconds: int) -> str:
    """SET LOCAL lock_timeout; returns the previous value for `restore_lock_timeout`."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    previous = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(milliseconds)}ms"])
    return str(previous)


def restore_lock_timeout(cursor: Any, previous: str) -> None:
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def create_month_partition(
    cursor: Any,
    table: str,
    month: dt.date,
    *,
    key: str = "created_at",
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    reattach: bool = False,
) -> int | None:
    """Create the partition of `table` for `month` (exact UTC bounds) inside the caller's transaction.

    Returns None when that month already has its partition, else the number of rows moved out of
    the DEFAULT partition into it (0 for a month made ahead). Raises PartitionError when another
    table has the partition's name or a partition overlaps the month. With `reattach`, a table of
    that name that maintenance detached to retire it (marked RETIRING_MARK) is attached back,
    rows and all, and unmarked, instead of being refused, if it still fits the parent
    (`fits_parent`).
    """
    month = month_start(month)
    name = partition_name(table, month)
    start, end = month_bounds(month)
    existing = partitions(cursor, table)
    if any(p.starts_at == start and p.ends_at == end for p in existing):
        return None
    overlapping = [
        p.name
        for p in existing
        if not p.is_default
        and (p.ends_at is None or p.ends_at > start)
        and (p.starts_at is None or p.starts_at < end)
    ]
    if overlapping:
        raise PartitionError(
            Text.of(
                ngettext_lazy(
                    "%(table)s: %(partitions)s overlaps %(month)s",
                    "%(table)s: %(partitions)s overlap %(month)s",
                    len(overlapping),
                )
            ).with_params(
                table=table,
                partitions=", ".join(overlapping),
                month=f"{month:%Y-%m}",
            )
        )
    adopt = table_exists(cursor, name)
    if adopt and not (reattach and is_marked_retiring(cursor, name) and fits_parent(cursor, table, name)):
        raise PartitionError(
            Text(
                gettext_noop("%(name)s exists but is not the %(month)s partition of %(table)s"),
                name=name,
                month=f"{month:%Y-%m}",
                table=table,
            )
        )
    default = default_name(table) if any(p.is_default for p in existing) else None
    previous = set_local_lock_timeout(cursor, lock_timeout_ms)
    # Built apart, then attached: CREATE ... PARTITION OF would take ACCESS EXCLUSIVE on the
    # parent (every writer waits), ATTACH only SHARE UPDATE EXCLUSIVE.
    if not adopt:
        cursor.execute(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    # A writer of the month that reached DEFAULT while we hold DEFAULT's lock would fail once the
    # month is attached ("violates partition constraint": its row was routed to DEFAULT before
    # it waited). Any month may have such a writer: the current one when premake lapsed, and a
    # month made ahead too (a row stamped by a web server whose clock runs ahead of the
    # database's, at the turn of the month). EXCLUSIVE on the parent makes writers wait before
    # they route instead (reads go on), for the time the move and the ATTACH take: DEFAULT is
    # kept empty, so that is short, and we wait at most lock_timeout for writers in flight.
    # Without DEFAULT no writer waits on it: SHARE UPDATE EXCLUSIVE, which writers never wait for.
    mode = "EXCLUSIVE" if default is not None else "SHARE UPDATE EXCLUSIVE"
    cursor.execute(f'LOCK TABLE ONLY "{table}" IN {mode} MODE')
    moved = 0
    if default:
        # ATTACH refuses while DEFAULT holds rows of the month, and scans DEFAULT under this
        # lock: move them first, with no insert able to slip in between.
        cursor.execute(f'LOCK TABLE "{default}" IN ACCESS EXCLUSIVE MODE')
        # A move, not an edit: an append-only table's trigger is off for this statement only
        # (DDL is transactional: a failure anywhere before COMMIT puts it back).
        guarded = _has_append_only_trigger(cursor, default)
        if guarded:
            cursor.execute(f'ALTER TABLE "{default}" DISABLE TRIGGER {APPEND_ONLY_TRIGGER}')
        # Columns named, not `SELECT *`: that matches by position, and a partition's column
        # order may differ from DEFAULT's (a column dropped and added again, a table adopted).
        columns = ", ".join(_column_names(cursor, table))
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{default}" WHERE "{key}" >= %s AND "{key}" < %s RETURNING *) '
            f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved',
            [start, end],
        )
        moved = cursor.rowcount
        if guarded:
            cursor.execute(f'ALTER TABLE "{default}" ENABLE TRIGGER {APPEND_ONLY_TRIGGER}')
    cursor.execute(
        f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end]
    )
    if adopt:
        cursor.execute(f'COMMENT ON TABLE "{name}" IS NULL')  # no longer ours to retire
    restore_lock_timeout(cursor, previous)
    return max(moved, 0)


def _column_names(cursor: Any, table: str) -> list[str]:
    """The quoted names of `table`'s columns (not the dropped ones)."""
    cursor.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [f'"{table}"'],
    )
    return [row[0] for row in cursor.fetchall()]


# What ATTACH PARTITION requires of a table, as comparable rows: its columns (name, type,
# collation, NOT NULL; not their order) and the parent's CHECK constraints (name, definition).
_COLUMNS_SQL = """
SELECT attname, format_type(atttypid, atttypmod), attcollation, attnotnull FROM pg_attribute
WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
"""
_CHECKS_SQL = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass(%s) AND contype = 'c'
"""


def fits_parent(cursor: Any, table: str, name: str) -> bool:
    """Whether the standalone table `name` can be attached back to `table` as it is: the same
    columns (names, types, collations, nullability) and every CHECK constraint of `table`.
    False when the parent's schema changed while `name` was detached (a column or a CHECK
    added, a type changed, a CHECK renamed: ATTACH matches them by name): ATTACH, or moving
    DEFAULT's rows of the month into it, would fail on every run."""

    def rows(sql: str, relation: str) -> set[tuple[Any, ...]]:
        cursor.execute(sql, [f'"{relation}"'])
        return {tuple(row) for row in cursor.fetchall()}

    return rows(_COLUMNS_SQL, name) == rows(_COLUMNS_SQL, table) and rows(_CHECKS_SQL, table) <= rows(
        _CHECKS_SQL, name
    )


def _has_append_only_trigger(cursor: Any, name: str) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s)",
        [f'"{name}"', APPEND_ONLY_TRIGGER],
    )
    return bool(cursor.fetchone()[0])


def ensure_month_partitions(table: str, start: dt.date, end: dt.date) -> list[str]:
    """Create every missing monthly partition of `table` from start's month to end's month.

    Idempotent. Run it in a transaction of its own: the DEFAULT partition stays locked until the
    transaction ends.
    """
    created = []
    month = month_start(start)
    with transaction.atomic(), connection.cursor() as cursor:
        while month <= end:
            if create_month_partition(cursor, table, month) is not None:
                created.append(partition_name(table, month))
            month = add_months(month, 1)
    return created


def default_rows_by_month(
    cursor: Any, table: str, *, key: str = "created_at"
) -> tuple[dict[dt.date, int], int]:
    """Rows the DEFAULT partition holds, per UTC month, and how many no month can take
    (infinite or beyond year 9999: no partition name or Python date can hold them)."""
    default = default_name(table)
    if not table_exists(cursor, default):
        return {}, 0
    cursor.execute(
        f"SELECT (date_trunc('month', \"{key}\", 'UTC') AT TIME ZONE 'UTC')::date, count(*) "
        f'FROM ONLY "{default}" WHERE isfinite("{key}") AND "{key}" < %s GROUP BY 1 ORDER BY 1',
        [dt.datetime(9999, 12, 1, tzinfo=UTC)],
    )
    months = {row[0]: int(row[1]) for row in cursor.fetchall()}
    cursor.execute(
        f'SELECT count(*) FROM ONLY "{default}" WHERE NOT isfinite("{key}") OR "{key}" >= %s',
        [dt.datetime(9999, 12, 1, tzinfo=UTC)],
    )
    return months, int(cursor.fetchone()[0])


def mark_retiring(cursor: Any, name: str) -> None:
    cursor.execute(f'COMMENT ON TABLE "{name}" IS %s', [RETIRING_MARK])


def is_marked_retiring(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class') = %s", [f'"{name}"', RETIRING_MARK])
    return bool(cursor.fetchone()[0])


def retiring_tables(cursor: Any, table: str) -> list[str]:
    """Standalone tables named like a month of `table` that maintenance detached to retire them
    (it marks them first) and has not dropped yet: an interrupted retirement to finish."""
    cursor.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition "
        "AND c.relname ~ %s AND obj_description(c.oid, 'pg_class') = %s ORDER BY 1",
        [f"^{table}_p[0-9]{{6}}$", RETIRING_MARK],
    )
    return [row[0] for row in cursor.fetchall()]


def detach_partition(cursor: Any, table: str, name: str, *, concurrently: bool) -> None:
    """DETACH `name` from `table`. CONCURRENTLY must run outside a transaction and is refused by
    PostgreSQL while `table` has a DEFAULT partition; the plain form takes ACCESS EXCLUSIVE on
    the parent for a catalog change only (set lock_timeout first)."""
    suffix = " CONCURRENTLY" if concurrently else ""
    cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"{suffix}')


def finalize_detach(cursor: Any, table: str, name: str) -> None:
    """Complete a DETACH ... CONCURRENTLY that was cancelled or interrupted."""
    cursor.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{name}" FINALIZE')


def drop_table(cursor: Any, name: str) -> None:
    cursor.execute(f'DROP TABLE IF EXISTS "{name}"')


def count_rows(cursor: Any, name: str) -> int:
    cursor.execute(f'SELECT count(*) FROM ONLY "{name}"')
    return int(cursor.fetchone()[0])


def repair_month_bounds(cursor: Any, table: str, *, key: str = "created_at") -> list[str]:
    """Re-make the partitions of `table` whose bounds are not exact UTC months, keeping every row.

    The misaligned partitions are detached (kept aside), the UTC months they touched are created,
    and their rows are inserted again through the parent, which routes each to its month (or to
    DEFAULT). Returns the names of the partitions re-made. Runs in the caller's transaction: the
    parent is locked meanwhile, which a migration may do.
    """
    misaligned = [
        (p.name, p.starts_at, p.ends_at)
        for p in partitions(cursor, table)
        if p.month is None and p.starts_at is not None and p.ends_at is not None
    ]
    for name, _, _ in misaligned:
        detach_partition(cursor, table, name, concurrently=False)
        cursor.execute(f'ALTER TABLE "{name}" RENAME TO "{name}_misaligned"')
    for _, starts_at, ends_at in misaligned:
        month = utc_month_of(starts_at)
        while month_bounds(month)[0] < ends_at:
            create_month_partition(cursor, table, month, key=key)
            month = add_months(month, 1)
    for name, _, _ in misaligned:
        cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{name}_misaligned"')
        drop_table(cursor, f"{name}_misaligned")
    return [name for name, _, _ in misaligned]


def repair_month_bounds_operation(*tables: str) -> migrations.RunPython:
    """Migration operation: `repair_month_bounds` for each table (a no-op where bounds are right)."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cur:
            for table in tables:
                repair_month_bounds(cur, table)

    return migrations.RunPython(forwards, migrations.RunPython.noop)


def make_partitioned(
    cursor: Any,
    table: str,
    *,
    key: str = "created_at",
    with_default: bool = True,
) -> None:
    """Turn `table` (empty) into a table partitioned by range on `key`, keeping its columns,
    defaults, constraints, indexes and comments; primary key (id, key); a DEFAULT partition
    unless told otherwise. No month yet: `create_month_partition` adds them."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname <> %s",
        [table, f"{table}_pkey"],
    )
    index_defs = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT obj_description(%s::regclass, 'pg_class')", [table])
    comment = cursor.fetchone()[0]
    cursor.execute(
        f'CREATE TABLE "{table}__p" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        f'INCLUDING COMMENTS) PARTITION BY RANGE ("{key}")'
    )
    cursor.execute(f'DROP TABLE "{table}"')
    cursor.execute(f'ALTER TABLE "{table}__p" RENAME TO "{table}"')
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id, "{key}")')
    for index_def in index_defs:
        cursor.execute(index_def)
    if comment:
        cursor.execute(f'COMMENT ON TABLE "{table}" IS %s', [comment])
    if with_default:
        cursor.execute(f'CREATE TABLE "{default_name(table)}" PARTITION OF "{table}" DEFAULT')


def partition_table(
    table: str, *, key: str = "created_at", months_back: int = 1, months_ahead: int = 3
) -> migrations.RunPython:
    """Migration operation: make `table` (empty, just created) partitioned by month on `key`."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            make_partitioned(cursor, table, key=key)
            this_month = month_start(dt.datetime.now(UTC).date())
            month = add_months(this_month, -months_back)
            while month <= add_months(this_month, months_ahead):
                create_month_partition(cursor, table, month, key=key)
                month = add_months(month, 1)

    # Reversing the CreateModel that precedes this drops the whole table anyway.
    return migrations.RunPython(forwards, migrations.RunPython.noop)


def append_only_sql(table: str, *, hint: str) -> tuple[str, str]:
    """(forward, reverse) SQL making `table` append-only: UPDATE and DELETE of its rows fail.

    One BEFORE row trigger on the parent: PostgreSQL clones it to every partition, present and
    future (CREATE ... PARTITION OF and ATTACH alike), so a statement aimed at a partition is
    refused too. Creating it takes SHARE ROW EXCLUSIVE on the parent and each partition for a
    catalog change only: no scan, no rewrite. The error is `restrict_violation` (SQLSTATE 23001,
    an IntegrityError in Django) with a message naming the table and a detail naming the
    operation and the partition. TRUNCATE, DETACH and DROP fire no row trigger: partition
    retirement keeps working (and Django's `flush`, which truncates every table, too).
    """
    function = f"{table}_append_only"
    message = f"{table} is append-only: {hint}".replace("'", "''")
    forward = f"""
CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{message}'
        USING ERRCODE = 'restrict_violation',
              DETAIL = format('%s of a row of %s refused.', TG_OP, TG_TABLE_NAME);
END
$$;
COMMENT ON FUNCTION {function}() IS 'Refuses UPDATE and DELETE of {table} rows.';
CREATE TRIGGER {APPEND_ONLY_TRIGGER} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
COMMENT ON TRIGGER {APPEND_ONLY_TRIGGER} ON {table} IS 'Append-only: rows are never changed or deleted.';
"""
    reverse = f"""
DROP TRIGGER {APPEND_ONLY_TRIGGER} ON {table};
DROP FUNCTION {function}();
"""
    return forward, reverse


def append_only(table: str, *, hint: str) -> migrations.RunSQL:
    """Migration operation: `table` becomes append-only (`append_only_sql`); reversible."""
    return migrations.RunSQL(*append_only_sql(table, hint=hint))
