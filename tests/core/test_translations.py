"""The French catalogues: every string translated, and none missing or left over from the code."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest
from django.utils import translation

from okada.core.management.commands.update_messages import (
    VENDORED,
    extract_project,
    extract_vendor,
    project_po,
    vendor_po,
)

CATALOGUES = [project_po(), *(vendor_po(p) for p in VENDORED)]


def keys(path: Path) -> set[tuple[str | None, str]]:
    return {(e.msgctxt, e.msgid) for e in polib.pofile(str(path)) if not e.obsolete}


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: str(p.relative_to(p.parents[3])))
def test_every_message_is_translated(path):
    untranslated = [
        e.msgid for e in polib.pofile(str(path)) if not e.obsolete and (not e.translated() or e.fuzzy)
    ]
    assert untranslated == [], f"translate these in {path} (then `make`): {untranslated[:20]}"


def test_the_project_catalogue_has_every_string_of_the_code_and_no_other(tmp_path):
    fresh = tmp_path / "django.po"
    extract_project(fresh)
    missing = keys(fresh) - keys(project_po())
    stale = keys(project_po()) - keys(fresh)
    assert not missing, (
        f"strings in the code missing from the catalogue (run `make messages`): {sorted(missing)[:20]}"
    )
    assert not stale, f"catalogue strings no longer in the code (run `make messages`): {sorted(stale)[:20]}"


@pytest.mark.parametrize("package", VENDORED)
def test_the_vendored_catalogues_match_the_installed_packages(tmp_path, package):
    fresh = tmp_path / "django.po"
    extract_vendor(package, fresh)
    assert keys(fresh) == keys(vendor_po(package)), f"{package} changed: run `make messages` and translate"


# French typography: a non-breaking space (U+00A0) before : ; ! ? and inside « », never an
# ordinary or a narrow one (most entries had a plain space, DRF's copy and Django's U+00A0: a
# page mixed both, and a line could break before a colon).
# A percent sign too ("%%" in a python-format text, a bare "%" elsewhere; not a placeholder).
LOOSE_SPACE = re.compile(r"[^\S\u00a0](?=[:;!?»]|%%|%(?![(%\w.]))|(?<=«)[^\S\u00a0]")


def french_catalogues() -> list[Path]:
    """Every French catalogue the project keeps: its own, and the vendored copies (unfold, DRF)."""
    from django.conf import settings

    found = [Path(p) / "fr" / "LC_MESSAGES" / "django.po" for p in settings.LOCALE_PATHS]
    return [p for p in found if p.exists()]


def loose_spaces(path: Path) -> list[str]:
    """The msgstr texts of `path` with an ordinary or narrow space where French wants U+00A0."""
    found = []
    for entry in polib.pofile(str(path)):
        for text in [entry.msgstr, *entry.msgstr_plural.values()]:
            if entry.msgid and LOOSE_SPACE.search(text):
                found.append(text)
    return found


def test_the_typography_check_reads_the_project_and_vendored_french_catalogues():
    names = {p.relative_to(p.parents[3]).as_posix() for p in french_catalogues()}
    assert {"locale/fr/LC_MESSAGES/django.po", "unfold/fr/LC_MESSAGES/django.po"} <= names, names
    assert "rest_framework/fr/LC_MESSAGES/django.po" in names, names


@pytest.mark.parametrize("path", french_catalogues(), ids=lambda p: str(p.relative_to(p.parents[3])))
def test_french_puts_a_non_breaking_space_before_colons_and_question_marks_and_inside_quotes(path):
    loose = loose_spaces(path)
    assert loose == [], f"use U+00A0 before : ; ! ? % and inside « » in {path}: {loose[:10]}"


def test_a_plain_or_narrow_space_before_a_colon_is_found(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "a"\nmsgstr "Rien : fait"\n\nmsgid "b"\nmsgstr "Vraiment\u202f?"\n\n'
        'msgid "c"\nmsgstr "« x\u00a0»"\n\nmsgid "d"\nmsgstr "Bien\u00a0: «\u00a0fait\u00a0»\u00a0!"\n\n'
        'msgid "e"\nmsgstr "%(p).1f %% de %(n)s"\n\nmsgid "f"\nmsgstr "%(p).1f\u00a0%% de %s"\n',
        encoding="utf-8",
    )
    assert loose_spaces(po) == ["Rien : fait", "Vraiment\u202f?", "« x\u00a0»", "%(p).1f %% de %(n)s"]


def test_the_compiled_catalogue_is_used():
    with translation.override("fr"):
        assert translation.gettext("Open orders") == "Commandes en cours"
        assert translation.gettext("Filters") == "Filtres"  # django-unfold's, from locale/vendor


def test_no_module_renames_gettext_where_makemessages_would_not_find_its_strings():
    # xgettext extracts `_(...)`, `gettext(...)`, `ngettext(...)`...: a string passed to another
    # name (`gettext as _t`) never reaches the catalogue and shows in English on French pages.
    import ast

    from django.conf import settings

    renamed = []
    for path in Path(settings.BASE_DIR).glob("*/**/*.py"):
        if path.parts[len(Path(settings.BASE_DIR).parts)] in (".venv", "var", "node_modules"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
                renamed += [
                    f"{path}: {a.name} as {a.asname}" for a in node.names if a.asname not in (None, "_")
                ]
    assert renamed == [], renamed
