"""What PostgreSQL's catalog says, as the screens read it: statements, indexes, sequences, sizes."""

from __future__ import annotations

import pytest
from django.db import connection

from okada.health import pg
from tests.health.conftest import wait_until

pytestmark = pytest.mark.django_db


def execute(sql: str) -> None:
    with connection.cursor() as cur:
        cur.execute(sql)


def test_pg_stat_statements_is_created_by_the_migration_and_readable():
    # A table of its own: query ids ignore constants and aliases, but not the tables read.
    execute("CREATE TABLE health_probe (id int); SELECT count(*) FROM health_probe")
    with pg.reads() as cur:
        status = pg.statements_status(cur)
        found = pg.statements(cur, order="calls", limit=100_000)
    assert status["version"] and status["preloaded"] and status["available"]
    assert any(row["query"] == "SELECT count(*) FROM health_probe" for row in found)


def test_reads_run_read_only_under_the_statement_timeout(settings):
    settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS = 50
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="statement timeout"), pg.reads() as cur:
        cur.execute("SELECT pg_sleep(1)")
    with connection.cursor() as cur:  # the caller's transaction gets its own timeouts back
        cur.execute("SELECT current_setting('statement_timeout')")
        assert cur.fetchone()[0] == "0"


def test_an_unused_index_is_reported_and_a_primary_key_or_unique_index_never_is():
    execute(
        "CREATE TABLE health_probe (id bigint PRIMARY KEY, code text UNIQUE, note text);"
        "CREATE INDEX health_probe_note ON health_probe (note)"
    )
    with pg.reads() as cur:
        unused = {i["name"] for i in pg.unused_indexes(pg.indexes(cur))}
    assert "health_probe_note" in unused
    assert "health_probe_pkey" not in unused
    assert "health_probe_code_key" not in unused


@pytest.fixture
def probe_table_dropped():
    yield
    execute("DROP TABLE IF EXISTS health_probe")


@pytest.mark.django_db(transaction=True)
def test_a_used_index_is_not_reported_as_unused(probe_table_dropped):
    execute(
        "CREATE TABLE health_probe (id bigint PRIMARY KEY, note text);"
        "CREATE INDEX health_probe_note ON health_probe (note);"
        "INSERT INTO health_probe SELECT g, 'n' || g FROM generate_series(1, 2000) g; ANALYZE health_probe"
    )
    with connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")
        cur.execute("SELECT count(*) FROM health_probe WHERE note = 'n5'")
        cur.execute("RESET enable_seqscan")
        cur.execute("SELECT pg_stat_force_next_flush()")  # statistics reach the views when it goes idle

    def unused() -> set[str]:
        with pg.reads() as cur:
            return {i["name"] for i in pg.unused_indexes(pg.indexes(cur))}

    wait_until(lambda: "health_probe_note" not in unused(), "the index scan to be counted")
    assert "health_probe_pkey" not in unused()


def test_duplicate_and_overlapping_indexes_are_reported_but_not_the_constraint_they_duplicate():
    execute(
        "CREATE TABLE health_probe (id bigint PRIMARY KEY, a int, b int);"
        "CREATE INDEX health_probe_a ON health_probe (a);"
        "CREATE INDEX health_probe_a_b ON health_probe (a, b);"
        "CREATE INDEX health_probe_a_b_again ON health_probe (a, b);"
        "CREATE INDEX health_probe_id ON health_probe (id);"
        "CREATE INDEX health_probe_b_partial ON health_probe (b) WHERE a > 0;"
        "CREATE INDEX health_probe_b ON health_probe (b)"
    )
    with pg.reads() as cur:
        found = {
            (d["name"], d["covered_by"]) for d in pg.duplicate_indexes(cur) if d["table"] == "health_probe"
        }
    assert ("health_probe_a", "health_probe_a_b") in found  # a leading part of another
    assert ("health_probe_a_b_again", "health_probe_a_b") in found  # identical: the newer one
    assert ("health_probe_id", "health_probe_pkey") in found  # duplicates the primary key
    names = {name for name, _ in found}
    assert "health_probe_pkey" not in names and "health_probe_a_b" not in names
    assert "health_probe_b" not in names  # a partial index does not cover the whole column


def test_sequences_report_the_share_of_their_range_used():
    execute("CREATE SEQUENCE health_probe_seq MAXVALUE 100; SELECT setval('health_probe_seq', 91)")
    with pg.reads() as cur:
        found = {s["name"]: s for s in pg.sequences(cur)}
    assert found["health_probe_seq"]["used_percent"] == pytest.approx(91.0)  # 1..91 of 1..100
    assert found["health_probe_seq"]["remaining"] == 9
    assert "orders_order_number_seq" in found


def test_a_sequence_owned_by_an_integer_column_ends_where_the_column_type_ends():
    execute(
        "CREATE SEQUENCE health_probe_id_seq AS bigint;"
        "CREATE TABLE health_probe (id integer PRIMARY KEY DEFAULT nextval('health_probe_id_seq'));"
        "ALTER SEQUENCE health_probe_id_seq OWNED BY health_probe.id"
    )
    with pg.reads() as cur:
        found = {s["name"]: s for s in pg.sequences(cur)}
    probe = found["health_probe_id_seq"]
    assert probe["column_type"] == "integer"
    assert probe["effective_max"] == 2**31 - 1


def test_partitioned_tables_are_rolled_up_with_their_partitions():
    with pg.reads() as cur:
        tables = {t["name"]: t for t in pg.tables(cur)}
    events = tables["orders_orderevent"]
    assert events["kind"] == "p"
    names = {p["name"] for p in events["partitions"]}
    assert "orders_orderevent_default" in names
    assert events["total_bytes"] == sum(p["total_bytes"] for p in events["partitions"])
    assert tables["orders_order"]["parent"] == ""


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM s WHERE k = 'it''s' AND n = $1 AND m = 7",
            "SELECT * FROM s WHERE k = '…' AND n = $1 AND m = 7",
        ),
        ("SELECT E'a\\'b', \"it's\" FROM t -- it's", "SELECT '…', \"it's\" FROM t -- it's"),
        ("/* it's */ SELECT 'c:\\', 'x'", "/* it's */ SELECT '…', '…'"),
        ("SELECT $$sec'ret$$, $f$ y $f$, 3", "SELECT '…', '…', 3"),
        (
            "UPDATE auth_user SET password = 'pbkdf2_sha256$87",
            "UPDATE auth_user SET password = '…'",
        ),  # cut at 4,000
        ("SELECT x'1F', b'01', n'é'", "SELECT '…', '…', '…'"),
    ],
)
def test_without_literals_hides_every_kind_of_string_and_keeps_identifiers_and_comments(sql, expected):
    assert pg.without_literals(sql) == expected
