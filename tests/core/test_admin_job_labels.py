"""Job runs and scheduled jobs in French: labels instead of task names, summaries as translated
tables, crontabs in words. Task names and summaries stay stored as they are; the task name is
still shown to engineers (tooltip, detail page, the task picker)."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import translation
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from okada.core.jobs import job
from okada.core.models import JobRun
from tests.core.test_admin_french import VisibleText

pytestmark = pytest.mark.django_db

BACKUP = "Sauvegarde de la base de données"
PRUNE = "Purge des anciennes exécutions de tâches"


def shown(html: str) -> list[str]:
    """The page's text nodes (tooltips left out: they may hold the raw names on purpose)."""
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return [" ".join(text.split()) for text, tag in parser.texts if text.strip() and "[" not in tag]


def page(client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    return shown(response.content.decode())


@pytest.fixture
def runs():
    with job("core.prune_job_runs") as run:
        run.summary = {"deleted": 3, "surprise": 1}
    with job("backups.run_backup") as run:
        run.summary = {"backup": "b1", "file": "okada.dump", "size_bytes": 2048, "pruned": ["old.dump"]}
    return JobRun.objects.get(name="core.prune_job_runs")


def test_the_job_runs_list_and_its_filter_name_jobs_by_their_french_labels(client, admin_user, runs):
    client.force_login(admin_user)
    texts = page(client, reverse("admin:core_jobrun_changelist"))
    assert texts.count(BACKUP) >= 2 and texts.count(PRUNE) >= 2  # the column and the filter
    assert "backups.run_backup" not in texts and "core.prune_job_runs" not in texts

    filtered = client.get(reverse("admin:core_jobrun_changelist"), {"name": "core.prune_job_runs"})
    assert [r.name for r in filtered.context["cl"].result_list] == ["core.prune_job_runs"]


def test_job_runs_are_found_by_words_of_their_label_or_by_their_task_name(client, admin_user, runs):
    client.force_login(admin_user)

    def found(term: str) -> list[str]:
        response = client.get(reverse("admin:core_jobrun_changelist"), {"q": term})
        return sorted(r.name for r in response.context["cl"].result_list)

    assert found("sauvegarde") == ["backups.run_backup"]
    assert found("PURGE exécutions") == ["core.prune_job_runs"]
    assert found("executions") == ["core.prune_job_runs"]  # typed without accents, as on a phone
    assert found("run_backup") == ["backups.run_backup"]  # the task name, as engineers type it
    assert found("sauvegarde purge") == []  # every word must match the same job


def test_a_job_run_shows_its_label_its_task_name_and_its_summary_in_french(client, admin_user, runs):
    client.force_login(admin_user)
    texts = page(client, reverse("admin:core_jobrun_change", args=[runs.pk]))
    assert PRUNE in texts and "core.prune_job_runs" in texts  # the task name, for engineers
    assert "exécutions supprimées" in texts and "deleted" not in texts
    assert "surprise" in texts  # a key without a label is shown as it is, never hidden
    assert not any("(success)" in t for t in texts)  # the title: the outcome in French too


def test_a_summary_reads_in_the_page_language_values_included():
    from okada.core.display import job_summary

    with translation.override("fr"):
        backup = job_summary(
            "backups.run_backup", {"file": "okada.dump", "size_bytes": 2048, "pruned": ["a.dump", "b.dump"]}
        )
        skipped = job_summary("core.prune_job_runs", {"reason": "another run holds the lock", "holder": None})
        drill = job_summary("backups.run_restore_drill", {"outcome": "nothing to verify"})
        snapshot = job_summary("health.take_snapshot", {"taken": False})
    texts = shown(backup + skipped + drill + snapshot)
    assert texts == [
        *(
            "fichier",
            "okada.dump",
            "taille (octets)",
            "2048",
            "anciennes sauvegardes supprimées",
            "a.dump, b.dump",
        ),
        *("motif", "une autre exécution détient le verrou", "détenteur du verrou", "-"),
        *("résultat", "rien à vérifier"),
        *("pris", "non"),
    ]


def test_the_dashboard_and_the_health_jobs_panel_name_jobs_by_their_labels(client, admin_user, runs):
    client.force_login(admin_user)
    for url in (reverse("admin:index"), reverse("admin:health_databasehealth_changelist")):
        texts = page(client, url)
        assert PRUNE in texts and "core.prune_job_runs" not in texts, url


def test_the_scheduled_jobs_screens_show_labels_and_crontabs_in_words(client, admin_user):
    client.force_login(admin_user)
    backup = PeriodicTask.objects.get(task="backups.run_backup")
    tasks = page(client, reverse("admin:django_celery_beat_periodictask_changelist"))
    assert BACKUP in tasks and "backups.run_backup" not in tasks  # the filter by job

    task = page(client, reverse("admin:django_celery_beat_periodictask_change", args=[backup.pk]))
    assert f"{BACKUP} (backups.run_backup)" in task  # the task picker: label, then the task name
    assert "À 03:00 (Africa/Douala)" in task  # the crontab picker in words
    assert not any("m/h/dM/MY/d" in t for t in task)  # the title and the picker

    crontabs = page(client, reverse("admin:django_celery_beat_crontabschedule_changelist"))
    assert "À 02:00 (Africa/Douala)" in crontabs and "0 2 * * *" in crontabs
    assert not any("m/h/dM/MY/d" in t for t in crontabs)

    nightly = CrontabSchedule.objects.get(pk=backup.crontab_id)
    crontab = page(client, reverse("admin:django_celery_beat_crontabschedule_change", args=[nightly.pk]))
    assert BACKUP in crontab and "backups.run_backup" not in crontab  # the inline of its tasks
    assert not any("m/h/dM/MY/d" in t or "Nightly backup" in t for t in crontab)


def test_a_default_schedules_name_and_description_read_in_french_and_stay_stored_in_english(
    client, admin_user
):
    from okada.core.admin import PeriodicTaskAdmin

    backup = PeriodicTask.objects.get(task="backups.run_backup")
    english = backup.description
    french = "pg_dump de toute la base dans OKADA_BACKUP_DIR, puis purge selon la rétention."
    client.force_login(admin_user)
    response = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[backup.pk]))
    assert french in response.content.decode() and english not in response.content.decode()
    assert 'value="Sauvegarde nocturne"' in response.content.decode()  # the name, too

    # Saved as shown: the stored text stays the catalogued English (English readers still read it).
    form = response.context["adminform"].form
    shown = {name: form[name].value() for name in form.fields}
    assert shown["description"] == french
    model_admin = PeriodicTaskAdmin(PeriodicTask, admin.site)
    request = response.wsgi_request
    with translation.override("fr"):
        bound = model_admin.get_form(request, backup, change=True)(
            data={k: v for k, v in shown.items() if v is not None}, instance=backup
        )
        assert bound.is_valid(), bound.errors
        assert bound.cleaned_data["description"] == english
        assert bound.cleaned_data["name"] == "Nightly backup"

        edited = model_admin.get_form(request, backup, change=True)(
            data={**{k: v for k, v in shown.items() if v is not None}, "description": "Nuit : sauvegarde."},
            instance=backup,
        )
        assert edited.is_valid(), edited.errors
        assert edited.cleaned_data["description"] == "Nuit : sauvegarde."  # an edit is kept as typed


