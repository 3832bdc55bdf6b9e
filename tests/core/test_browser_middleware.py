"""okada.core.middleware: /api/v1/ requests go around the browser's middleware (sessions, the
signed-in user, messages); the admin and the API's documentation pages still run it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.catalog.factories import UserFactory
from tests.credentials.factories import storefront_api

pytestmark = pytest.mark.django_db


def test_an_api_request_gets_no_session_nor_message_store_and_its_answer_is_unchanged():
    response = storefront_api().get("/zones")
    assert response.status_code == 200
    request = response.wsgi_request
    # Each store cost every API request its setting up (the message store two of them, with a
    # cookie signer); the API reads neither.
    assert not hasattr(request, "session")
    assert not hasattr(request, "_messages")
    # The user is the API's authentication's: a key names nobody.
    assert request.user is None
    # Nothing the browser's middleware would have added is missing: it added nothing here.
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_api_request_that_fails_its_authentication_is_answered_as_before():
    response = Client(HTTP_HOST="localhost").get("/api/v1/zones", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert not response.cookies
    assert not hasattr(response.wsgi_request, "session")


def test_the_admin_still_has_its_session_user_and_messages():
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 200
    request = response.wsgi_request
    assert request.session.session_key
    assert request.user == staff
    assert hasattr(request, "_messages")


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_the_api_documentation_pages_still_run_them(path):
    response = Client(HTTP_HOST="localhost").get(path)
    assert response.status_code == 200
    request = response.wsgi_request
    assert hasattr(request, "session")
    assert hasattr(request, "_messages")
