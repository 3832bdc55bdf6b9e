"""Language: the admin is French unless the user chose English (one click, kept in a cookie).

Django's LocaleMiddleware would follow the browser's Accept-Language, so a laptop set up in
English would open the admin in English. For the admin only the explicit choice counts; other
paths (the API answers in the request's language) keep Django's behaviour.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if not request.path.startswith("/admin/"):
            return super().process_request(request)
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        return None