def test_a_crontab_in_words_names_its_months_in_the_pages_language():
    from okada.core.schedule_names import cron_in_words

    douala = "Africa/Douala"
    twice_a_year = CrontabSchedule(minute="0", hour="3", month_of_year="6,12", timezone=douala)
    new_year = CrontabSchedule(minute="0", hour="3", day_of_month="1", month_of_year="jan", timezone=douala)
    with translation.override("fr"):
        assert cron_in_words(twice_a_year) == "À 03:00, uniquement en juin et décembre (Africa/Douala)"
        assert "janvier" in cron_in_words(new_year) and "January" not in cron_in_words(new_year)
    with translation.override("en"):
        assert cron_in_words(twice_a_year) == "At 03:00, only in June and December (Africa/Douala)"


def test_a_schedules_page_takes_the_same_queries_for_any_number_of_its_tasks(client, admin_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    nightly = CrontabSchedule.objects.create(minute="7", hour="4", timezone="Africa/Douala")
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[nightly.pk])
    client.force_login(admin_user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    PeriodicTask.objects.create(name="probe 0", task="core.prune_job_runs", crontab=nightly)
    queries()  # the first request fills per-process caches
    one = queries()
    for i in range(1, 6):
        PeriodicTask.objects.create(name=f"probe {i}", task="core.prune_job_runs", crontab=nightly)
    assert queries() == one  # each inline row names its task with its schedule: not a query each


def test_a_restore_drills_summary_reads_in_french_down_to_its_checks(client, admin_user):
    # The drill's checks (rows, tables, checksum, invariants, count differences) showed their
    # English keys on the French page, and the restore time every digit of a float.
    with job("backups.run_restore_drill") as run:
        run.summary = {
            "outcome": "passed",
            "restore_seconds": 1.9576295489969198,
            "checks": {"rows": 23562, "tables": 83, "checksum": "ok", "count_differences": {}},
        }
    drill = JobRun.objects.get(name="backups.run_restore_drill")
    client.force_login(admin_user)
    body = client.get(reverse("admin:core_jobrun_change", args=[drill.pk])).content.decode()
    heads = dict(re.findall(r'<tr data-key="(\w+)"><th>([^<]*)</th>', body))
    assert heads == {
        "outcome": "résultat",
        "restore_seconds": "restauration (secondes)",
        "checks": "vérifications",
        "rows": "lignes",
        "tables": "tables",
        "checksum": "somme de contrôle",
        "count_differences": "écarts de comptage",
    }
    assert re.search(r'data-key="restore_seconds"><th>[^<]*</th><td>1,96</td>', body)
