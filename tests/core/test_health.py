from __future__ import annotations

import logging

import psycopg
import pytest
from django.conf import settings

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


def unreachable_redis(settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://:s3cret-pw@127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }


def unreachable_database() -> None:
    """A real refused connection: PostgreSQL's message names the host, port and user."""
    db = settings.DATABASES["default"]
    psycopg.connect(
        host=db["HOST"], port=db["PORT"], user="okada_db_user", password="s3cret-pw", dbname="postgres"
    )


def test_readyz_fails_when_redis_is_really_unreachable(client, settings):
    unreachable_redis(settings)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_shows_anonymous_callers_no_host_port_user_or_error_text_and_logs_it(
    client, settings, monkeypatch, caplog
):
    unreachable_redis(settings)
    monkeypatch.setitem(health.CORE_CHECKS, "database", unreachable_database)
    with caplog.at_level(logging.WARNING, logger="okada.core.health"):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert set(body) == {"status", "checks"}
    for name in ("database", "redis"):
        assert body["checks"][name] == {
            "status": "fail",
            "ms": body["checks"][name]["ms"],
            "detail": "unavailable",
        }
    text = response.content.decode()
    for secret in ("127.0.0.1", ":1", "okada_db_user", "s3cret", "Error", "refused"):
        assert secret not in text
    # The detail went to the log instead, with the exception.
    logged = {r.getMessage(): r for r in caplog.records if r.name == "okada.core.health"}
    assert any("database" in m and "okada_db_user" in m for m in logged), logged
    assert any("redis" in m and "127.0.0.1:1" in m for m in logged), logged
    assert all(r.exc_info for r in logged.values())


def test_readyz_hides_the_detail_from_signed_in_users_who_are_not_staff(client, settings, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="vendor", password="pw"))
    unreachable_redis(settings)
    body = client.get("/readyz").json()
    assert body["checks"]["redis"]["detail"] == "unavailable"


def test_readyz_shows_staff_the_detail(client, monkeypatch, staff_user):
    client.force_login(staff_user)
    monkeypatch.setitem(health.CORE_CHECKS, "database", unreachable_database)
    body = client.get("/readyz").json()
    assert body["checks"]["database"]["status"] == "fail"
    assert 'for user "okada_db_user"' in body["checks"]["database"]["detail"]


def test_readyz_still_answers_staff_when_redis_is_down_but_without_the_detail(client, settings, staff_user):
    # Sessions are cached_db: with Redis down Django cannot load the session (it writes it back to
    # the cache), so the caller counts as anonymous rather than failing the probe with a 500.
    client.force_login(staff_user)
    unreachable_redis(settings)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["detail"] == "unavailable"


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_while_a_migration_is_not_applied(client, monkeypatch, staff_user):
    from django.core.management import call_command

    monkeypatch.setattr(health, "_migrations_done", False)
    call_command("migrate", "testapp", "zero", verbosity=0)
    try:
        response = client.get("/readyz")
        body = response.json()
        assert response.status_code == 503
        assert body["checks"]["migrations"] == {
            "status": "fail",
            "ms": body["checks"]["migrations"]["ms"],
            "detail": "unavailable",
        }
        client.force_login(staff_user)
        detail = client.get("/readyz").json()["checks"]["migrations"]["detail"]
        assert "testapp.0001_initial" in detail
    finally:
        call_command("migrate", "testapp", verbosity=0)
    assert client.get("/readyz").status_code == 200
