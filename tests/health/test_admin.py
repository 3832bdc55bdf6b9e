"""The health screens in the admin: who reads them, who acts, and that each renders."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from okada.health.models import Alert, DatabaseAction, Snapshot
from tests.core.test_admin_job_labels import shown
from tests.health.conftest import backend_pid, in_thread, session, wait_until

pytestmark = pytest.mark.django_db

SCREENS = ["changelist", "queries", "activity", "storage", "indexes", "sequences", "connections"]


def url(name: str) -> str:
    return reverse(f"admin:health_databasehealth_{name}" if name == "changelist" else f"admin:health_{name}")


@pytest.mark.parametrize("screen", SCREENS)
def test_superusers_and_operations_read_every_screen(client, admin_user, operations_user, screen):
    for user in (admin_user, operations_user):
        client.force_login(user)
        response = client.get(url(screen))
        assert response.status_code == 200, (user, screen)
        assert b"health-unavailable" not in response.content


def test_staff_without_the_role_cannot_read_the_screens(client, staff_user):
    client.force_login(staff_user)
    assert client.get(url("queries")).status_code == 403
    assert client.get(url("changelist")).status_code == 403


def test_the_overview_shows_the_database_beside_the_marketplace(client, admin_user):
    client.force_login(admin_user)
    body = client.get(url("changelist")).content.decode()
    for panel in (
        "orders.placements",
        "orders.open",
        "catalog.stock_outs",
        "backups.status",
        "health.jobs",
        "health.partitions",
        "health.queue",
    ):
        assert f'id="panel-{panel}"' in body, panel


def test_the_queries_screen_says_when_pg_stat_statements_is_missing(client, admin_user, monkeypatch):
    from okada.health import pg

    original = pg.statements_status

    def not_preloaded(cur):
        status = original(cur)
        return {**status, "preloaded": False, "available": False}

    monkeypatch.setattr(pg, "statements_status", not_preloaded)
    client.force_login(admin_user)
    body = client.get(url("queries")).content.decode()
    assert "shared_preload_libraries" in body


def test_operations_see_no_action_buttons_and_their_posts_are_refused(client, operations_user):
    client.force_login(operations_user)
    page = client.get(url("queries")).content
    assert reverse("admin:health_queries_reset").encode() not in page
    assert b"/cancel/" not in client.get(url("activity")).content
    assert client.get(reverse("admin:health_queries_reset")).status_code == 403
    assert client.post(reverse("admin:health_queries_reset")).status_code == 403
    assert client.post(reverse("admin:health_signal", args=[1, "cancel"])).status_code == 403
    assert not DatabaseAction.objects.exists()


def english(client) -> None:
    """The admin speaks French unless the user chose English (the language cookie)."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def test_resetting_the_statistics_asks_first_and_is_logged(client, admin_user):
    client.force_login(admin_user)
    english(client)
    assert reverse("admin:health_queries_reset").encode() in client.get(url("queries")).content
    confirm = client.get(reverse("admin:health_queries_reset"))
    assert confirm.status_code == 200 and b"Yes, do it" in confirm.content
    assert not DatabaseAction.objects.exists()  # asking changes nothing
    response = client.post(reverse("admin:health_queries_reset"))
    assert response.status_code == 302
    assert DatabaseAction.objects.get().user == admin_user


@pytest.mark.django_db(transaction=True)
def test_a_superuser_cancels_a_long_query_from_the_activity_screen(client, admin_user):
    client.force_login(admin_user)
    with in_thread("SELECT pg_sleep(30) AS health_probe_sleep") as (pid, done):
        wait_until(
            lambda: b"health_probe_sleep" in client.get(url("activity")).content, "the query to be listed"
        )
        confirm = client.get(reverse("admin:health_signal", args=[pid, "cancel"]))
        assert b"health_probe_sleep" in confirm.content
        response = client.post(reverse("admin:health_signal", args=[pid, "cancel"]))
        assert response.status_code == 302
        wait_until(lambda: done, "the query to stop")
    assert "canceling statement" in str(done[0])
    assert DatabaseAction.objects.get().pid == pid


