"""What PostgreSQL says about itself: every query behind the health screens, the snapshots and the
database alerts. They read catalog and statistics views only (never a table of ours), inside
`reads()`: a read-only transaction with a short `statement_timeout` and `lock_timeout`
(OKADA_HEALTH_STATEMENT_TIMEOUT_MS), so watching the database never hurts it.

Size functions (pg_total_relation_size ...) open each relation with ACCESS SHARE, the weakest
lock: they wait only behind an ACCESS EXCLUSIVE holder (a migration, a partition detach), and then
for `lock_timeout` at most; the screen says the figure is unavailable and staff try again.

Production: the database role needs `pg_read_all_stats` to see other roles' queries and
statistics, and `pg_signal_backend` to cancel or terminate their sessions (a superuser has both).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction

# PostgreSQL stops assigning transaction ids before 2^31 of them separate the oldest unfrozen row
# from the newest: the "wraparound" limit that ages are compared to.
XID_LIMIT = 2**31 - 1
TYPE_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
STATEMENT_ORDER = {"total": "total_ms", "mean": "mean_ms", "calls": "calls"}
# A table this large whose scans are mostly sequential is worth a look for a missing index.
MISSING_INDEX_MIN_ROWS = 10_000
MISSING_INDEX_MAX_INDEX_SHARE = 0.95
# SQLSTATEs the health reads and actions meet by design (their timeouts) or in production set-ups
# (a role with pg_signal_backend, not superuser, facing a superuser's session).
QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"
INSUFFICIENT_PRIVILEGE = "42501"


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's error code behind a Django database error (psycopg's, its cause)."""
    return getattr(exc.__cause__, "sqlstate", None)


@contextmanager
def reads(timeout_ms: int | None = None) -> Iterator[Any]:
    """A cursor in a read-only transaction whose statements give up after `timeout_ms` (default:
    OKADA_HEALTH_STATEMENT_TIMEOUT_MS), waiting for a lock included. Inside a caller's
    transaction (tests) it is a savepoint, and the caller's timeouts come back afterwards."""
    ms = f"{int(timeout_ms or settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS)}ms"
    outer = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cur:
        if not outer:
            cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
            "set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
            [ms, ms],
        )
        before = cur.fetchone()
        yield cur
        if outer:  # SET LOCAL would last until the caller's transaction ends
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                [before[0], before[1]],
            )


