"""Every admin screen renders, in French by default and in English on request."""

from __future__ import annotations

import pytest
from django.contrib import admin

pytestmark = pytest.mark.django_db


def registered_changelists() -> list[str]:
    return [f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry]


@pytest.mark.parametrize("url", registered_changelists())
def test_every_changelist_renders(client, admin_user, url):
    client.force_login(admin_user)
    response = client.get(url)
    assert response.status_code == 200, url


def test_every_admin_screen_is_built_on_unfold():
    # A stock ModelAdmin renders plain Django widgets inside unfold's pages (the API keys did).
    from unfold.admin import ModelAdmin

    stock = [m._meta.label for m, a in admin.site._registry.items() if not isinstance(a, ModelAdmin)]
    assert stock == []


def test_login_page_is_french_by_default_and_switches_to_english(client):
    french = client.get("/admin/login/")
    assert "Connexion" in french.content.decode()

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/admin/login/"})
    assert response.status_code == 302
    english = client.get("/admin/login/")
    body = english.content.decode()
    assert "Log in" in body
    assert '<html lang="en"' in body


def test_job_runs_are_read_only_in_admin(client, admin_user):
    from okada.core.models import JobRun

    run = JobRun.objects.create(name="test.job", outcome="success")
    client.force_login(admin_user)
    assert client.get("/admin/core/jobrun/add/").status_code == 403
    page = client.get(f"/admin/core/jobrun/{run.pk}/change/")
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()  # shown, not editable