def test_the_activity_shows_queries_without_their_values_except_to_superusers(
    client, admin_user, operations_user
):
    # Django puts values inside the SQL: a running query can carry a session key or a password
    # hash. Operations read the activity; only superusers see the values.
    with session(autocommit=False) as other:
        with other.cursor() as cur:
            cur.execute(
                "SELECT 'pbkdf2_sha256$secret' AS health_probe_secret, 42"
            )  # then idle in transaction
        client.force_login(operations_user)
        hidden = client.get(url("activity")).content.decode()
        client.force_login(admin_user)
        shown_in_full = client.get(url("activity")).content.decode()
    assert "health_probe_secret" in hidden and "pbkdf2_sha256$secret" not in hidden
    assert "&#x27;…&#x27; AS health_probe_secret, 42" in hidden
    assert "pbkdf2_sha256$secret" in shown_in_full


def test_open_alerts_show_as_a_banner_on_every_admin_page(client, operations_user, staff_user):
    Alert.objects.create(
        key="probe:x",
        kind="probe",
        severity="critical",
        message="Sequence x has used 90.0% of its range.",
        data={
            "message": (
                "Sequence %(name)s has used %(percent).1f%% of its range (values left: %(remaining)s)."
            ),
            "params": {"name": "x", "percent": 90.0, "remaining": 10},
        },
    )
    client.force_login(operations_user)
    english(client)
    body = client.get(reverse("admin:index")).content.decode()
    assert 'id="health-alerts"' in body and "Sequence x has used 90.0% of its range" in body
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"  # and in French for French readers
    body = client.get(reverse("admin:health_alert_changelist")).content.decode()
    assert "La séquence x a utilisé 90,0\u00a0% de sa plage" in body
    client.force_login(staff_user)  # no role: no banner
    assert 'id="health-alerts"' not in client.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_admin_page_does_not_wait_for_a_locked_alert_table_it_shows_without_the_banner(
    client, operations_user
):
    Alert.objects.create(key="probe:x", kind="probe", severity="critical", message="m")
    client.force_login(operations_user)
    english(client)
    page = reverse("admin:orders_order_changelist")
    assert 'id="health-alerts"' in client.get(page).content.decode()
    with session(autocommit=False) as migration:  # e.g. a migration altering the alert table
        with migration.cursor() as cur:
            cur.execute("LOCK TABLE health_alert IN ACCESS EXCLUSIVE MODE")
        response = client.get(page)
    assert response.status_code == 200
    assert 'id="health-alerts"' not in response.content.decode()


