"""A logged-in admin client that enforces CSRF as a browser meets it, and its POST: the tests of
permissions must not pass because a request was refused for its missing token."""

from __future__ import annotations

from typing import Any

from django.test import Client


def csrf_client(user: Any) -> Client:
    """A client logged in as `user` that enforces CSRF: the token comes from a page, as a browser's."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200  # sets the csrftoken cookie
    return client


def csrf_post(client: Client, url: str, data: dict[str, Any]) -> Any:
    """POST `data` with the client's CSRF token; a CSRF refusal would prove nothing: it fails."""
    response = client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert b"CSRF" not in response.content, url
    return response
