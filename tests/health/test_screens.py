"""The health screens show the figures the alerts judge: the cache hits of the last interval
between snapshots, the multixact id age, sessions idle in a transaction (real snapshots, real
sessions)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from okada.health import pg, selectors, services
from okada.health.models import Snapshot
from okada.health.templatetags.health import number, percent
from tests.core.test_admin_job_labels import shown
from tests.health.conftest import backend_pid, session, wait_until
from tests.health.test_admin import url
from tests.health.test_services import COLD_TABLE, WARM_SCANS, WARM_TABLE, flushed, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def cold_tables():
    yield
    with session() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS health_probe_cold, health_probe_warm")


def page(client, screen: str, language: str = "en") -> str:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(url(screen))
    assert response.status_code == 200
    return response.content.decode()


def block(html: str, element_id: str) -> str:
    """The text of the element with this id (up to its first closing </div>)."""
    return " ".join(shown(html.split(f'id="{element_id}">', 1)[1].split("</div>", 1)[0]))


# --- Cache hits of the last interval -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_overview_and_indexes_show_the_last_hours_cache_hits_the_alert_judges_not_the_months_before(
    client, admin_user, settings, monkeypatch, cold_tables
):
    # The screens showed the ratios since the statistics' reset: a bad hour the alert opened for
    # looked fine there, hidden behind the good hours before it.
    settings.OKADA_HEALTH_CACHE_HIT_ALERT_PERCENT = 90
    monkeypatch.setattr(selectors, "CACHE_HIT_MIN_BLOCKS", 1000)
    flushed(
        "SELECT pg_stat_reset()", COLD_TABLE.format("health_probe_cold"), WARM_TABLE, WARM_SCANS.format(300)
    )
    snapshot(hours_ago=3)
    flushed("SELECT count(*) FROM health_probe_cold")  # the bad hour
    snapshot(hours_ago=2)
    assert services.alerts_evaluate(kinds=["cache_hit_ratio_low"])["opened"] == ["cache_hit_ratio_low:table"]
    reads = selectors.cache_reads_between_snapshots()
    assert reads is not None
    judged = reads["table_hit"] / (reads["table_hit"] + reads["table_read"])
    assert judged < 0.9
    with pg.reads() as cur:
        since_reset = pg.cache_hit_ratios(cur)["table_ratio"]
    assert since_reset >= 0.9
    since, until = (timezone.localtime(s.hour) for s in (reads["since"], reads["until"]))
    client.force_login(admin_user)
    with translation.override("en"):
        expected = percent(judged, 2)
    for screen in ("changelist", "indexes"):
        body = page(client, screen)
        interval = " ".join(shown(body.split('id="cache-interval"', 1)[1].split("</section>", 1)[0]))
        assert f"tables, last interval {expected}" in interval, (screen, interval)
        # The interval in the marketplace's time (Douala, UTC+1), not the snapshots' UTC hours.
        assert f"from {since:%H:%M} to {until:%H:%M} (Africa/Douala time)" in interval, interval
        assert f"{since:%H:%M}" != f"{reads['since'].hour:%H:%M}"
        assert "under 90.0 %, from 1 000 blocks read" in interval
        # No index was read that hour: too few blocks to judge, as the alert does not judge them.
        assert "indexes, last interval not enough reads to judge" in interval
        assert 'class="health-figure health-warn-text"' in body.split('id="cache-interval"', 1)[1]
    with translation.override("fr"):
        expected_fr = percent(judged, 2)
    body = page(client, "changelist", "fr")
    interval = " ".join(shown(body.split('id="cache-interval"', 1)[1].split("</section>", 1)[0]))
    assert f"tables, dernier intervalle {expected_fr}" in interval
    assert f"de {since:%H:%M} à {until:%H:%M} (fuseau horaire Africa/Douala)" in interval
    assert "index, dernier intervalle pas assez de lectures pour juger" in interval


@pytest.mark.django_db(transaction=True)
def test_the_screens_say_why_there_is_no_interval_to_show(client, admin_user):
    client.force_login(admin_user)
    Snapshot.objects.all().delete()
    for screen in ("changelist", "indexes"):
        assert "not enough snapshots to judge yet" in page(client, screen), screen
    # An idle hour: too few blocks read to judge either ratio.
    snapshot(hours_ago=3)
    snapshot(hours_ago=2)
    assert selectors.cache_reads_between_snapshots() is not None
    interval = page(client, "changelist").split('id="cache-interval"', 1)[1].split("</section>", 1)[0]
    assert " ".join(shown(interval)).count("not enough reads to judge") == 2
    # The statistics reset between the two latest snapshots: nothing compared (as the alert).
    flushed("SELECT pg_stat_reset()")
    snapshot(hours_ago=1)
    assert selectors.cache_reads_between_snapshots() is None
    reset = timezone.localtime(Snapshot.objects.order_by("-taken_at")[0].stats_reset)
    for screen in ("changelist", "indexes"):
        text = " ".join(shown(page(client, screen, "fr")))
        assert (
            "Dernier intervalle : statistiques remises à zéro depuis l\u2019instantané précédent "
            f"(le {reset:%d/%m/%Y %H:%M})" in text
        ), screen


def test_the_last_interval_costs_the_same_few_queries_however_many_tables_the_snapshots_hold(
    client, admin_user
):
    client.force_login(admin_user)
    snapshot(hours_ago=3)
    snapshot(hours_ago=2)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert selectors.cache_hit_interval()["reads"] is not None
        return len(captured)

    before = queries()
    with connection.cursor() as cur:
        for i in range(20):
            cur.execute(f"CREATE TABLE health_probe_many_{i} (id int)")
    Snapshot.objects.all().delete()
    snapshot(hours_ago=3)
    snapshot(hours_ago=2)
    assert queries() == before == 3  # the two snapshots, then each one's table rows
    with CaptureQueriesContext(connection) as captured:
        page(client, "indexes")
    with connection.cursor() as cur:
        for i in range(20, 40):
            cur.execute(f"CREATE TABLE health_probe_many_{i} (id int)")
    Snapshot.objects.all().delete()
    snapshot(hours_ago=3)
    snapshot(hours_ago=2)
    with CaptureQueriesContext(connection) as again:
        page(client, "indexes")
    assert len(again) == len(captured)


# --- Multixact id age ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_storage_and_overview_screens_show_the_id_ages_with_their_share_and_threshold(
    client, admin_user, settings
):
    # Two transactions share-locking one row make a multixact: the age is at least 1 from then.
    with session() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE health_probe_mxid (id int); INSERT INTO health_probe_mxid VALUES (1)")
    try:
        with session(autocommit=False) as first, session(autocommit=False) as second:
            for locker in (first, second):
                with locker.cursor() as cur:
                    cur.execute("SELECT id FROM health_probe_mxid FOR SHARE")
        settings.OKADA_HEALTH_MULTIXACT_ALERT_PERCENT = 40
        settings.OKADA_HEALTH_WRAPAROUND_ALERT_PERCENT = 45
        with pg.reads() as cur:
            age = pg.database(cur)["mxid_age"]
        assert age >= 1
        client.force_login(admin_user)
        body = page(client, "storage", "fr")
        mxid = block(body, "mxid-age")
        share = f"{100 * age / pg.XID_LIMIT:.1f}".replace(".", ",")
        assert mxid.startswith("âge des identifiants multixact (bouclage)"), mxid
        assert f"{number(age)} {share} % de la limite, alerte à partir de 40 %" in mxid, mxid
        assert "alerte à partir de 45 %" in block(body, "xid-age")
        overview = page(client, "changelist", "fr")
        mxid_overview = block(overview, "overview-mxid-age")
        assert mxid_overview == f"âge des identifiants multixact {share} % alerte à partir de 40 %"
        assert block(overview, "overview-xid-age").endswith("% alerte à partir de 45 %")
    finally:
        with session() as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE health_probe_mxid")


# --- Sessions idle in a transaction ------------------------------------------------------------


def row_of(html: str, pid: int) -> tuple[str, str]:
    """The class and text of the Activity table's row of this backend."""
    match = re.search(rf'<tr class="([^"]*)">\s*<td class="num">{pid}</td>(.*?)</tr>', html, re.DOTALL)
    assert match, f"no row for {pid}"
    return match.group(1), " ".join(shown(match.group(2)))


