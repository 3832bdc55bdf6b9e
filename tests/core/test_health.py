from __future__ import annotations

import pytest

from okada.core import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_check(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {"database", "redis", "migrations"} <= set(body["checks"])
    assert all(c["status"] == "ok" for c in body["checks"].values())


def test_readyz_fails_with_detail_when_a_check_fails(client, monkeypatch):
    def broken() -> str:
        raise ConnectionError("redis unreachable")

    monkeypatch.setitem(health.CORE_CHECKS, "redis", broken)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["status"] == "fail"
    assert "redis unreachable" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_fails_when_redis_is_really_unreachable(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_while_a_migration_is_not_applied(client, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setattr(health, "_migrations_done", False)
    call_command("migrate", "testapp", "zero", verbosity=0)
    try:
        response = client.get("/readyz")
        body = response.json()
        assert response.status_code == 503
        assert body["checks"]["migrations"]["status"] == "fail"
        assert "testapp.0001_initial" in body["checks"]["migrations"]["detail"]
    finally:
        call_command("migrate", "testapp", verbosity=0)
    assert client.get("/readyz").status_code == 200
