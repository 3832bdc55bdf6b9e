"""okada.core.texts: a sentence we write into the database is stored in no language and shown in
the reader's; what is not ours (old rows, tools' output) is shown as stored."""

from __future__ import annotations

import pytest
from django.utils import translation
from django.utils.translation import gettext_noop

from okada.core.display import reason_label
from okada.core.errors import InvalidInput, NotFound
from okada.core.jobs import JobFailed, job
from okada.core.models import JobRun
from okada.core.texts import Text, english, joined, shown, text_of
from tests.languages import reads_in_its_language

MISSING = gettext_noop("The backup file %(path)s is missing.")  # in the catalogue


def test_a_text_is_stored_once_and_read_in_each_language():
    stored = Text(MISSING, path="/var/b.dump").stored
    with translation.override("fr"):
        assert shown(stored) == "Le fichier de sauvegarde /var/b.dump est introuvable."
    with translation.override("en"):
        assert shown(stored) == "The backup file /var/b.dump is missing."
    with translation.override("fr"):
        assert english(stored) == "The backup file /var/b.dump is missing."


def test_a_text_without_parameters_is_stored_as_its_msgid():
    stored = Text(gettext_noop("The run stopped before it finished (recovered by the next run).")).stored
    assert stored == "The run stopped before it finished (recovered by the next run)."
    with translation.override("fr"):
        assert shown(stored) == "L\u2019exécution s\u2019est arrêtée avant la fin (reprise par la suivante)."


def test_a_nested_text_is_translated_with_the_sentence_and_verbatim_values_are_not():
    inner = Text(MISSING, path="restore")  # "restore" is a msgid too: as a value it stays as is
    outer = Text(
        gettext_noop("The restore drill of %(when)s failed: %(error)s"), when="2026-12-01", error=inner
    )
    with translation.override("fr"):
        assert shown(outer.stored) == (
            "Le test de restauration du 2026-12-01 a échoué\u00a0: "
            "Le fichier de sauvegarde restore est introuvable."
        )
        assert shown(joined([inner, "pg_restore: error: x"]).stored) == (
            "Le fichier de sauvegarde restore est introuvable.; pg_restore: error: x"
        )


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "Le test s\u2019est arrêté avant la fin.",  # a row written translated, before
        'pg_restore: error: could not read input file: {"msgid": 1}',
        '{"msgid": "x", "params": [1]}',  # JSON, but not ours
        '{"msgid": "broken',
        "100% done",
    ],
)
def test_text_that_is_not_ours_is_shown_as_stored(stored):
    with translation.override("fr"):
        assert shown(stored) == stored


def test_a_translation_that_does_not_fit_its_parameters_falls_back_to_the_english():
    stored = Text(MISSING, wrong="x").stored  # a %(path)s the parameters do not have
    assert shown(stored) == MISSING


def test_what_an_exception_says():
    assert text_of(ValueError("bad")).stored == "bad"
    assert text_of(JobFailed(Text(MISSING, path="p"))) == Text(MISSING, path="p")
    assert text_of(NotFound()).stored == "Not found."  # a default message: its msgid
    assert text_of(InvalidInput(Text(MISSING, path="p"), field="x")).stored == Text(MISSING, path="p").stored
    with translation.override("fr"):
        assert str(InvalidInput(Text(MISSING, path="p"))) == "Le fichier de sauvegarde p est introuvable."


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_job_failed_with_a_text_reads_in_the_viewers_language(language, client, admin_user):
    with translation.override(language), pytest.raises(JobFailed), job("tests.failing_job"):
        raise JobFailed(Text(MISSING, path="/var/b.dump"))
    run = JobRun.objects.get(name="tests.failing_job")
    client.force_login(admin_user)
    reads_in_its_language(
        client,
        f"/admin/core/jobrun/{run.pk}/change/",
        "Le fichier de sauvegarde /var/b.dump est introuvable",
        "The backup file /var/b.dump is missing",
    )


def test_change_reasons_a_job_or_the_api_writes_read_in_the_viewers_language():
    with translation.override("fr"):
        assert reason_label("job backups.run_backup") == "tâche Sauvegarde de la base de données"
        assert reason_label("deleted through the API [vendor:x]") == "supprimé par l\u2019API [vendor:x]"
        assert reason_label("job interview") == "job interview"  # free text stays as typed


# --- Plural forms (ngettext) --------------------------------------------------------------------

