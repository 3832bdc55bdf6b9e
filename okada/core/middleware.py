"""The admin's middleware: its language, its refusal of NUL characters, and the browser-only
middleware that the REST API's requests skip.

Language: the admin is French unless the user chose English (one click, kept in a cookie).

Django's LocaleMiddleware would follow the browser's Accept-Language, so a laptop set up in
English would open the admin in English. For the admin only the explicit choice counts; other
paths (the API answers in the request's language) keep Django's behaviour, but for the languages
Accept-Language refuses (`q=0`, RFC 9110 12.4.2): Django ranks them last yet still picks one
when nothing else matches, so `en;q=0` ("anything but English") was answered in English.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation.trans_real import parse_accept_lang_header


def without_refused_languages(header: str) -> str:
    """An Accept-Language header without the languages it refuses (q=0), in its order of preference."""
    return ", ".join(f"{code};q={q}" for code, q in parse_accept_lang_header(header) if q > 0)


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if not request.path.startswith("/admin/"):
            header = request.META.get("HTTP_ACCEPT_LANGUAGE")
            if header and "q" in header.lower():  # only a weighted header may refuse one
                request.META["HTTP_ACCEPT_LANGUAGE"] = without_refused_languages(header)
            return super().process_request(request)
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        return None


def holds_nul(request: HttpRequest) -> bool:
    """Whether the request's path, query string or form fields hold a NUL character."""
    if "\x00" in request.path_info:
        return True
    fields = [*request.GET.lists()]
    if request.method == "POST":
        fields += request.POST.lists()
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in fields)


class AdminRefusesNul:
    """An admin request holding a NUL character (`%00` in its URL or a form field) is a 400.

    PostgreSQL's text columns cannot store NUL: a filter value, an id or a form field holding
    one would reach the database and fail there (a 500). Nobody types one; a tampered or
    mangled URL or a script sends it. Refused here, for every admin page and action, before any
    view reads it; nothing is done. (The API answers its own 400s.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/admin/") and holds_nul(request):
            return HttpResponseBadRequest(
                gettext(
                    "This request holds a NUL character (code zero) in its address or a field, "
                    "which the database cannot store: nothing was done."
                ),
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


# Every view under this prefix is an `ApiView` (okada.core.api.views): it authenticates the
# request itself (a bearer credential, or a signed body) and sets `request.user` then.
API_V1_PREFIX = "/api/v1/"


class _SkippedForApi:
    """A browser's middleware (a MiddlewareMixin) that /api/v1/ requests go around: there a
    session is never read nor written, no message is ever added or shown, and `request.user` is
    set by the API's own authentication. Running them cost every API request a session store, a
    message store (two, with their cookie signer) and a lazy user it never reads; their answers to
    such a request added nothing (no cookie, no header). /api/docs/ and /api/schema/ keep them."""

    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(API_V1_PREFIX):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class BrowserSessionMiddleware(_SkippedForApi, SessionMiddleware):
    pass


class BrowserAuthenticationMiddleware(_SkippedForApi, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_SkippedForApi, MessageMiddleware):
    pass
