"""The data dictionary lives in the database (DESIGN.md section 3): every table and view of ours,
and each of their columns, has a PostgreSQL comment. Read from the catalog after the migrations,
so what is checked is what `\\d+` shows, whichever way the comment got there (db_comment,
db_table_comment, simple-history's generated models, RunSQL)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

# Relations that are not ours: their apps create them, without comments, and we do not alter
# another app's schema. Everything else in the schema is checked, so a new third-party app's
# tables fail here until they are named below with a reason.
NOT_OURS = {
    "auth_": "django.contrib.auth: users, groups, permissions",
    "django_admin_log": "django.contrib.admin: the admin's own change log",
    "django_content_type": "django.contrib.contenttypes",
    "django_session": "django.contrib.sessions",
    "django_migrations": "Django's migration recorder",
    "django_celery_beat_": "django-celery-beat: the beat schedule",
}

# Tables, partitioned parents (relkind p), views and materialised views of the current schema;
# not partitions (a comment on the parent is the one \d+ and the admin read; partitions come and
# go with the maintenance job), not relations an extension owns (pg_stat_statements' views).
RELATIONS = """
SELECT c.relname, c.relkind, coalesce(obj_description(c.oid, 'pg_class'), ''),
       coalesce(array_agg(a.attname ORDER BY a.attnum)
                FILTER (WHERE coalesce(col_description(c.oid, a.attnum), '') = ''), '{}')
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND NOT EXISTS (SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
GROUP BY c.oid, c.relname, c.relkind
ORDER BY c.relname
"""


def local_tables(*, managed_only: bool) -> set[str]:
    """Tables of the models of this repository's apps (not Django's, not installed packages')."""
    return {
        model._meta.db_table
        for config in apps.get_app_configs()
        if "site-packages" not in config.path
        for model in config.get_models(include_auto_created=True)
        if not model._meta.proxy and (model._meta.managed or not managed_only)
    }


def not_ours(table: str) -> bool:
    return any(table == name or (name.endswith("_") and table.startswith(name)) for name in NOT_OURS)


@pytest.fixture
def relations() -> dict[str, tuple[str, str, list[str]]]:
    """{table: (relkind, table comment, columns without a comment)} of the relations we own."""
    with connection.cursor() as cur:
        cur.execute(RELATIONS)
        rows = cur.fetchall()
    return {name: (kind, comment, missing) for name, kind, comment, missing in rows if not not_ours(name)}


@pytest.mark.django_db
def test_every_table_and_column_of_ours_has_a_comment(relations):
    # {table: what has no comment: "(table)" for the table itself, then its columns}
    uncommented = {
        name: ["(table)"] * (not comment.strip()) + missing
        for name, (_, comment, missing) in relations.items()
        if not comment.strip() or missing
    }
    assert uncommented == {}


@pytest.mark.django_db
def test_the_check_sees_every_table_of_ours_partitioned_parents_and_no_partition(relations):
    # Every table our models make is among those checked (none hides behind NOT_OURS) ...
    ours = local_tables(managed_only=True)
    assert ours and ours - set(relations) == set()
    assert {"catalog_historicalproduct", "health_tablestat", "sync_change"} <= ours
    # ... the partitioned parents are checked as tables, their partitions are not.
    assert relations["catalog_stockmovement"][0] == "p"
    assert relations["orders_orderevent"][0] == "p"
    assert relations["sync_change"][0] == "p"
    with connection.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relispartition AND relname LIKE 'sync_change_%'")
        partitions = {row[0] for row in cur.fetchall()}
    assert partitions and partitions.isdisjoint(relations)


@pytest.mark.django_db
def test_what_is_left_out_exists_and_is_not_ours():
    """Each entry of NOT_OURS still names something (a stale entry could hide a table of ours),
    and no app of this repository makes a table it would leave out."""
    with connection.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace")
        names = [row[0] for row in cur.fetchall()]
    for entry in NOT_OURS:
        assert any(n == entry or (entry.endswith("_") and n.startswith(entry)) for n in names), entry
    assert sorted(table for table in local_tables(managed_only=False) if not_ours(table)) == []


@pytest.mark.django_db
def test_the_database_says_what_the_models_say():
    """The models are where the comments are written (db_table_comment, db_comment); the database
    holds the same texts, for the generated history models and the unmanaged view too."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''), a.attname,
                      coalesce(col_description(c.oid, a.attnum), '')
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
               WHERE c.relnamespace = current_schema()::regnamespace AND NOT a.attisdropped"""
        )
        tables: dict[str, str] = {}
        columns: dict[tuple[str, str], str] = {}
        for table, table_comment, column, column_comment in cur.fetchall():
            tables[table] = table_comment
            columns[table, column] = column_comment
    checked = 0
    for config in apps.get_app_configs():
        if "site-packages" in config.path:
            continue
        for model in config.get_models(include_auto_created=True):
            table = model._meta.db_table
            if table not in tables:
                continue  # no relation (DatabaseHealth)
            assert (table, tables[table]) == (table, model._meta.db_table_comment or "")
            for field in model._meta.concrete_fields:
                assert (table, field.column, columns[table, field.column]) == (
                    table,
                    field.column,
                    field.db_comment or "",
                )
                checked += 1
    assert checked > 300


