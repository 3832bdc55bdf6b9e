"""Every admin page renders with production's static files storage (hashed names from a manifest).

Tests run with Django's plain StaticFilesStorage, which takes any path; production's
(whitenoise's CompressedManifestStaticFilesStorage, `make serve`) looks each one up in the
manifest `collectstatic` writes, and a lazy string among a form's media was a 500 there on every
screen with an autocomplete filter (products, stock, orders, customers...), which no test saw.
Here the static files are collected once with the manifest storage and every admin URL is read
by a superuser, as in the permission matrix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.admin_client import csrf_client
from tests.core.test_admin_permission_matrix import (  # noqa: F401 (fixtures)
    _root,
    _world,
    exports_dir,
    filled,
    model_urls,
    other_backend,
)

MANIFEST = {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: Any) -> Path:
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root, STORAGES={"staticfiles": MANIFEST}):
        call_command("collectstatic", "--noinput", verbosity=0)
    assert (root / "staticfiles.json").exists()
    return Path(root)


@pytest.mark.django_db
def test_every_admin_page_renders_with_the_manifest_of_production(
    collected,
    settings,
    other_backend,  # noqa: F811 (the matrix's fixture)
    exports_dir,  # noqa: F811
):
    settings.STATIC_ROOT = collected
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST}
    user = _root()
    world = _world(export_owner=user)
    client = csrf_client(user)
    read = 0
    for model, rows in world.items():
        for route in model_urls(model):
            for url in filled(model, route, rows, other_backend):
                response = client.get(url)
                assert response.status_code in (200, 302, 403, 404, 405), (url, response.status_code)
                read += response.status_code == 200
    assert read > 50  # the screens themselves, not only redirects
    page = client.get("/admin/catalog/product/").content.decode()
    # The filter's select2 translations, by their hashed name (the page's language: French).
    assert "/admin/js/vendor/select2/i18n/fr." in page and "/select2/i18n/fr.js" not in page
    # One select2 build and one select2 stylesheet, by their hashed names.
    assert len(re.findall(r'<script src="/static/admin/js/vendor/select2/select2\.full\.', page)) == 1
    assert len(re.findall(r'href="/static/admin/css/vendor/select2/select2\.min\.[0-9a-f]+\.css"', page)) == 1
    assert "/select2/select2.full.min.js" not in page
