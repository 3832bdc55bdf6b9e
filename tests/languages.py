"""Admin pages read in one language or the other, as staff choose it (the language cookie)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def admin_page(client: Any, url: str, language: str) -> str:
    """The page at `url` as the logged-in user reads it in `language` ("fr" or "en")."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    html = response.content.decode()
    assert f'<html lang="{language}"' in html, url
    return html


def reads_in_its_language(client: Any, url: str, french: str, english: str) -> None:
    """The French page shows `french` and not `english`; the English page the other way round."""
    fr = admin_page(client, url, "fr")
    assert french in fr and english not in fr, (url, "fr")
    en = admin_page(client, url, "en")
    assert english in en and french not in en, (url, "en")