def test_operations_acknowledge_alerts_from_the_list(client, operations_user):
    alert = Alert.objects.create(key="probe:x", kind="probe", severity="warning", message="m")
    client.force_login(operations_user)
    response = client.post(
        reverse("admin:health_alert_changelist"), {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == operations_user


def test_a_role_without_the_acknowledge_permission_cannot_acknowledge(client, staff_user):
    from django.contrib.auth.models import Permission

    group = Group.objects.create(name="Readers")
    group.permissions.add(Permission.objects.get(codename="view_alert"))
    staff_user.groups.add(group)
    alert = Alert.objects.create(key="probe:x", kind="probe", severity="warning", message="m")
    client.force_login(staff_user)
    client.post(
        reverse("admin:health_alert_changelist"), {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_open_alerts_are_a_panel_of_the_operations_dashboard(client, operations_user):
    Alert.objects.create(key="probe:x", kind="probe", severity="critical", message="probe alert text")
    client.force_login(operations_user)
    body = client.get(reverse("admin:index")).content.decode()
    assert 'id="panel-healthalerts"' in body
    assert body.count("probe alert text") == 2  # the banner and the panel


def test_a_panel_slower_than_the_statement_timeout_is_unavailable_and_the_page_still_renders(
    client, admin_user, settings
):
    from django.db import connection

    from okada.core import health_registry as registry

    def slow() -> dict:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_sleep(2)")
        return {}

    settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS = 300
    registry.register_panel(
        registry.Panel(key="probe.slow", title="slow", template="x.html", build=slow, order=1)
    )
    try:
        client.force_login(admin_user)
        response = client.get(url("changelist"))
    finally:
        registry.unregister("probe.slow")
    body = response.content.decode()
    assert response.status_code == 200
    slow_panel = body.split('id="panel-probe.slow"', 1)[1].split("</section>", 1)[0]
    assert "health-unavailable" in slow_panel
    assert body.count("health-unavailable") == 1  # the panels after it were read as usual


def test_sessions_states_read_in_french_with_postgresqls_word_in_the_tooltip(client, admin_user):
    client.force_login(admin_user)
    with session(autocommit=False) as other:
        with other.cursor() as cur:
            cur.execute("SELECT 1 AS health_probe_open")  # then idle, its transaction left open
        activity = client.get(url("activity")).content.decode()
    texts = shown(activity)
    assert "inactive, transaction ouverte" in texts and "idle in transaction" not in texts
    assert "attend le client" in texts and "Client" not in texts  # wait_event_type
    assert 'title="PostgreSQL: idle in transaction"' in activity

    connections = client.get(url("connections")).content.decode()
    assert "exécute une requête" in shown(connections) and "active" not in shown(connections)
    assert 'title="PostgreSQL: active"' in connections


def test_alerts_are_listed_and_filtered_by_their_conditions_titles(client, operations_user):
    Alert.objects.create(
        key="job_failing:x", kind="job_failing", severity="warning", message="Job x failed twice in a row."
    )
    client.force_login(operations_user)
    texts = shown(client.get(reverse("admin:health_alert_changelist")).content.decode())
    assert texts.count("Tâche en échec") >= 2 and "job_failing" not in texts  # the column and the filter


def test_a_failing_jobs_alert_names_the_job_by_its_label_and_keeps_the_task_name_in_english(
    client, operations_user
):
    template = "Job %(job)s failed twice in a row (last run %(when)s)."
    params = {"job": "core.prune_job_runs", "when": "2026-12-02T03:00+00:00"}
    Alert.objects.create(
        key="job_failing:core.prune_job_runs",
        kind="job_failing",
        severity="warning",
        message=template % params,
        data={"message": template, "params": params},
    )
    client.force_login(operations_user)
    text = " ".join(shown(client.get(reverse("admin:health_alert_changelist")).content.decode()))
    assert "La tâche Purge des anciennes exécutions de tâches a échoué deux fois de suite" in text
    assert "core.prune_job_runs" not in text
    assert Alert.objects.get().message.startswith("Job core.prune_job_runs failed")  # logs, email


def test_an_acknowledgement_is_shown_in_douala_time_in_the_pages_language(client, operations_user):
    # The list showed the acknowledgement's UTC time as stored ("2026-12-04 22:30"), an hour
    # behind every other time on the admin's pages (Africa/Douala).
    import datetime as dt

    alert = Alert.objects.create(
        key="probe:x",
        kind="probe",
        severity="warning",
        message="m",
        acknowledged_by=operations_user,
        acknowledged_at=dt.datetime(2026, 12, 4, 22, 30, tzinfo=dt.UTC),
    )
    client.force_login(operations_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    body = client.get(reverse("admin:health_alert_changelist")).content.decode()
    assert f"{operations_user} (04/12/2026 23:30)" in body
    assert "22:30" not in body
    page = client.get(reverse("admin:health_alert_change", args=[alert.pk])).content.decode()
    assert "23:30" in page and "22:30" not in page


@pytest.mark.parametrize(
    ("language", "shown"),
    [("fr", ["12,5", "3,5 h", "2,1 j", "1 234"]), ("en", ["12.5", "3.5 h", "2.1 d", "1 234"])],
)
def test_durations_are_written_in_the_readers_number_format(language, shown):
    # "3.5 h" and "12.5 ms" on French pages: the percentages said "98,74 %" beside them.
    from django.utils import translation

    from okada.health.templatetags.health import ms, seconds

    with translation.override(language):
        assert [ms(12.5), seconds(3.5 * 3600), seconds(2.1 * 86400), ms(1234.4)] == shown


def test_a_critical_alert_is_shown_before_warnings_wherever_open_alerts_are_listed(client, operations_user):
    # Severity is stored as a word: ordering by "-severity" put "warning" before "critical", so
    # with more warnings open than a list shows, the critical alert fell off the banner (5), the
    # dashboard panel (8) and the overview.
    for i in range(9):
        Alert.objects.create(
            key=f"probe:w{i}", kind="probe", severity="warning", message=f"probe warning {i}"
        )
    Alert.objects.create(
        key="probe:c",
        kind="probe",
        severity="critical",
        message="probe critical",
        opened_at=timezone.now() - dt.timedelta(days=1),  # the oldest: newest-first would hide it too
    )
    client.force_login(operations_user)
    home = client.get(reverse("admin:index")).content.decode()
    banner = home.split('id="health-alerts"', 1)[1].split("</ul>", 1)[0]
    panel = home.split('id="panel-healthalerts"', 1)[1].split("</table>", 1)[0]
    overview = client.get(url("changelist")).content.decode().split("</table>", 1)[0]
    for where, html in (("banner", banner), ("dashboard", panel), ("overview", overview)):
        assert "probe critical" in html, where
        assert html.index("probe critical") < html.index("probe warning"), where


def test_the_banner_lists_the_alerts_nobody_acknowledged_first(client, operations_user):
    # Ordered by acknowledged_at ascending, PostgreSQL puts NULLs (not acknowledged) last: with
    # five acknowledged alerts open, the banner showed them and hid the one nobody took.
    for i in range(5):
        Alert.objects.create(
            key=f"probe:a{i}",
            kind="probe",
            severity="critical",
            message=f"probe taken {i}",
            acknowledged_by=operations_user,
            acknowledged_at=timezone.now(),
        )
    Alert.objects.create(key="probe:n", kind="probe", severity="critical", message="probe nobody took")
    client.force_login(operations_user)
    banner = client.get(reverse("admin:index")).content.decode().split('id="health-alerts"', 1)[1]
    banner = banner.split("</ul>", 1)[0]
    assert "probe nobody took" in banner
    assert banner.index("probe nobody took") < banner.index("probe taken")


def test_the_sequences_bars_have_a_css_width_on_french_pages(client, admin_user):
    # The bar's width went through the page's number format: "width:0,00%" in French is no
    # CSS width, so every bar was empty for French readers.
    import re

    client.force_login(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    for screen in ("sequences", "changelist", "connections"):
        widths = re.findall(r'style="width:([^"]*)"', client.get(url(screen)).content.decode())
        assert widths, screen
        assert all(re.fullmatch(r"\d+(\.\d+)?%", w) for w in widths), (screen, widths)


def test_the_queries_screen_says_the_statistics_were_reset_since_the_snapshot(client, admin_user, settings):
    from django.db import connection

    from okada.health import services

    settings.OKADA_HEALTH_SNAPSHOT_QUERIES = 100_000
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE health_probe_screen (id int); SELECT count(*) FROM health_probe_screen")
    services.snapshot_take(now=timezone.now() - dt.timedelta(hours=2))
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")
        cur.execute("SELECT count(*) FROM health_probe_screen")
    client.force_login(admin_user)
    english(client)
    texts = shown(client.get(url("queries") + "?compare=hour").content.decode())
    assert "The statistics were reset after that snapshot: no change to show." in " ".join(texts)
    assert not any(t.startswith("Compared with the snapshot") for t in texts)
    assert "new" not in texts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("screen", "table"), [("storage", "health_tablestat"), ("queries", "health_snapshot")]
)
def test_a_screen_whose_snapshot_table_cannot_be_read_in_time_says_so_in_french(
    client, admin_user, settings, screen, table
):
    # The growth chart (Storage) and the snapshot to compare with (Queries) were read outside
    # any section: a lock or a slow read there was a 500 instead of "unavailable". And what a
    # section said was PostgreSQL's English ("canceling statement due to ...") on French pages.
    from okada.health import services

    services.snapshot_take(now=timezone.now() - dt.timedelta(hours=2))
    settings.OKADA_HEALTH_STATEMENT_TIMEOUT_MS = 300
    client.force_login(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    with session(autocommit=False) as other:
        with other.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # a migration, say
        response = client.get(url(screen))
    assert response.status_code == 200
    text = " ".join(shown(response.content.decode()))
    assert "health-unavailable" in response.content.decode()
    assert "canceling statement" not in text
    assert (
        "une requête a dépassé 300 ms" in text
        or "une table à lire est verrouillée par une autre session depuis plus de 300 ms" in text
    ), text


@pytest.mark.django_db(transaction=True)
def test_a_cancel_postgresql_refuses_is_a_refusal_that_says_why_not_a_500(client, admin_user):
    # Production's role has pg_signal_backend, not superuser: PostgreSQL refuses to cancel a
    # superuser's query (a DBA's psql session) with an error, which was a 500.
    from django.db import connection

    owner = connection.settings_dict["USER"]  # a member of the tables' owner, but not superuser
    with connection.cursor() as cur:
        cur.execute(f'CREATE ROLE health_probe_operator NOLOGIN IN ROLE pg_signal_backend, "{owner}"')
    client.force_login(admin_user)
    client.raise_request_exception = False
    try:
        with in_thread("SELECT pg_sleep(30) AS health_probe_dba") as (pid, done):
            with connection.cursor() as cur:  # the web process's role from now on
                cur.execute("SET ROLE health_probe_operator")
            try:
                response = client.post(reverse("admin:health_signal", args=[pid, "cancel"]))
            finally:
                with connection.cursor() as cur:
                    cur.execute("RESET ROLE")
            assert not done  # still running
            with session() as other, other.cursor() as cur:
                cur.execute("SELECT pg_cancel_backend(%s)", [pid])
            wait_until(lambda: done, "the query to stop")
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP ROLE health_probe_operator")
    assert response.status_code == 403
    assert (
        f"Le rôle de la base ne peut pas arrêter la session {pid} : elle appartient à un superutilisateur"
        in " ".join(shown(response.content.decode()))
    )
    assert not DatabaseAction.objects.exists()


def test_the_confirmation_of_a_session_that_may_not_be_stopped_says_why_and_offers_no_button(
    client, admin_user
):
    # The page asked "Terminate session ...?" with "Yes, do it" for the checkpointer, and only
    # the answer (a 403) said it was never allowed.
    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        checkpointer = cur.fetchone()[0]
    client.force_login(admin_user)
    english(client)
    page = client.get(reverse("admin:health_signal", args=[checkpointer, "terminate"])).content.decode()
    assert "only client sessions and autovacuum can be stopped here" in page
    assert "Yes, do it" not in page and '<form method="post">' not in page
    with session() as other:  # a client session of this database: asked as before
        page = client.get(reverse("admin:health_signal", args=[backend_pid(other), "cancel"])).content
    assert b"Yes, do it" in page


@pytest.mark.parametrize("reader", ["operations_user", "admin_user"])
def test_the_queries_screen_never_shows_the_values_pg_stat_statements_left_in_a_statement(
    client, reader, request
):
    # pg_stat_statements does not normalise utility statements (ALTER ROLE ... PASSWORD '...'):
    # the snapshots kept them without their values, but the screen showed them as they were.
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")  # so that it is among the top statements
        cur.execute("SET LOCAL application_name = 'health-probe-secret'")
    client.force_login(request.getfixturevalue(reader))
    body = client.get(url("queries") + "?order=calls").content.decode()
    assert "SET LOCAL application_name = &#x27;…&#x27;" in body
    assert "health-probe-secret" not in body


def test_an_alerts_figures_are_written_in_the_readers_number_format(client, operations_user):
    # The alert's page showed its figures as JSON: {"percent": 89.95} on French pages.
    alert = Alert.objects.create(
        key="sequence_near_max:x",
        kind="sequence_near_max",
        severity="warning",
        message="m",
        data={"message": "m", "params": {"name": "x", "percent": 89.95, "remaining": 105}},
    )
    client.force_login(operations_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    texts = shown(client.get(reverse("admin:health_alert_change", args=[alert.pk])).content.decode())
    text = " ".join(texts)
    assert '"percent": "89,95"' in text and "89.95" not in text


def test_changes_since_the_last_snapshot_compare_with_the_newest_one(client, admin_user):
    # "since the last snapshot" compared with the newest snapshot at least an hour old: at 10:30
    # with hourly snapshots, 09:02's instead of 10:02's.
    from okada.health import services

    now = timezone.now()
    for minutes in (80, 20):  # an hour apart: two UTC hours, two snapshots
        assert services.snapshot_take(now=now - dt.timedelta(minutes=minutes))["taken"]
    newest = Snapshot.objects.order_by("-taken_at").first()
    client.force_login(admin_user)
    report = client.get(url("queries") + "?compare=hour").context["report"].data
    # (A statistics reset since then shows as such: the snapshot is the one it was compared with.)
    assert (report["since"] or report["reset_since"]) == newest