@pytest.mark.django_db(transaction=True)  # now() of a test's transaction would stand still
def test_a_session_idle_in_a_transaction_stands_out_with_how_long_it_has_been_idle(
    client, admin_user, settings
):
    # The row was a faint grey with the age of its last query and of its transaction, but not
    # how long it had been idle (what the alert judges), and not marked once past the alert's
    # thresholds.
    settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES = 60
    settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES = 120
    client.force_login(admin_user)
    with session(autocommit=False) as idle:
        pid = backend_pid(idle)
        with idle.cursor() as cur:
            cur.execute("SELECT 1 AS health_probe_idle")  # then idle, its transaction left open
        css, text = row_of(page(client, "activity", "fr"), pid)
        assert css == "health-idle" and "inactive depuis " in text, (css, text)
        settings.OKADA_HEALTH_IDLE_TRANSACTION_MINUTES = 0.01  # 0.6 s: the alert would warn

        def warned() -> tuple[str, str] | None:
            found = row_of(page(client, "activity"), pid)
            return found if found[0] == "health-warning" else None

        css, text = wait_until(warned, "the session to be idle past the warning threshold")
        assert "idle for " in text
        settings.OKADA_HEALTH_IDLE_TRANSACTION_CRITICAL_MINUTES = 0.01
        css, text = row_of(page(client, "activity"), pid)
        assert css == "health-critical" and "idle for " in text