AT_MOST = "Ensure this value has at most %(limit_value)d character (it has %(show_value)d)."
AT_MOST_PLURAL = "Ensure this value has at most %(limit_value)d characters (it has %(show_value)d)."


@pytest.mark.parametrize(
    ("limit", "english", "french"),
    [
        (1, "at most 1 character (it has 3)", "au plus 1 caractère (actuellement 3)"),
        (64, "at most 64 characters (it has 300)", "au plus 64 caractères (actuellement 300)"),
    ],
)
def test_a_plural_text_is_stored_once_and_read_in_the_form_its_count_takes_in_each_language(
    limit, english, french
):
    """Django's own catalog knows the msgid pair; the count is a parameter (ngettext_lazy's
    `number` names it), or a number of its own."""
    text = Text.counted(
        AT_MOST, AT_MOST_PLURAL, "limit_value", limit_value=limit, show_value=300 if limit > 1 else 3
    )
    stored = Text.load(text.stored)
    assert stored == text
    with translation.override("en"):
        assert english in shown(text.stored)
    with translation.override("fr"):
        assert french in shown(text.stored)
        assert english in text.english()


def test_a_lazy_plural_keeps_both_msgids_and_the_parameter_that_counts():
    from django.utils.translation import ngettext_lazy

    with translation.override("fr"):
        text = Text.of(ngettext_lazy(AT_MOST, AT_MOST_PLURAL, "limit_value"))
    assert text == Text.counted(AT_MOST, AT_MOST_PLURAL, "limit_value")
    with translation.override("fr"):
        fixed = Text.of(ngettext_lazy("%(n)d unit", "%(n)d units", 2))
    assert fixed == Text.counted("%(n)d unit", "%(n)d units", 2)
    assert fixed.with_params(n=2).english() == "2 units"


def test_a_text_formatted_with_braces_keeps_its_msgid():
    """DRF's messages are str.format templates ("{max_length}"): the same msgid, other braces."""
    text = Text.braced("Ensure this field has no more than {max_length} characters.", max_length=200)
    assert Text.load(text.stored) == text
    with translation.override("fr"):
        assert shown(text.stored) == "Le nombre de caractères de ce champ ne doit pas dépasser 200."
    with translation.override("en"):
        assert shown(text.stored) == "The number of characters in this field must not exceed 200."


def test_a_stored_text_that_cannot_be_formatted_is_still_shown():
    """Rows outlive the code that wrote them: a template reaching into its parameter ({a.b}) or
    a count no int can hold reads as the English it was written in, never a crash."""
    reaching = Text.braced("Value {a.b} refused.", a="x")
    assert shown(Text.load(reaching.stored).stored) == "Value {a.b} refused."
    endless = Text.counted("%(n)s unit", "%(n)s units", "n", n=float("inf"))
    with translation.override("fr"):
        assert shown(Text.load(endless.stored).stored) == "inf units"


def test_a_stored_figure_with_decimals_is_read_with_the_readers_decimal_separator():
    """A health alert stored by a worker shows "90,0 %" to a French reader, "90.0%" in English;
    whole numbers (counts, process ids) are left as they are."""
    text = Text(
        gettext_noop("Sequence %(name)s has used %(percent).1f%% of its range (values left: %(remaining)s)."),
        name="orders_order_number_seq",
        percent=90.04,
        remaining=214748364,
    )
    stored = text.stored
    with translation.override("fr"):
        assert shown(stored) == (
            "La séquence orders_order_number_seq a utilisé 90,0\u00a0% de sa plage "
            "(valeurs restantes\u00a0: 214748364)."
        )
        assert english(stored) == (
            "Sequence orders_order_number_seq has used 90.0% of its range (values left: 214748364)."
        )
    with translation.override("en"):
        assert (
            shown(stored)
            == "Sequence orders_order_number_seq has used 90.0% of its range (values left: 214748364)."
        )
    limit = Text(
        gettext_noop(
            "The %(what)s cache hit ratio was %(percent).2f%% from %(since)s to %(until)s "
            "(%(blocks)s blocks accessed; alert under %(limit)s%%)."
        ),
        what="table",
        percent=97.5,
        since="01:00",
        until="02:00",
        blocks=12000,
        limit=99.0,
    )
    with translation.override("fr"):
        assert "97,50\u00a0%" in limit.render() and "99,0\u00a0%" in limit.render()
