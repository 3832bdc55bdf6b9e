"""What the backup tests share: waiting with a deadline, holding a lock pg_dump must wait for,
running code in a thread with its own connections, comparing databases, damaging a file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from backups import pg
from tests.orders.factories import OrderFactory

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120  # seconds: the deadline of waits that include a pg_dump or a worker's start


def server_query(sql: str, params: list[object] | None = None) -> list[tuple]:
    with pg.server_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def pg_dump_waits_for_a_lock() -> bool:
    return bool(
        server_query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'"
        )
    )


def pg_dump_connected() -> bool:
    return bool(server_query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump'"))


@contextmanager
def table_locked(table: str) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on `table` (another connection): pg_dump waits at its start."""
    conn = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with conn.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
            cursor.execute("ROLLBACK")
    finally:
        conn.close()


def fingerprints(alias: str, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """An md5 of every table's rows (in text, sorted): equal fingerprints, equal contents."""
    with connections[alias].cursor() as cursor:
        found = {}
        for schema, name in pg.tables(cursor):
            if f"{schema}.{name}" in skip:
                continue
            table = f"{pg.quote(schema)}.{pg.quote(name)}"
            sql = f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ONLY {table} t"  # noqa: S608
            cursor.execute(sql)
            found[f"{schema}.{name}"] = cursor.fetchone()[0]
    return found


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def marketplace() -> None:
    """A few vendors' orders, with their stock, ledger, events and history."""
    for _ in range(3):
        OrderFactory()
