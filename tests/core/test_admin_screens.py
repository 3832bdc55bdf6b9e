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


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_a_user_who_may_only_view_a_screen_is_offered_none_of_its_actions(rf, model):
    # Django runs any action get_actions() offers; one without `permissions=` is offered to
    # whoever sees the list. The services check again; the screens must not offer them either.
    from django.contrib.auth import get_permission_codename
    from django.contrib.auth.models import Permission

    from tests.catalog.factories import UserFactory

    opts = model._meta
    viewer = UserFactory(is_staff=True)
    # Screens without a view permission (superusers only) are checked with no permission at all.
    viewer.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label=opts.app_label,
            content_type__model=opts.model_name,
            codename=get_permission_codename("view", opts),
        )
    )
    request = rf.get(f"/admin/{opts.app_label}/{opts.model_name}/")
    request.user = viewer
    assert list(admin.site._registry[model].get_actions(request)) == []


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


def test_the_admin_offers_no_link_to_a_site_it_does_not_serve(client, admin_user):
    # unfold's "View site" (the account menu, and "Return to site" on the login page) points at
    # "/", which answers 404: Okada serves no site there.
    assert client.get("/").status_code == 404
    login = client.get("/admin/login/").content.decode()
    client.force_login(admin_user)
    index = client.get("/admin/").content.decode()
    assert 'href="/"' not in login
    assert 'href="/"' not in index


def test_the_admin_pages_name_their_icon_so_browsers_do_not_ask_for_a_missing_favicon(client, admin_user):
    # Without a declared icon every page load asked for /favicon.ico: a 404, logged by the server
    # and shown as an error in the browser's console.
    import re

    from django.contrib.staticfiles import finders

    for url in ("/admin/login/", "/admin/"):
        body = client.get(url).content.decode()
        icons = re.findall(r'<link rel="icon"[^>]*href="/static/([^"]+)"', body)
        assert icons and all(finders.find(icon) for icon in icons), url
        client.force_login(admin_user)
