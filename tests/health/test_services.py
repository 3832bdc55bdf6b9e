"""Snapshots, alerts, and what superusers may do to the database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import DatabaseError, connection
from django.utils import timezone, translation

from okada.core import health_registry as registry
from okada.core.actors import Actor
from okada.core.errors import NotAllowed, NotFound
from okada.health import services
from okada.health.admin import alert_text
from okada.health.models import Alert, DatabaseAction, IndexStat, QueryStat, QueryText, Snapshot, TableStat
from tests.concurrency import race
from tests.health.conftest import backend_pid, in_thread, session, wait_until

pytestmark = pytest.mark.django_db


def execute(sql: str, params=None) -> None:
    with connection.cursor() as cur:
        cur.execute(sql, params)


# --- Snapshots -----------------------------------------------------------------------------------


def test_a_snapshot_records_tables_indexes_and_statements_once_per_hour():
    # Ten past the hour: a minute later is the same hour whenever the test runs (not at xx:59).
    now = timezone.now().replace(minute=10, second=0, microsecond=0)
    first = services.snapshot_take(now=now)
    again = services.snapshot_take(now=now + dt.timedelta(minutes=1))
    assert first["taken"] and first["statements_available"] and not again["taken"]
    snapshot = Snapshot.objects.get()
    assert TableStat.objects.filter(snapshot=snapshot, name="orders_order").exists()
    events = TableStat.objects.get(snapshot=snapshot, name="orders_orderevent")
    assert events.kind == "p"
    assert (
        TableStat.objects.get(snapshot=snapshot, name="orders_orderevent_default").parent
        == "orders_orderevent"
    )
    assert IndexStat.objects.filter(snapshot=snapshot, name="orders_order_pkey").exists()
    assert QueryStat.objects.filter(snapshot=snapshot).count() == first["statements"] > 0
    assert QueryText.objects.count() >= first["statements"]


def test_a_statements_values_left_in_its_text_by_pg_stat_statements_are_not_kept():
    # pg_stat_statements does not normalise utility statements: their values stay in the text.
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")  # so that it is among the top statements
        cur.execute("SET LOCAL application_name = 'health-probe-secret'")
    services.snapshot_take(now=timezone.now())
    texts = list(QueryText.objects.filter(text__contains="application_name").values_list("text", flat=True))
    assert texts and not any("health-probe-secret" in t for t in texts)
    assert "SET LOCAL application_name = '…'" in texts


def test_snapshots_past_retention_are_pruned_with_their_rows(settings):
    settings.OKADA_HEALTH_SNAPSHOT_RETENTION_DAYS = 90
    now = timezone.now()
    services.snapshot_take(now=now - dt.timedelta(days=91))
    services.snapshot_take(now=now)
    assert services.snapshots_prune(now=now) == 1
    kept = Snapshot.objects.get()
    assert kept.hour == now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    assert not TableStat.objects.exclude(snapshot=kept).exists()
    assert not QueryStat.objects.exclude(snapshot=kept).exists()


# --- Alerts --------------------------------------------------------------------------------------


def test_a_sequence_near_its_maximum_opens_an_alert_and_moving_it_back_clears_it(settings):
    settings.OKADA_HEALTH_SEQUENCE_ALERT_PERCENT = 80
    execute("CREATE SEQUENCE health_probe_seq MAXVALUE 1000; SELECT setval('health_probe_seq', 850)")
    summary = services.alerts_evaluate(kinds=["sequence_near_max"])
    alert = Alert.objects.get(key="sequence_near_max:health_probe_seq")
    assert summary["opened"] == [alert.key] and alert.is_open
    assert "85.0%" in alert.message and alert.data["params"]["remaining"] == 150

    services.alerts_evaluate(kinds=["sequence_near_max"])  # still there: the same alert, seen again
    alert.refresh_from_db()
    assert alert.repeats == 2 and alert.is_open

    execute("SELECT setval('health_probe_seq', 10)")
    summary = services.alerts_evaluate(kinds=["sequence_near_max"])
    alert.refresh_from_db()
    assert summary["cleared"] == [alert.key] and alert.cleared_at is not None

    execute("SELECT setval('health_probe_seq', 990)")  # back again: a new alert
    services.alerts_evaluate(kinds=["sequence_near_max"])
    assert Alert.objects.filter(key=alert.key).count() == 2
    assert Alert.objects.open().get(key=alert.key).severity == "critical"


def test_an_opened_alert_is_logged_at_error_and_emailed_to_operations(
    settings, caplog, operations_user, django_capture_on_commit_callbacks
):
    settings.OKADA_HEALTH_ALERT_EMAIL = True
    execute("CREATE SEQUENCE health_probe_seq MAXVALUE 100; SELECT setval('health_probe_seq', 99)")
    with (
        caplog.at_level("ERROR", logger="okada.health.services"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.alerts_evaluate(kinds=["sequence_near_max"])
    assert any("health_probe_seq" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert [m.to for m in mail.outbox] == [["ops@x.cm"]]
    alert = Alert.objects.get(key="sequence_near_max:health_probe_seq")
    assert alert.emailed_at is not None
    # In the marketplace's language (LANGUAGE_CODE), the time in Douala's, not English and UTC.
    sent = mail.outbox[0]
    assert sent.subject == "[Okada] critique\u00a0: Séquence proche de son maximum"
    opened = timezone.localtime(alert.opened_at)
    assert sent.body == (
        "La séquence health_probe_seq a utilisé 99,0\u00a0% de sa plage (valeurs restantes\u00a0: 1).\n\n"
        f"Ouverte le {opened:%d/%m/%Y %H:%M} ({alert.key})."
    )

    services.alerts_evaluate(kinds=["sequence_near_max"])  # seen again: no second email
    assert len(mail.outbox) == 1


def test_an_open_warning_that_turns_critical_is_logged_at_error_and_emailed_again(
    settings, caplog, operations_user, django_capture_on_commit_callbacks
):
    # A sequence alert opened at 85 % (warning, emailed, maybe acknowledged) that reached 99 %
    # only changed its row: no log line, no email, nobody was told it became critical.
    settings.OKADA_HEALTH_ALERT_EMAIL = True
    execute("CREATE SEQUENCE health_probe_seq MAXVALUE 1000; SELECT setval('health_probe_seq', 850)")
    with django_capture_on_commit_callbacks(execute=True):
        services.alerts_evaluate(kinds=["sequence_near_max"])
    assert Alert.objects.get().severity == "warning" and len(mail.outbox) == 1

    execute("SELECT setval('health_probe_seq', 990)")
    with (
        caplog.at_level("ERROR", logger="okada.health.services"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.alerts_evaluate(kinds=["sequence_near_max"])
    alert = Alert.objects.get()
    assert alert.severity == "critical" and alert.repeats == 2
    assert any("99.0%" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert len(mail.outbox) == 2 and "critique" in mail.outbox[1].subject

    with django_capture_on_commit_callbacks(execute=True):  # critical again: nothing new to tell
        services.alerts_evaluate(kinds=["sequence_near_max"])
    assert len(mail.outbox) == 2


def test_a_condition_that_cannot_be_evaluated_leaves_its_alerts_as_they_were():
    calls = {"n": 0}

    def flaky() -> list[registry.Finding]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("cannot tell")
        return [registry.Finding(subject="x", message="probe %(n)s", params={"n": 1})]

    registry.register_condition(registry.Condition(kind="probe", title="probe", evaluate=flaky))
    try:
        services.alerts_evaluate(kinds=["probe"])
        summary = services.alerts_evaluate(kinds=["probe"])
    finally:
        registry.unregister("probe")
    assert "probe" in summary["errors"]
    assert Alert.objects.open().filter(key="probe:x").exists()


def test_alerts_are_acknowledged_by_operations_once(operations_user, staff_user):
    alert = Alert.objects.create(key="probe:x", kind="probe", severity="warning", message="m")
    with pytest.raises(NotAllowed):
        services.alert_acknowledge(alert=alert, actor=Actor.for_staff_user(staff_user))
    services.alert_acknowledge(alert=alert, actor=Actor.for_staff_user(operations_user))
    alert.refresh_from_db()
    first = alert.acknowledged_at
    assert alert.acknowledged_by == operations_user and first is not None
    services.alert_acknowledge(alert=alert, actor=Actor.for_staff_user(operations_user))
    alert.refresh_from_db()
    assert alert.acknowledged_at == first


def test_a_job_failing_twice_in_a_row_opens_an_alert():
    from okada.core.models import JobRun

    now = timezone.now()
    for minutes, outcome in ((30, "success"), (20, "failed"), (10, "skipped"), (5, "failed")):
        started = now - dt.timedelta(minutes=minutes)
        JobRun.objects.create(name="probe.job", started_at=started, finished_at=started, outcome=outcome)
    services.alerts_evaluate(kinds=["job_failing"])
    assert Alert.objects.open().filter(key="job_failing:probe.job").exists()
    JobRun.objects.create(name="probe.job", started_at=now, finished_at=now, outcome="success")
    services.alerts_evaluate(kinds=["job_failing"])
    assert not Alert.objects.open().filter(key="job_failing:probe.job").exists()


def test_a_job_that_has_not_succeeded_since_its_run_was_due_opens_an_alert(settings):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from okada.core.models import JobRun

    settings.OKADA_HEALTH_JOB_GRACE_MINUTES = 30
    crontab = CrontabSchedule.objects.create(minute="0", hour="*", timezone="Africa/Douala")
    PeriodicTask.objects.create(name="probe", task="probe.hourly", crontab=crontab)
    three_hours_ago = timezone.now() - dt.timedelta(hours=3)
    JobRun.objects.create(
        name="probe.hourly", started_at=three_hours_ago, finished_at=three_hours_ago, outcome="success"
    )
    services.alerts_evaluate(kinds=["job_overdue"])
    assert Alert.objects.open().filter(key="job_overdue:probe.hourly").exists()
    now = timezone.now()
    JobRun.objects.create(name="probe.hourly", started_at=now, finished_at=now, outcome="success")
    services.alerts_evaluate(kinds=["job_overdue"])
    assert not Alert.objects.open().filter(key="job_overdue:probe.hourly").exists()


def test_rows_in_a_default_partition_open_an_alert():
    from orders.models import OrderEvent

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders_orderevent_default")
        assert cur.fetchone()[0] == 0
    services.alerts_evaluate(kinds=["rows_in_default", "partition_missing"])
    assert not Alert.objects.open().filter(kind__in=["rows_in_default", "partition_missing"]).exists()
    # An event dated in a month without partition lands in DEFAULT (the insert never fails).
    from tests.orders.factories import OrderFactory

    order = OrderFactory()
    OrderEvent.objects.create(order=order, kind="note", created_at=dt.datetime(2001, 3, 4, tzinfo=dt.UTC))
    services.alerts_evaluate(kinds=["rows_in_default"])
    alert = Alert.objects.open().get(key="rows_in_default:orders_orderevent")
    assert alert.data["params"]["rows"] == 1
    # Read in each language with the form its count takes (not "row(s)").
    assert alert.message == "1 row of orders_orderevent landed in its DEFAULT partition."
    with translation.override("fr"):
        assert alert_text(alert) == "1 ligne de orders_orderevent a atterri dans sa partition DEFAULT."
    OrderEvent.objects.create(order=order, kind="note", created_at=dt.datetime(2001, 3, 5, tzinfo=dt.UTC))
    services.alerts_evaluate(kinds=["rows_in_default"])
    alert.refresh_from_db()
    assert alert.message == "2 rows of orders_orderevent landed in its DEFAULT partition."
    with translation.override("fr"):
        assert alert_text(alert) == "2 lignes de orders_orderevent ont atterri dans sa partition DEFAULT."


# --- Acting on the database ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_superuser_cancels_a_long_query_and_operations_cannot(admin_user, operations_user):
    with in_thread("SELECT pg_sleep(30) AS health_probe_sleep, 'sessionkey-77' AS k") as (pid, done):
        wait_until(lambda: _running(pid), "the query to run")
        with pytest.raises(NotAllowed):
            services.session_signal(pid=pid, kind="cancel", actor=Actor.for_staff_user(operations_user))
        assert _running(pid)
        action = services.session_signal(pid=pid, kind="cancel", actor=Actor.for_staff_user(admin_user))
        wait_until(lambda: done, "the query to stop")
    assert action.succeeded and action.user == admin_user and "health_probe_sleep" in action.target
    # The action log is Operations' reading: the query's values are not kept.
    assert "'…' AS k" in action.target and "sessionkey-77" not in action.target
    assert "canceling statement due to user request" in str(done[0])
    assert list(DatabaseAction.objects.values_list("kind", "pid")) == [("cancel", pid)]


def _running(pid: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT state = 'active' FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cur.fetchone()
    return bool(row and row[0])


@pytest.mark.django_db(transaction=True)
def test_a_superuser_terminates_an_idle_in_transaction_session(admin_user):
    with session(autocommit=False) as idle:
        pid = backend_pid(idle)
        action = services.session_signal(pid=pid, kind="terminate", actor=Actor.for_staff_user(admin_user))
        assert action.succeeded
        wait_until(lambda: not _exists(pid), "the session to end")


def _exists(pid: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cur.fetchone()[0])


def test_the_callers_own_session_and_server_processes_are_never_signalled(admin_user):
    actor = Actor.for_staff_user(admin_user)
    with pytest.raises(NotAllowed, match="own session"):
        services.session_signal(pid=backend_pid(connection), kind="terminate", actor=actor)
    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        checkpointer = cur.fetchone()[0]
    with pytest.raises(NotAllowed, match="checkpointer"):
        services.session_signal(pid=checkpointer, kind="terminate", actor=actor)
    with pytest.raises(NotFound):
        services.session_signal(pid=2_000_000_000, kind="cancel", actor=actor)
    assert not DatabaseAction.objects.exists()


def test_resetting_query_statistics_is_for_superusers_and_logged(admin_user, operations_user):
    with pytest.raises(NotAllowed):
        services.statements_reset(actor=Actor.for_staff_user(operations_user))
    action = services.statements_reset(actor=Actor.for_staff_user(admin_user))
    assert action.kind == "reset_statements" and action.user == admin_user


# --- Sessions as alerts --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_query_running_longer_than_the_threshold_opens_an_alert_that_clears_when_it_ends(settings):
    settings.OKADA_HEALTH_LONG_QUERY_MINUTES = 0.01  # 0.6 s
    # The alert is stored and shown to Operations: the query's literal values are left out.
    with in_thread("SELECT pg_sleep(30) AS health_probe_sleep, 'sessionkey-4242' AS k") as (pid, done):
        wait_until(lambda: services.alerts_evaluate(kinds=["long_query"])["opened"], "the query to be long")
        alert = Alert.objects.open().get(kind="long_query")
        assert alert.data["params"]["pid"] == pid and "health_probe_sleep" in alert.message
        assert "'…' AS k" in alert.message and "sessionkey-4242" not in str(alert.data)
        with session() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_cancel_backend(%s)", [pid])
        wait_until(lambda: done, "the query to stop")
    services.alerts_evaluate(kinds=["long_query"])
    assert not Alert.objects.open().filter(kind="long_query").exists()


@pytest.mark.django_db(transaction=True)
def test_a_lock_wait_longer_than_the_threshold_opens_an_alert_naming_the_blocker(settings):
    settings.OKADA_HEALTH_LOCK_WAIT_SECONDS = 0.5
    with session() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE health_probe (id int)")
    try:
        with session(autocommit=False) as holder:
            with holder.cursor() as cur:
                cur.execute("LOCK TABLE health_probe IN ACCESS EXCLUSIVE MODE")
            with in_thread("SELECT count(*) FROM health_probe") as (waiter, done):
                wait_until(
                    lambda: services.alerts_evaluate(kinds=["lock_wait"])["opened"], "a long lock wait"
                )
                alert = Alert.objects.open().get(kind="lock_wait")
                assert alert.data["params"]["pid"] == waiter
                assert alert.data["params"]["blockers"] == str(backend_pid(holder))
                assert alert.data["params"]["relation"] == "health_probe"
                holder.rollback()
                wait_until(lambda: done, "the waiter to get its lock")
        services.alerts_evaluate(kinds=["lock_wait"])
        assert not Alert.objects.open().filter(kind="lock_wait").exists()
    finally:
        with session() as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE health_probe")


def test_a_celery_queue_that_keeps_growing_opens_an_alert():
    from okada.health import queue

    now = 1_000_000.0
    samples = [(now - 660, 5), (now - 300, 9), (now - 60, 14), (now, 20)]
    assert queue.growing_for(samples, 10, now=now)
    assert not queue.growing_for([(now - 660, 5), (now - 300, 0), (now, 20)], 10, now=now)  # it emptied
    assert not queue.growing_for([(now - 300, 5), (now, 20)], 10, now=now)  # not watched long enough
    assert not queue.growing_for([(now - 660, 20), (now, 20)], 10, now=now)  # not longer


# --- What the screens read from the snapshots ----------------------------------------------------


def test_query_deltas_count_the_calls_and_time_since_the_snapshot(settings):
    from okada.health import pg, selectors

    settings.OKADA_HEALTH_SNAPSHOT_QUERIES = 100_000  # every statement, the probe among them

    execute("CREATE TABLE health_probe (id int); SELECT count(*) FROM health_probe")
    services.snapshot_take()
    for _ in range(3):
        execute("SELECT count(*) FROM health_probe")
    since = selectors.previous_snapshot()
    with pg.reads() as cur:
        report = selectors.statement_deltas(cur, order="calls", limit=100_000, since=since)
    [row] = [r for r in report["rows"] if r["query"] == "SELECT count(*) FROM health_probe"]
    assert row["calls"] == 4
    assert row["delta"]["calls"] == 3
    assert row["delta"]["mean_ms"] is not None and row["delta"]["mean_change_percent"] is not None


def test_a_snapshot_keeps_the_top_statements_by_total_time_mean_time_and_calls(settings):
    from okada.health import pg

    settings.OKADA_HEALTH_SNAPSHOT_QUERIES = 3
    with pg.reads() as cur:
        tops = {
            order: {q["queryid"] for q in pg.statements(cur, order=order, limit=3)}
            for order in pg.STATEMENT_ORDER
        }
    services.snapshot_take()
    kept = set(QueryStat.objects.values_list("queryid", flat=True))
    # The busiest by calls and the slowest by mean time are different statements (SAVEPOINTs
    # against DDL): the snapshot holds more than one top 3, at most three.
    assert tops["calls"] != tops["mean"]
    assert 3 < len(kept) <= 9


def test_table_growth_reads_the_last_snapshot_of_each_day():
    from okada.health import selectors

    now = timezone.now()
    for days in (3, 2, 1):
        services.snapshot_take(now=now - dt.timedelta(days=days))
    growth = selectors.table_growth(days=30, now=now)
    assert len(growth["orders_order"]) == 3
    assert "orders_orderevent_default" not in growth  # partitions are summed into their table
    assert len(growth["orders_orderevent"]) == 3


def test_table_growth_labels_each_day_by_its_douala_date():
    # Days are Douala's (UTC+1): a snapshot at 23:30 UTC is the next day's first. Its point was
    # labelled with its UTC date, the day before's, so two points carried one date.
    from okada.health import selectors

    evening = dt.datetime(2026, 11, 20, 21, 30, tzinfo=dt.UTC)  # 22:30 in Douala, the 20th
    after_midnight = dt.datetime(2026, 11, 20, 23, 30, tzinfo=dt.UTC)  # 00:30 in Douala, the 21st
    for taken in (evening, after_midnight):
        services.snapshot_take(now=taken)
    growth = selectors.table_growth(days=30, now=after_midnight)
    assert [day for day, _ in growth["orders_order"]] == [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]


@pytest.mark.django_db(transaction=True)
def test_acknowledging_an_alert_deleted_meanwhile_is_not_found(operations_user):
    alert = Alert.objects.create(key="probe:x", kind="probe", severity="warning", message="m")

    deleted, acknowledged = race(
        lambda: Alert.objects.filter(pk=alert.pk).delete(),
        lambda: services.alert_acknowledge(alert=alert, actor=Actor.for_staff_user(operations_user)),
    )

    assert deleted[0] == 1, (deleted, acknowledged)
    assert isinstance(acknowledged, NotFound), (deleted, acknowledged)


def test_query_deltas_after_the_statistics_were_reset_compare_with_nothing_and_call_no_query_new(settings):
    # After a reset between the snapshot and now, the Queries screen said "Compared with the
    # snapshot of ..." and marked every statement "new": the reset note never showed.
    from okada.health import pg, selectors

    settings.OKADA_HEALTH_SNAPSHOT_QUERIES = 100_000
    execute("CREATE TABLE health_probe_reset (id int); SELECT count(*) FROM health_probe_reset")
    services.snapshot_take(now=timezone.now() - dt.timedelta(hours=2))
    since = selectors.previous_snapshot()
    execute("SELECT pg_stat_statements_reset()")
    execute("SELECT count(*) FROM health_probe_reset")
    with pg.reads() as cur:
        report = selectors.statement_deltas(cur, order="calls", limit=100_000, since=since)
    assert report["since"] is None and report["reset_since"]
    [row] = [r for r in report["rows"] if r["query"] == "SELECT count(*) FROM health_probe_reset"]
    assert row["delta"] is None and not row["new"]


def test_a_statement_the_snapshot_did_not_hold_is_new_and_one_it_held_is_not(settings):
    from okada.health import pg, selectors

    settings.OKADA_HEALTH_SNAPSHOT_QUERIES = 100_000
    # Tables of their own: a statement's id depends on its table, texts repeat across tests.
    execute("CREATE TABLE health_probe_new (id int); SELECT count(*) FROM health_probe_new")
    services.snapshot_take()
    execute("SELECT count(*) FROM health_probe_new")
    execute("SELECT min(id) FROM health_probe_new")  # first run after the snapshot
    with pg.reads() as cur:
        report = selectors.statement_deltas(
            cur, order="calls", limit=100_000, since=selectors.previous_snapshot()
        )
    rows = {r["query"]: r for r in report["rows"]}
    old, new = rows["SELECT count(*) FROM health_probe_new"], rows["SELECT min(id) FROM health_probe_new"]
    assert old["delta"]["calls"] == 1 and not old["new"]
    assert new["delta"] is None and new["new"]
    with pg.reads() as cur:  # without a snapshot to compare with, nothing is "new"
        report = selectors.statement_deltas(cur, order="calls", limit=100_000, since=None)
    assert not any(r["new"] for r in report["rows"])


def test_a_transaction_id_age_past_the_share_of_the_limit_opens_an_alert_that_clears(settings):
    settings.OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT = 0  # any age is past it
    services.alerts_evaluate(kinds=["wraparound"])
    alert = Alert.objects.open().get(key="wraparound:database")
    assert alert.severity == "warning" and alert.data["params"]["age"] > 0
    settings.OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT = 50
    assert services.alerts_evaluate(kinds=["wraparound"])["cleared"] == [alert.key]


@pytest.mark.django_db(transaction=True)  # the partition maintenance commits each step
def test_a_partition_missing_within_the_premake_horizon_opens_an_alert_that_clears_once_made():
    from okada.partitions import ddl
    from okada.partitions.services import maintenance_run

    next_month = ddl.add_months(ddl.utc_month_of(timezone.now()), 1)
    execute(f"DROP TABLE orders_orderevent_p{next_month:%Y%m}")
    services.alerts_evaluate(kinds=["partition_missing"])
    alert = Alert.objects.open().get(key="partition_missing:orders_orderevent")
    assert alert.severity == "critical" and f"{next_month:%Y-%m}" in alert.message
    maintenance_run()
    assert services.alerts_evaluate(kinds=["partition_missing"])["cleared"] == [alert.key]


@pytest.mark.django_db(transaction=True)
def test_a_session_of_another_database_on_the_server_is_never_signalled(admin_user):
    # The Activity screen lists this database's sessions, but any pid of the server could be
    # cancelled or terminated: another application's sessions on a shared cluster included.
    import psycopg

    params = connection.settings_dict
    other_db = psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        password=params["PASSWORD"],
        dbname="postgres",
        autocommit=True,
    )
    try:
        pid = other_db.info.backend_pid
        with pytest.raises(NotAllowed, match="postgres"):
            services.session_signal(pid=pid, kind="terminate", actor=Actor.for_staff_user(admin_user))
        assert other_db.execute("SELECT 1").fetchone() == (1,)  # still there
    finally:
        other_db.close()
    assert not DatabaseAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_process_id_the_server_gave_to_another_session_since_it_was_read_is_not_signalled():
    """The page (and the service) read the session, then signal it: a pid reused in between by a
    new session must not be hit. A target read earlier differs from the live one by backend_start."""
    from okada.health import pg

    with session() as idle:
        pid = backend_pid(idle)
        with connection.cursor() as cur:
            target = pg.session(cur, pid)
            stale = {**target, "backend_start": target["backend_start"] - dt.timedelta(seconds=1)}
            # False: no row matched, so pg_terminate_backend was never called.
            assert services.signal_if_same(cur, "pg_terminate_backend", stale) is False
            with idle.cursor() as still:
                still.execute("SELECT 1")
            assert services.signal_if_same(cur, "pg_terminate_backend", target) is True
            wait_until(lambda: not pg.session(cur, pid), "the session to end")


def test_a_session_idle_in_a_failed_transaction_holds_its_locks_and_opens_the_alert_too(settings):
    # Inside the test's transaction, as the evaluation may run inside a request's: it reads the
    # sessions as of now all the same (pg.activity).
    settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES = 0.01  # 0.6 s
    with session(autocommit=False) as idle:
        pid = backend_pid(idle)
        with idle.cursor() as cur, pytest.raises(DatabaseError):
            cur.execute("SELECT 1 / 0 AS health_probe_failed")
        wait_until(
            lambda: services.alerts_evaluate(kinds=["idle_in_transaction"])["opened"],
            "the failed transaction to be idle long enough",
        )
        alert = Alert.objects.open().get(kind="idle_in_transaction")
        assert alert.data["params"]["pid"] == pid
        idle.rollback()
        assert services.alerts_evaluate(kinds=["idle_in_transaction"])["cleared"] == [alert.key]


@pytest.mark.django_db(transaction=True)
def test_a_session_idle_in_a_transaction_past_the_threshold_opens_an_alert_that_turns_critical_and_clears(
    settings, operations_user
):
    settings.OKADA_HEALTH_ALERT_EMAIL = True
    settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES = 0.01  # 0.6 s
    settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES = 60
    with session(autocommit=False) as idle:
        pid = backend_pid(idle)
        with idle.cursor() as cur:
            cur.execute("SELECT 'sessionkey-4242' AS health_probe_idle")
        # A session that only runs queries (autocommit) is never idle inside a transaction.
        with in_thread("SELECT pg_sleep(30) AS health_probe_busy") as (busy, done):
            opened = wait_until(
                lambda: services.alerts_evaluate(kinds=["idle_in_transaction"])["opened"],
                "the session to be idle in its transaction long enough",
            )
            with session() as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_cancel_backend(%s)", [busy])
            wait_until(lambda: done, "the sleeping query to stop")
        alert = Alert.objects.open().get(kind="idle_in_transaction")
        assert opened == [alert.key] and alert.data["params"]["pid"] == pid
        assert alert.severity == "warning" and "health_probe_idle" in alert.message
        # Stored, emailed and shown to Operations: the query's values are left out.
        assert "'…' AS health_probe_idle" in alert.message and "sessionkey-4242" not in str(alert.data)
        with translation.override("fr"):
            assert "inactive dans une transaction ouverte" in alert_text(alert)
        # Emailed as the other alerts are: in French, titled by the condition.
        [sent] = mail.outbox
        assert sent.subject.endswith("\u00a0: Transaction ouverte inactive")
        assert sent.body.startswith(
            f"La session {pid} est inactive dans une transaction ouverte depuis 0 minute "
        )
        settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES = 0.01
        assert services.alerts_evaluate(kinds=["idle_in_transaction"])["repeated"] == 1
        alert.refresh_from_db()
        assert alert.severity == "critical" and alert.cleared_at is None
        assert len(mail.outbox) == 2 and "critique" in mail.outbox[1].subject
        idle.rollback()
        assert services.alerts_evaluate(kinds=["idle_in_transaction"])["cleared"] == [alert.key]


@pytest.mark.django_db(transaction=True)
def test_a_multixact_id_age_past_the_share_of_the_limit_opens_an_alert_that_clears(settings):
    # Two transactions share-locking one row make a multixact: the age is at least 1 from then.
    with session() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE health_probe_mxid (id int); INSERT INTO health_probe_mxid VALUES (1)")
    try:
        with session(autocommit=False) as first, session(autocommit=False) as second:
            for locker in (first, second):
                with locker.cursor() as cur:
                    cur.execute("SELECT id FROM health_probe_mxid FOR SHARE")
        settings.OKADA_HEALTH_MULTIXACT_ALERT_PERCENT = 0.5 * 100 / (2**31 - 1)  # an age of 1 is past it
        services.alerts_evaluate(kinds=["multixact_wraparound"])
        alert = Alert.objects.open().get(key="multixact_wraparound:database")
        assert alert.severity == "warning" and alert.data["params"]["age"] >= 1
        assert alert.message.startswith("Multixact id age is ")
        settings.OKADA_HEALTH_MULTIXACT_ALERT_PERCENT = 50
        assert services.alerts_evaluate(kinds=["multixact_wraparound"])["cleared"] == [alert.key]
    finally:
        with session() as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE health_probe_mxid")


# --- Cache hit ratio between snapshots -----------------------------------------------------------

# 35 MB written by CREATE TABLE AS, whose ring of buffers leaves most of it out of shared buffers:
# its first scan reads more than half of its blocks from outside them.
COLD_TABLE = "CREATE TABLE {} AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 150000) g"
# A small table read again and again: every block found in shared buffers.
WARM_TABLE = "CREATE TABLE health_probe_warm AS SELECT g AS id FROM generate_series(1, 100000) g"
WARM_SCANS = "DO $$ BEGIN FOR i IN 1..{} LOOP PERFORM count(*) FROM health_probe_warm; END LOOP; END $$"


def flushed(*statements: str) -> None:
    """Run `statements` on a session of their own and make its statistics visible to every
    session (pg_stat_force_next_flush: flushed before the server answers the next command)."""
    with session() as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        cur.execute("SELECT pg_stat_force_next_flush()")
        cur.execute("SELECT 1")


def snapshot(hours_ago: int) -> None:
    assert services.snapshot_take(now=timezone.now() - dt.timedelta(hours=hours_ago))["taken"]


@pytest.fixture
def probe_tables():
    yield
    with session() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS health_probe_cold, health_probe_cold2, health_probe_warm")


@pytest.mark.django_db(transaction=True)
def test_a_bad_hour_of_cache_hits_after_good_ones_opens_an_alert_that_an_idle_hour_clears(
    settings, monkeypatch, probe_tables
):
    from okada.health import pg, selectors

    settings.OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT = 90
    monkeypatch.setattr(selectors, "CACHE_HIT_MIN_BLOCKS", 1000)
    flushed(
        "SELECT pg_stat_reset()", COLD_TABLE.format("health_probe_cold"), WARM_TABLE, WARM_SCANS.format(300)
    )
    snapshot(hours_ago=3)
    flushed("SELECT count(*) FROM health_probe_cold")  # the bad hour
    snapshot(hours_ago=2)
    with pg.reads() as cur:  # since the reset, the ratio still looks fine: the good hours hide it
        assert pg.cache_hit_ratios(cur)["table_ratio"] >= 0.9
    assert services.alerts_evaluate(kinds=["cache_hit_ratio_low"])["opened"] == ["cache_hit_ratio_low:table"]
    alert = Alert.objects.open().get(kind="cache_hit_ratio_low")
    assert alert.data["params"]["percent"] < 90 and alert.data["params"]["blocks"] >= 1000
    # The snapshot's hour in Douala time (UTC+1), as the alert emails give times.
    latest_hour = Snapshot.objects.order_by("-taken_at")[0].hour
    assert alert.data["params"]["until"] == f"{latest_hour + dt.timedelta(hours=1):%H:%M}"
    with translation.override("fr"):
        assert "Le taux de succès du cache (table) a été de" in alert_text(alert)
    # An hour with too few reads to judge the cache by says nothing: the alert clears.
    snapshot(hours_ago=1)
    assert services.alerts_evaluate(kinds=["cache_hit_ratio_low"])["cleared"] == [alert.key]


@pytest.mark.django_db(transaction=True)
def test_a_good_hour_after_bad_ones_opens_no_cache_alert_nor_does_an_hour_with_a_statistics_reset(
    settings, monkeypatch, probe_tables
):
    from okada.health import pg, selectors

    settings.OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT = 90
    monkeypatch.setattr(selectors, "CACHE_HIT_MIN_BLOCKS", 1000)
    flushed(
        "SELECT pg_stat_reset()",
        COLD_TABLE.format("health_probe_cold"),
        "SELECT count(*) FROM health_probe_cold",  # the bad hours
        WARM_TABLE,
        COLD_TABLE.format("health_probe_cold2"),
    )
    snapshot(hours_ago=3)
    flushed(WARM_SCANS.format(30))  # a good hour
    snapshot(hours_ago=2)
    with pg.reads() as cur:  # since the reset, the ratio looks bad: the bad hours weigh on it
        assert pg.cache_hit_ratios(cur)["table_ratio"] < 0.9
    reads = selectors.cache_reads_between_snapshots()
    assert reads is not None and reads["table_hit"] >= 1000 and reads["table_read"] == 0  # judged, and good
    assert services.alerts_evaluate(kinds=["cache_hit_ratio_low"])["opened"] == []
    # A bad hour, but the statistics were reset in it: nothing to compare, no judgement.
    flushed("SELECT pg_stat_reset()", "SELECT count(*) FROM health_probe_cold2")
    snapshot(hours_ago=1)
    assert selectors.cache_reads_between_snapshots() is None
    assert services.alerts_evaluate(kinds=["cache_hit_ratio_low"])["opened"] == []
