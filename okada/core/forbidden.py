"""The 400, 403, 404 and 405 pages of the admin and of every page outside the API
(templates/400.html, 403.html, 404.html, 405.html; 500.html needs no context and is Django's own
view's).

A refusal that says why (`PermissionDenied("...")`, the message of a service's NotAllowed, or
the reach of an account: okada.core.admin.UserAdmin) shows that sentence; a bare
`PermissionDenied` shows a generic one. Under the admin the page is an admin page (unfold's
layout, the admin's context built here); elsewhere a plain page. A refused CSRF check shows it
too, saying what to do (okada.core.api.problems.csrf_failure). The API answers its 403s as
problem+json (okada.core.api.problems.handler403), never with this page.
"""

from __future__ import annotations

from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
)
from django.template import loader
from django.urls import reverse
from django.utils.translation import gettext


def under_admin(request: HttpRequest) -> bool:
    return request.path.startswith(reverse("admin:index"))


def admin_context(request: HttpRequest) -> dict[str, Any]:
    """What the page needs to look like the admin: its layout (admin/base_site.html, whose header
    and sidebar are a staff user's, or else the login page's) and context. Nothing outside the
    admin, or when the refusal came before the request had a user (a middleware's): the plain page."""
    if not under_admin(request) or not hasattr(request, "user"):
        return {}
    from django.contrib import admin

    staff = admin.site.has_permission(request)
    return {
        **admin.site.each_context(request),
        "base_template": "admin/base_site.html" if staff else "unfold/layouts/unauthenticated.html",
        "back": reverse("admin:index"),
    }


def forbidden_page(request: HttpRequest, message: str = "", **extra: Any) -> HttpResponse:
    """403.html: `message` (or the generic sentence), `extra` (`title`, `back`, `back_label`; a
    refused CSRF check's `form_again` and, with DEBUG on, `csrf_reason`)."""
    context = {**admin_context(request), "title": gettext("Access refused"), "exception": message, **extra}
    return HttpResponseForbidden(loader.render_to_string("403.html", context, request))


def not_found_page(request: HttpRequest) -> HttpResponse:
    """404.html: under the admin an admin page saying what to do, with a way back (a stale link,
    the button of a row deleted since its page was shown); elsewhere a plain page. Django's own
    was a bare English sentence."""
    context = {**admin_context(request), "title": gettext("Page not found")}
    return HttpResponseNotFound(loader.render_to_string("404.html", context, request))


def bad_request_page(request: HttpRequest) -> HttpResponse:
    """400.html: a request refused as unreadable (a list filter the admin does not allow, too many
    fields): under the admin an admin page saying what to do; elsewhere a plain page."""
    # The language switch leads back to the list without the refused query string (a filter on
    # a key's hash, say): the page never repeats what it refused.
    context = {
        **admin_context(request),
        "title": gettext("Request not understood"),
        "language_next": request.path,
    }
    return HttpResponseBadRequest(loader.render_to_string("400.html", context, request))


def post_only_page(request: HttpRequest, back: str) -> HttpResponse:
    """405.html: a button's address (a POST-only view) opened as a link does nothing, and says so,
    with a way back to the page of the button (`back`)."""
    context = {**admin_context(request), "title": gettext("Nothing was done"), "back": back}
    return HttpResponseNotAllowed(["POST"], content=loader.render_to_string("405.html", context, request))
