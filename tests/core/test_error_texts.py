"""Every refusal keeps its sentence in no language (`DomainError.text`), so a stored one (a
sync mutation's rejection, a failed job's error) reads in its reader's language.

The code is scanned for the ways a message loses its msgid: a DomainError raised with a
sentence translated already (`gettext(...)`, `_(...) % {...}`), and a lazy translation formatted
at once. The services raise with `Text(gettext_noop(...), **params)` or `gettext_lazy(...)`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy, gettext_noop

from catalog.models import Product
from okada.core.errors import InvalidInput, NotFound, validated
from okada.core.texts import Text, joined, shown, text_of

ROOT = Path(settings.BASE_DIR)
EAGER = {"gettext", "ngettext", "pgettext", "npgettext"}
LAZY = {"gettext_lazy", "ngettext_lazy", "pgettext_lazy", "npgettext_lazy"}


def _sources() -> list[tuple[Path, ast.Module]]:
    skip = {".venv", "tests", "var", "migrations", "node_modules", "bench"}
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(ROOT.rglob("*.py"))
        if not skip & set(path.relative_to(ROOT).parts)
    ]


def _error_classes(sources: list[tuple[Path, ast.Module]]) -> set[str]:
    """The names of DomainError and of every class that derives from it, in the code."""
    names = {"DomainError"}
    classes = [node for _, tree in sources for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    while True:
        more = {
            c.name
            for c in classes
            if any(getattr(b, "id", getattr(b, "attr", None)) in names for b in c.bases)
        }
        if more <= names:
            return names
        names |= more


def _translators(tree: ast.Module) -> dict[str, str]:
    """Each name the module binds to a django.utils.translation function: "eager" or "lazy"."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
            for alias in node.names:
                kind = "eager" if alias.name in EAGER else "lazy" if alias.name in LAZY else None
                if kind:
                    bound[alias.asname or alias.name] = kind
    return bound


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _translated(node: ast.expr, translators: dict[str, str], kind: str) -> bool:
    return isinstance(node, ast.Call) and translators.get(_name(node.func) or "") == kind


@pytest.fixture(scope="module")
def sources() -> list[tuple[Path, ast.Module]]:
    return _sources()


def test_the_scan_sees_the_services_and_their_errors(sources):
    """The scans below would pass on nothing: they see the code and its error classes."""
    paths = {str(path.relative_to(ROOT)) for path, _ in sources}
    assert {"catalog/services.py", "orders/services.py", "sync/push.py", "okada/core/services.py"} <= paths
    assert {"SkuTaken", "InvalidTransition", "VersionConflict", "TryAgain", "InvalidInput"} <= _error_classes(
        sources
    )


def test_no_domain_error_is_raised_with_a_sentence_translated_already(sources):
    errors = _error_classes(sources)
    found = []
    for path, tree in sources:
        translators = _translators(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) in errors):
                continue
            messages = node.args[:1] + [k.value for k in node.keywords if k.arg == "message"]
            for message in messages:
                formatted = isinstance(message, ast.BinOp) and isinstance(message.op, ast.Mod)
                if formatted or _translated(message, translators, "eager"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(message)[:80]}")
    assert not found, "raise with Text(gettext_noop(...), **params) or gettext_lazy(...):\n" + "\n".join(
        found
    )


def test_no_lazy_translation_is_formatted_at_once(sources):
    """`gettext_lazy("... %(x)s") % {...}` is a string in the active language, not a msgid (an
    admin page may format one for itself: it shows it at once)."""
    found = []
    for path, tree in sources:
        if path.name == "admin.py":
            continue
        translators = _translators(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and _translated(node.left, translators, "lazy")
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, "use Text(gettext_noop(...), **params), or gettext when shown at once:\n" + "\n".join(
        found
    )


# --- What the errors keep ---------------------------------------------------------------------


def test_a_lazy_message_raised_in_french_keeps_its_msgid():
    with translation.override("fr"):
        error = NotFound(gettext_lazy("No such product."))
    assert error.message == "Produit introuvable."
    assert text_of(error) == Text("No such product.")
    with translation.override("en"):
        assert shown(text_of(error).stored) == "No such product."


def test_a_message_with_parameters_raised_in_french_keeps_its_msgid_and_parameters():
    text = Text(gettext_noop("This vendor already has a product with SKU %(sku)s."), sku="SAV-1")
    with translation.override("fr"):
        error = InvalidInput(text, field="sku")
    assert error.message == error.errors["sku"][0] == "Ce vendeur a déjà un produit de référence SAV-1."
    with translation.override("en"):
        assert shown(text_of(error).stored) == "This vendor already has a product with SKU SAV-1."


def test_a_translated_word_in_a_sentence_is_shown_in_the_readers_language_capitalised_when_it_opens_it():
    stored = Text(
        gettext_noop("%(what)s does not exist or was deleted."), what=Text.of(Product._meta.verbose_name)
    ).stored
    with translation.override("en"):
        assert shown(stored) == "Product does not exist or was deleted."
    with translation.override("fr"):
        assert shown(stored) == "Produit\u00a0: n\u2019existe pas ou a été supprimé."


def test_a_layout_of_texts_is_not_capitalised():
    with translation.override("en"):
        assert shown(joined([Text("pg_dump: error"), Text("x")]).stored) == "pg_dump: error; x"


@pytest.mark.django_db
def test_a_model_validation_refusal_keeps_django_s_msgid_and_parameters():
    """`validated` (full_clean) refuses with the validator's msgid and parameters."""
    product = Product(sku="SAV-1", name="Savon", price_xaf=500, unit="crate")
    with translation.override("fr"), pytest.raises(InvalidInput) as refused:
        validated(product, exclude=["vendor", "category"])
    assert refused.value.message == refused.value.errors["unit"][0]
    assert "'crate'" in refused.value.message and "choix valide" in refused.value.message
    stored = text_of(refused.value).stored
    with translation.override("en"):
        assert shown(stored) == "Value 'crate' is not a valid choice."
    with translation.override("fr"):
        assert shown(stored) == refused.value.message


@pytest.mark.django_db
def test_a_plural_validation_message_keeps_both_msgids_and_its_parameters():
    """ngettext's message (at most %(limit_value)d character/characters) is stored with its
    singular and plural msgids and read in the form its count takes in the reader's language."""
    with translation.override("fr"), pytest.raises(InvalidInput) as refused:
        validated(Product(sku="S" * 300, name="Savon", price_xaf=500), exclude=["vendor", "category"])
    assert "300" in refused.value.message and "caractères" in refused.value.message
    stored = text_of(refused.value).stored
    with translation.override("en"):
        assert shown(stored) == "Ensure this value has at most 64 characters (it has 300)."
    with translation.override("fr"):
        assert shown(stored) == refused.value.message


@pytest.mark.django_db
def test_a_unique_refusal_names_the_model_and_field_in_the_readers_language():
    # Django passes capfirst(verbose_name): its own words are "Snapshot", "Hour", which no
    # catalog translates; the reader must see "instantané" and "heure", not English inside French.
    from django.utils import timezone

    from okada.health.models import Snapshot

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    Snapshot.objects.create(hour=hour, database_bytes=1)
    with translation.override("en"), pytest.raises(InvalidInput) as refused:
        validated(Snapshot(hour=hour, database_bytes=1))
    stored = text_of(refused.value).stored
    with translation.override("en"):
        assert shown(stored).lower() == "snapshot with this hour already exists."
    with translation.override("fr"):
        french = shown(stored)
    assert "Snapshot" not in french and "Hour" not in french, french
    assert french.lower() == "un objet instantané avec ce champ heure existe déjà.", french
