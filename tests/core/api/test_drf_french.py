"""Django REST framework's own messages in French: DRF ships a compiled catalogue whose French
uses straight apostrophes and wrong agreement ("au moins 1 éléments"); ours
(locale/vendor/rest_framework) corrects it, and must keep up with every DRF upgrade."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest
import rest_framework
from django.conf import settings
from django.utils import translation

from catalog.models import Product
from tests.catalog.factories import VendorFactory
from tests.credentials.factories import problem, vendor_api

DRF_CATALOGUE = Path(rest_framework.__file__).parent / "locale" / "fr" / "LC_MESSAGES" / "django.mo"
OUR_COPY = Path(settings.BASE_DIR, "locale", "vendor", "rest_framework", "fr", "LC_MESSAGES", "django.mo")


def msgids(compiled: Path) -> set[str]:
    with compiled.open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    return {m for m in catalogue._catalog if isinstance(m, str) and m}  # type: ignore[attr-defined]


def test_every_drf_message_reads_in_french_with_french_typography():
    drf = msgids(DRF_CATALOGUE)
    assert len(drf) > 100  # the catalogue was read
    assert sorted(drf - msgids(OUR_COPY)) == []  # a DRF upgrade brought messages: copy them
    with translation.override("fr"):
        french = {m: translation.gettext(m) for m in drf}
    untranslated = [m for m, f in french.items() if f == m]
    straight = [f for f in french.values() if "'" in f or '"' in f]
    clumsy = [f for f in french.values() if "(s)" in f or "(une)" in f or "Attendait" in f]
    assert (untranslated, straight, clumsy) == ([], [], [])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "detail"),
    [
        ("fr", "items: Le nombre d\u2019éléments de ce champ doit être d\u2019au moins 1."),
        ("en", "items: The number of items in this field must be at least 1."),
    ],
)
def test_a_drf_refusal_reads_in_the_callers_language_with_correct_agreement(language, detail):
    api = vendor_api(VendorFactory())
    response = api.post("/products/bulk", {"items": []}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 400
    assert problem(response)["detail"] == detail
    assert not Product.objects.exists()