def rows(cur: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur.execute(sql, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def one(cur: Any, sql: str, params: Any = None) -> dict[str, Any]:
    found = rows(cur, sql, params)
    return found[0] if found else {}


# --- pg_stat_statements --------------------------------------------------------------------------


def statements_status(cur: Any) -> dict[str, Any]:
    """Whether the statement statistics can be read: the extension is created in this database and
    the server preloads its library (without that, reading the view raises an error)."""
    status = one(
        cur,
        r"""
        SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS version,
               'pg_stat_statements' = ANY(
                   regexp_split_to_array(current_setting('shared_preload_libraries'), '\s*,\s*')
               ) AS preloaded
        """,
    )
    status["available"] = bool(status["version"] and status["preloaded"])
    status["reset_at"] = None
    if status["available"]:
        status["reset_at"] = one(cur, "SELECT stats_reset FROM pg_stat_statements_info").get("stats_reset")
    return status


def statements(
    cur: Any, *, order: str = "total", limit: int = 50, queryids: list[int] | None = None
) -> list[dict]:
    """This database's statements (summed over roles), biggest first by total time, mean time or
    calls; or exactly the `queryids` given."""
    column = STATEMENT_ORDER[order]
    where = "AND queryid = ANY(%(ids)s)" if queryids is not None else ""
    return rows(
        cur,
        f"""
        SELECT queryid, min(query) AS query, sum(calls)::bigint AS calls, sum(total_exec_time) AS total_ms,
               sum(total_exec_time) / nullif(sum(calls), 0) AS mean_ms, sum(rows)::bigint AS rows,
               sum(shared_blks_hit)::bigint AS blocks_hit, sum(shared_blks_read)::bigint AS blocks_read
          FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND queryid IS NOT NULL {where}
         GROUP BY queryid
         ORDER BY {column} DESC NULLS LAST
         LIMIT %(limit)s
        """,
        {"limit": limit, "ids": queryids},
    )


# --- Sessions ----------------------------------------------------------------------------------

_ACTIVITY_SQL = """
WITH waits AS (
    SELECT pid, min(waitstart) AS waitstart, min(locktype) AS locktype, min(mode) AS mode,
           min(relation::regclass::text) AS relation
      FROM pg_locks WHERE NOT granted GROUP BY pid
), sessions AS (
    SELECT a.pid, a.usename AS "user", a.application_name AS application, host(a.client_addr) AS client,
           a.backend_type, a.state, a.wait_event_type, a.wait_event, a.query_start, a.xact_start,
           a.state_change,
           extract(epoch FROM clock_timestamp() - a.query_start)::float AS query_seconds,
           extract(epoch FROM clock_timestamp() - a.xact_start)::float AS xact_seconds,
           extract(epoch FROM clock_timestamp() - a.state_change)::float AS state_seconds,
           left(a.query, 4000) AS query,
           CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END
               AS blocked_by,
           extract(epoch FROM clock_timestamp() - w.waitstart)::float AS wait_seconds,
           w.locktype, w.mode, w.relation
      FROM pg_stat_activity a LEFT JOIN waits w ON w.pid = a.pid
     WHERE a.pid <> pg_backend_pid() AND (a.datname = current_database() OR a.backend_type = 'walsender')
)
SELECT * FROM sessions
 WHERE state IS DISTINCT FROM 'idle' AND backend_type IN ('client backend', 'autovacuum worker', 'walsender')
    OR pid IN (SELECT unnest(blocked_by) FROM sessions)
 ORDER BY xact_seconds DESC NULLS LAST, query_seconds DESC NULLS LAST
"""


# The literal values in a query's text: Django sends values inside the SQL (client-side binding),
# so a running query can carry a session key, a password hash or a customer's phone. Identifiers
# ("...") and comments are matched only to be kept: an apostrophe inside them opens no string. A
# string the 4,000-character cut left open runs to the end.
_TOKENS = re.compile(
    r"""(?P<keep>"(?:[^"]|"")*"?|--[^\n]*|/\*.*?(?:\*/|$))"""
    r"""|\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$.*?(?:\$(?P=tag)\$|$)"""  # $$...$$, $x$...$x$
    r"""|[Ee]'(?:[^'\\]|''|\\.)*(?:'|$)"""  # E'...': backslash escapes
    r"""|[BbXxNn]?'(?:[^']|'')*(?:'|$)""",  # '...': a backslash is itself
    re.DOTALL,
)
HIDDEN_LITERAL = "'…'"


def without_literals(sql: str | None) -> str:
    """`sql` with every string literal shown as '…' (numbers stay: they name no secret), for
    readers of the activity who are not superusers and for alerts, which are stored."""
    return _TOKENS.sub(lambda m: m.group("keep") or HIDDEN_LITERAL, sql or "")


def activity(cur: Any) -> list[dict[str, Any]]:
    """Sessions doing something (running, idle in a transaction, waiting for a lock) and the
    sessions that block them, whatever their state (an idle session may hold a lock), oldest
    transaction first. The caller's own session is left out.

    Read as of now even inside a longer transaction (a request's, a test's): PostgreSQL keeps
    the first pg_stat_activity it read until the transaction ends, and now() is the
    transaction's start, so ages stopped growing and states stopped changing."""
    cur.execute("SELECT pg_stat_clear_snapshot()")
    return rows(cur, _ACTIVITY_SQL)


def session(cur: Any, pid: int) -> dict[str, Any]:
    """One backend of the server (any database), or {} if it is gone."""
    return one(
        cur,
        'SELECT pid, usename AS "user", application_name AS application, backend_type, datname AS database, '
        "state, left(query, 500) AS query, pid = pg_backend_pid() AS is_self, backend_start, "
        "datname IS NOT DISTINCT FROM current_database() AS this_database "
        "FROM pg_stat_activity WHERE pid = %s",
        [pid],
    )


def connections(cur: Any) -> dict[str, Any]:
    """Connections per state (all databases) against max_connections; replication when there is any."""
    by_state = rows(
        cur,
        "SELECT coalesce(state, backend_type) AS state, (datname = current_database()) AS here, "
        "count(*) AS n "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' OR state IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 3 DESC",
    )
    limits = one(
        cur,
        "SELECT current_setting('max_connections')::int AS max_connections, "
        "current_setting('superuser_reserved_connections')::int AS reserved, "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS client_backends, "
        "pg_is_in_recovery() AS in_recovery",
    )
    replicas = rows(
        cur,
        "SELECT application_name AS name, host(client_addr) AS client, state, sync_state, "
        "extract(epoch FROM replay_lag)::float AS replay_lag_seconds, "
        "CASE WHEN pg_is_in_recovery() THEN NULL "
        "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END "
        "AS replay_lag_bytes FROM pg_stat_replication ORDER BY 1",
    )
    standby_lag = None
    if limits["in_recovery"]:
        standby_lag = one(
            cur, "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float AS lag"
        ).get("lag")
    return {**limits, "by_state": by_state, "replicas": replicas, "standby_lag_seconds": standby_lag}


# --- Tables ------------------------------------------------------------------------------------

_TABLES_SQL = """
WITH widths AS (
    SELECT tablename, sum((1 - null_frac) * avg_width) AS width
      FROM pg_stats WHERE schemaname = current_schema() AND NOT inherited GROUP BY 1
)
SELECT c.relname AS name, c.relkind AS kind, c.relispartition AS is_partition,
       CASE WHEN c.relispartition
            THEN (SELECT r.relname FROM pg_class r WHERE r.oid = pg_partition_root(c.oid))
            ELSE '' END AS parent,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
       greatest(c.reltuples, -1)::bigint AS estimated_rows,
       coalesce(s.n_live_tup, 0) AS live_rows, coalesce(s.n_dead_tup, 0) AS dead_rows,
       coalesce(s.seq_scan, 0) AS seq_scan, coalesce(s.seq_tup_read, 0) AS seq_tup_read,
       coalesce(s.idx_scan, 0) AS idx_scan,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) AS writes,
       io.heap_blks_hit, io.heap_blks_read,
       CASE WHEN io.relid IS NOT NULL THEN coalesce(io.idx_blks_hit, 0) END AS idx_blks_hit,
       CASE WHEN io.relid IS NOT NULL THEN coalesce(io.idx_blks_read, 0) END AS idx_blks_read,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       CASE WHEN c.relkind IN ('r', 'm') THEN age(c.relfrozenxid) END AS xid_age,
       -- Bloat estimate: the pages the rows would need (pg_stats' average widths, a 24-byte tuple
       -- header and 4-byte line pointer, 24-byte page header) against the pages the table has.
       CASE WHEN c.relkind IN ('r', 'm') AND c.relpages > 10 AND w.width IS NOT NULL THEN
           greatest(c.relpages::bigint * current_setting('block_size')::int
                    - ceil(c.reltuples * (28 + w.width) / (current_setting('block_size')::int - 24))::bigint
                      * current_setting('block_size')::int, 0)
       END AS bloat_bytes
  FROM pg_class c
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  LEFT JOIN pg_statio_user_tables io ON io.relid = c.oid
  LEFT JOIN widths w ON w.tablename = c.relname
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'm')
"""


def tables(cur: Any) -> list[dict[str, Any]]:
    """Every table of the schema with sizes, estimated rows, dead rows, vacuum times, transaction
    id age, a bloat estimate and its shared-buffer hits and reads. A partitioned table's own
    figures are its partitions' sums (its hits and reads: None, its partitions have them)."""
    found = rows(cur, _TABLES_SQL)
    by_name = {t["name"]: t for t in found}
    summed = (
        "total_bytes",
        "table_bytes",
        "index_bytes",
        "toast_bytes",
        "live_rows",
        "dead_rows",
        "seq_scan",
        "seq_tup_read",
        "idx_scan",
        "writes",
        "bloat_bytes",
    )
    for t in found:
        if t["kind"] == "p":
            t["estimated_rows"] = 0
            t["partitions"] = []
            t["xid_age"] = None
    for t in found:
        root = by_name.get(t["parent"]) if t["is_partition"] else None
        if root is None:
            continue
        root["partitions"].append(t)
        root["estimated_rows"] += max(t["estimated_rows"], 0)
        for key in summed:
            root[key] = (root[key] or 0) + (t[key] or 0)
        root["xid_age"] = max(root["xid_age"] or 0, t["xid_age"] or 0)
    return found


def database(cur: Any) -> dict[str, Any]:
    """This database's size, transaction-id age (wraparound) and statistics reset time."""
    return one(
        cur,
        "SELECT pg_database_size(d.oid) AS bytes, age(d.datfrozenxid) AS xid_age, "
        "mxid_age(d.datminmxid) AS mxid_age, s.stats_reset, "
        "s.blks_hit, s.blks_read, current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age "
        "FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid WHERE d.datname = current_database()",
    )


# --- Indexes -----------------------------------------------------------------------------------

_INDEXES_SQL = """
WITH scans AS (
    -- An index of a partitioned table has no statistics of its own: its partitions' indexes do.
    SELECT CASE WHEN c.relispartition THEN pg_partition_root(s.indexrelid) ELSE s.indexrelid END AS root,
           sum(s.idx_scan)::bigint AS idx_scan, sum(pg_relation_size(s.indexrelid))::bigint AS bytes
      FROM pg_stat_user_indexes s JOIN pg_class c ON c.oid = s.indexrelid
     WHERE s.schemaname = current_schema()
     GROUP BY 1
)
SELECT ci.relname AS name, ct.relname AS "table", i.indisprimary AS is_primary, i.indisunique AS is_unique,
       i.indisvalid AS is_valid,
       EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
       coalesce(sc.idx_scan, 0) AS idx_scan, coalesce(sc.bytes, pg_relation_size(i.indexrelid)) AS bytes,
       pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_class ct ON ct.oid = i.indrelid
  LEFT JOIN scans sc ON sc.root = i.indexrelid
 WHERE ci.relnamespace = current_schema()::regnamespace AND NOT ci.relispartition
 ORDER BY bytes DESC, name
"""


def indexes(cur: Any) -> list[dict[str, Any]]:
    """Every index of the schema (a partitioned table's index once, with its partitions' scans
    and sizes summed), largest first."""
    return rows(cur, _INDEXES_SQL)


def unused_indexes(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indexes never scanned since the statistics were reset, leaving out primary keys, unique
    indexes and indexes behind a constraint: those work without being scanned."""
    return [
        i
        for i in found
        if i["idx_scan"] == 0 and not (i["is_primary"] or i["is_unique"] or i["backs_constraint"])
    ]


_DUPLICATES_SQL = """
SELECT ca.relname AS name, cb.relname AS covered_by, ct.relname AS "table",
       pg_relation_size(a.indexrelid) AS bytes,
       pg_get_indexdef(a.indexrelid) AS definition, pg_get_indexdef(b.indexrelid) AS covering_definition,
       a.indkey::text = b.indkey::text AS exact
  FROM pg_index a
  JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
  JOIN pg_class ca ON ca.oid = a.indexrelid
  JOIN pg_class cb ON cb.oid = b.indexrelid
  JOIN pg_class ct ON ct.oid = a.indrelid
 WHERE ca.relnamespace = current_schema()::regnamespace
   AND NOT ca.relispartition AND NOT cb.relispartition
   AND ca.relam = cb.relam
   -- a's columns and operator classes lead b's: b serves every lookup a serves
   AND (b.indkey::text || ' ') LIKE (a.indkey::text || ' %')
   AND (b.indclass::text || ' ') LIKE (a.indclass::text || ' %')
   AND coalesce(pg_get_expr(a.indexprs, a.indrelid), '') = coalesce(pg_get_expr(b.indexprs, b.indrelid), '')
   AND coalesce(pg_get_expr(a.indpred, a.indrelid), '') = coalesce(pg_get_expr(b.indpred, b.indrelid), '')
   -- a unique index enforces something: redundant only beside an identical unique one
   AND (NOT a.indisunique OR (b.indisunique AND a.indkey::text = b.indkey::text))
   AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = a.indexrelid)
   -- two identical indexes: report one of them (the one no constraint needs, else the newer)
   AND (a.indkey::text <> b.indkey::text
        OR EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = b.indexrelid)
        OR a.indexrelid > b.indexrelid)
 ORDER BY bytes DESC, name
"""


def duplicate_indexes(cur: Any) -> list[dict[str, Any]]:
    """Indexes another index of the same table makes redundant: identical, or a leading part of
    it (same method, operator classes, expressions and predicate). Unique and constraint indexes
    are kept unless an identical unique index exists."""
    return rows(cur, _DUPLICATES_SQL)


def missing_index_hints(cur: Any) -> list[dict[str, Any]]:
    """Large tables read mostly by sequential scans: where an index may be missing."""
    return rows(
        cur,
        """
        SELECT relname AS "table", seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan,
               n_live_tup AS live_rows, seq_tup_read / nullif(seq_scan, 0) AS rows_per_seq_scan,
               coalesce(idx_scan, 0)::float / nullif(seq_scan + coalesce(idx_scan, 0), 0) AS index_share
          FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND n_live_tup >= %(rows)s AND seq_scan > 0
           AND coalesce(idx_scan, 0)::float / (seq_scan + coalesce(idx_scan, 0)) < %(share)s
         ORDER BY seq_tup_read DESC LIMIT 20
        """,
        {"rows": MISSING_INDEX_MIN_ROWS, "share": MISSING_INDEX_MAX_INDEX_SHARE},
    )


def cache_hit_ratios(cur: Any) -> dict[str, Any]:
    """Shared-buffer hit ratios of table and index reads since the statistics' reset (None while
    nothing was read), with the number of blocks behind each."""
    return one(
        cur,
        """
        SELECT t.hit::float / nullif(t.hit + t.read, 0) AS table_ratio, t.hit + t.read AS table_blocks,
               i.hit::float / nullif(i.hit + i.read, 0) AS index_ratio, i.hit + i.read AS index_blocks
          FROM (SELECT coalesce(sum(heap_blks_hit), 0) AS hit, coalesce(sum(heap_blks_read), 0) AS read
                  FROM pg_statio_user_tables) t,
               (SELECT coalesce(sum(idx_blks_hit), 0) AS hit, coalesce(sum(idx_blks_read), 0) AS read
                  FROM pg_statio_user_indexes) i
        """,
    )


# --- Sequences ---------------------------------------------------------------------------------


def sequences(cur: Any) -> list[dict[str, Any]]:
    """Every sequence of the schema with how much of its range is used, fullest first. A sequence
    owned by a column of a narrower type ends where the column's type ends."""
    found = rows(
        cur,
        """
        SELECT s.sequencename AS name, s.data_type::text AS data_type, s.last_value, s.start_value,
               s.min_value, s.max_value, s.increment_by, col.table_name, col.column_name, col.column_type
          FROM pg_sequences s
          LEFT JOIN LATERAL (
              SELECT t.relname AS table_name, a.attname AS column_name,
                     format_type(a.atttypid, NULL) AS column_type
                FROM pg_depend d
                JOIN pg_class t ON t.oid = d.refobjid
                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                 AND d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass
                 AND d.deptype IN ('a', 'i')
               LIMIT 1
          ) col ON true
         WHERE s.schemaname = current_schema()
        """,
    )
    for s in found:
        ceiling = min(s["max_value"], TYPE_MAX.get(s["column_type"] or "", s["max_value"]))
        s["effective_max"] = ceiling
        last = s["last_value"]  # None until the first nextval
        if s["increment_by"] > 0:
            used = (last - s["min_value"] + 1) if last is not None else 0
            span = ceiling - s["min_value"] + 1
        else:
            used = (s["max_value"] - last + 1) if last is not None else 0
            span = s["max_value"] - s["min_value"] + 1
        s["used_percent"] = 100.0 * used / span if span > 0 else 100.0
        s["remaining"] = max(span - used, 0)
    found.sort(key=lambda s: (-s["used_percent"], s["name"]))
    return found
