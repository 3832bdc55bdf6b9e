"""Sessions and lock waits as the Activity screen reads them, with real concurrent connections."""

from __future__ import annotations

import pytest

from okada.health import pg, selectors
from tests.health.conftest import backend_pid, in_thread, session, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probe_table():
    with session() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE health_probe (id int PRIMARY KEY); INSERT INTO health_probe VALUES (1)")
    yield "health_probe"
    with session() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE health_probe")


def activity_of(pid: int) -> dict | None:
    with pg.reads() as cur:
        return next((s for s in pg.activity(cur) if s["pid"] == pid), None)


def test_a_lock_held_by_one_session_shows_in_the_blocking_tree_while_another_waits(probe_table):
    with session(autocommit=False) as holder:
        holder_pid = backend_pid(holder)
        with holder.cursor() as cur:
            cur.execute("SELECT * FROM health_probe WHERE id = 1 FOR UPDATE")  # then idle in transaction
        with in_thread("UPDATE health_probe SET id = 1 WHERE id = 1") as (waiter_pid, done):
            waiting = wait_until(
                lambda: (s := activity_of(waiter_pid)) and s["blocked_by"] and s,
                "the update to wait for the row lock",
            )
            assert waiting["blocked_by"] == [holder_pid]
            assert waiting["wait_event_type"] == "Lock"
            with pg.reads() as cur:
                sessions = pg.activity(cur)
            tree = selectors.blocking_tree(sessions)
            assert [root.session["pid"] for root in tree] == [holder_pid]
            assert tree[0].session["state"] == "idle in transaction"  # the blocker, whatever its state
            assert [child.session["pid"] for child in tree[0].waiting] == [waiter_pid]
            holder.rollback()  # let it go: the waiter finishes
            wait_until(lambda: done, "the update to finish")
    assert done == [[]]  # the waiter got the lock and updated the row


def test_without_lock_waits_the_blocking_tree_is_empty():
    with pg.reads() as cur:
        assert selectors.blocking_tree(pg.activity(cur)) == []


def test_a_long_query_is_listed_with_its_age_and_text():
    with in_thread("SELECT pg_sleep(20) AS health_probe_sleep") as (pid, done):
        found = wait_until(lambda: activity_of(pid), "the query to run")
        assert found["state"] == "active"
        assert "health_probe_sleep" in found["query"]
        assert found["query_seconds"] >= 0
        with session() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_cancel_backend(%s)", [pid])
        wait_until(lambda: done, "the query to stop")