# DESIGN.md section 3: every domain table has a UUID primary key, `created_at` and `updated_at`.
# The tables of ours that do not, each with what it lacks; README "Marketplace domains" lists them
# with the reasons (a deviation must be written down there). History tables are the history of a
# table (simple-history's own integer key), not a domain table of their own.
SHAPE_DEVIATIONS = {
    # append-only, partitioned: never updated (they are the history)
    "catalog_stockmovement": {"updated_at"},
    "orders_orderevent": {"updated_at"},
    # the change feed: no primary key (nothing looks a feed row up; a partitioned key needs created_at)
    "sync_change": {"uuid key", "updated_at"},
    # snapshots of PostgreSQL's counters, timed by their health_snapshot
    "health_tablestat": {"uuid key", "created_at", "updated_at"},
    "health_indexstat": {"uuid key", "created_at", "updated_at"},
    "health_querystat": {"uuid key", "created_at", "updated_at"},
    # pg_stat_statements' text of a query id, keyed by that id, with the last snapshot that held it
    "health_querytext": {"uuid key", "created_at", "updated_at"},
    # a stored API answer, written once and replayed as it was
    "core_idempotencyrecord": {"updated_at"},
    # the one row of the sync generation (id 1)
    "sync_feedstate": {"uuid key", "created_at"},
    # derived rows of the orders' name search, written by INSERT ... ON CONFLICT, never updated
    "orders_customer_alias": {"uuid key", "created_at", "updated_at"},
}

TABLE_SHAPES = """
SELECT c.relname,
       (SELECT array_agg(format_type(a.atttypid, a.atttypmod) || ' ' || a.attname)
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = c.oid AND i.indisprimary),
       array(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attname IN ('created_at', 'updated_at')
               AND a.attnotnull AND NOT a.attisdropped)
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname = ANY(%s)
"""


@pytest.mark.django_db
def test_every_table_of_ours_has_a_uuid_key_and_its_timestamps_but_the_deviations_written_down():
    tables = {
        t for t in local_tables(managed_only=True) if "_historical" not in t and not t.startswith("testapp_")
    }
    with connection.cursor() as cur:
        cur.execute(TABLE_SHAPES, [sorted(tables)])
        shapes = cur.fetchall()
    assert len(shapes) == len(tables) > 30
    found = {}
    for table, key, timestamps in shapes:
        lacks = set()
        # a partitioned table's key holds its partition key too (PostgreSQL requires it)
        if "uuid id" not in (key or []) or set(key) - {"uuid id", "timestamp with time zone created_at"}:
            lacks.add("uuid key")
        for column in ("created_at", "updated_at"):
            if f"{column} timestamp with time zone" not in timestamps:
                lacks.add(column)
        if lacks:
            found[table] = lacks
    assert found == SHAPE_DEVIATIONS


def test_the_readme_names_every_table_that_deviates_from_the_shape():
    from pathlib import Path

    from django.conf import settings

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    deviations = readme.split("**Append-only tables**", 1)[1].split("\n- **", 1)[0]
    # a table is named whole, or after another of its app as `_suffix`
    named = [
        t for t in SHAPE_DEVIATIONS if f"`{t}`" in deviations or f"`_{t.split('_', 1)[1]}`" in deviations
    ]
    assert sorted(set(SHAPE_DEVIATIONS) - set(named)) == []


@pytest.mark.django_db
def test_the_append_only_tables_are_the_partitioned_ones_and_no_foreign_key_points_at_them():
    """DESIGN.md section 3: the ledger, the order events and the change feed are the partitioned
    tables, each kept by a partition policy, and nothing references them by foreign key (a key
    pointing at a partitioned table must hold its partition key, and stops its months from being
    detached and dropped)."""
    from okada.partitions import registry

    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname FROM pg_class"
            " WHERE relkind = 'p' AND relnamespace = current_schema()::regnamespace"
        )
        partitioned = {row[0] for row in cur.fetchall()}
        cur.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid::regclass::text = ANY(%s)",
            [sorted(partitioned)],
        )
        references = cur.fetchall()
    assert partitioned == {"catalog_stockmovement", "orders_orderevent", "sync_change"}
    assert partitioned <= set(registry.declared())
    assert references == []
