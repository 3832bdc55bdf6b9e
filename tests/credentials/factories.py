"""API credentials for tests, issued by the services, and a JSON client that sends them."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from catalog.models import Vendor
from okada.core.actors import Actor
from okada.credentials.services import api_key_issue

OPERATOR = Actor(role=Actor.STAFF, label="tests")


class Api:
    """`Api(secret).get("/products")`: requests to /api/v1 with the bearer credential, JSON bodies."""

    def __init__(self, secret: str | None = None, client: Client | None = None, **headers: str) -> None:
        self.client = client or Client(HTTP_HOST="localhost")
        self.headers = dict(headers)
        if secret:
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"

    def url(self, path: str) -> str:
        return path if path.startswith("/api/") else f"/api/v1{path}"

    def request(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        extra: dict[str, Any] = {**self.headers, **headers}
        return self.client.generic(
            method, self.url(path), data=data or "", content_type="application/json", **extra
        )

    def get(self, path: str, **headers: str) -> Any:
        return self.request("GET", path, **headers)

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.request("POST", path, body, **headers)

    def patch(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.request("PATCH", path, body, **headers)

    def put(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.request("PUT", path, body, **headers)

    def delete(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.request("DELETE", path, body, **headers)


def vendor_key(vendor: Vendor, *, scopes: list[str] | None = None, name: str = "integration") -> str:
    """A new vendor API key's secret."""
    return api_key_issue(name=name, vendor=vendor, scopes=scopes, actor=OPERATOR).secret


def storefront_key(*, scopes: list[str] | None = None, name: str = "web") -> str:
    return api_key_issue(name=name, scopes=scopes, actor=OPERATOR).secret


def vendor_api(vendor: Vendor, **kwargs: Any) -> Api:
    return Api(vendor_key(vendor, **kwargs))


def storefront_api(**kwargs: Any) -> Api:
    return Api(storefront_key(**kwargs))


def problem(response: Any) -> dict[str, Any]:
    """The problem+json body of an error answer (and a check that it is one)."""
    assert response["Content-Type"] == "application/problem+json", response.content
    body: dict[str, Any] = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "errors"}, body
    assert body["status"] == response.status_code
    return body
