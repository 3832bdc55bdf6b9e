"""The French catalogues: every string translated, and none missing or left over from the code."""

from __future__ import annotations

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
