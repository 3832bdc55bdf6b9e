"""okada.core.api.auth: API keys kept by the web process, and revocation still taking effect at once."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.services import vendor_soft_delete
from okada.core.api import auth, ratelimit
from okada.credentials.models import ApiKey
from okada.credentials.services import api_key_issue, api_key_revoke, personal_token_issue
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import OPERATOR, Api, problem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_kept():
    auth.forget_credentials()
    ratelimit._breaker.until = 0.0
    yield
    auth.forget_credentials()
    ratelimit._breaker.until = 0.0


def _queries(api: Api, path: str = "/zones") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        status = api.get(path).status_code
    return status, [q["sql"] for q in queries.captured_queries]


def test_a_kept_api_key_costs_no_query_and_the_rate_limit_counts_each_request_once():
    api = Api(api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR).secret)
    status, first = _queries(api)
    assert status == 200
    assert any("credentials_apikey" in sql for sql in first)
    status, second = _queries(api)
    assert status == 200
    assert not any("credentials_apikey" in sql for sql in second)
    remaining = [int(api.get("/zones")["RateLimit-Remaining"]) for _ in range(3)]
    assert remaining[0] - remaining[2] == 2


def test_revoking_a_kept_key_refuses_its_next_request():
    issued = api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR)
    api = Api(issued.secret)
    assert api.get("/zones").status_code == 200
    assert _queries(api)[0] == 200  # now served from what the process kept
    api_key_revoke(key=issued.key, actor=OPERATOR)
    refused = api.get("/zones")
    assert refused.status_code == 401
    assert problem(refused)["code"] == "not_authenticated"


@pytest.mark.django_db(transaction=True)
def test_a_revocation_committed_by_another_connection_reaches_a_process_that_kept_the_key():
    issued = api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR)
    api = Api(issued.secret)
    assert api.get("/zones").status_code == 200
    assert not any("credentials_apikey" in sql for sql in _queries(api)[1])  # kept

    def revoke_elsewhere() -> None:  # its own database connection, committed
        try:
            api_key_revoke(key=ApiKey.objects.get(pk=issued.key.pk), actor=OPERATOR)
        finally:
            connection.close()

    thread = threading.Thread(target=revoke_elsewhere)
    thread.start()
    thread.join(timeout=30)
    assert ApiKey.objects.get(pk=issued.key.pk).revoked_at is not None
    assert api.get("/zones").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_key_read_while_its_revocation_is_in_flight_is_refused_once_the_revocation_commits():
    # The request reads the key from the database before the revocation commits (still live to
    # it) and keeps it, under the generation the revocation's first bump set; only the bump made
    # after the commit tells the process that what it kept is stale.
    from tests.concurrency import race

    issued = api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR)
    api = Api(issued.secret)

    revoked, answered = race(
        lambda: api_key_revoke(key=ApiKey.objects.get(pk=issued.key.pk), actor=OPERATOR),
        lambda: api.get("/zones").status_code,
    )

    assert isinstance(revoked, ApiKey) and answered == 200, (revoked, answered)
    assert ApiKey.objects.get(pk=issued.key.pk).revoked_at is not None
    assert api.get("/zones").status_code == 401


def test_a_revoke_after_redis_lost_the_generation_still_reaches_a_kept_key():
    redis_client = ratelimit._client(settings.OKADA_API_RATELIMIT_REDIS_URL)
    issued = api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR)
    other = api_key_issue(name="other", vendor=VendorFactory(), actor=OPERATOR)
    redis_client.delete(auth.GENERATION)
    api_key_revoke(key=other.key, actor=OPERATOR)  # the generation after one change from scratch
    api = Api(issued.secret)
    assert api.get("/zones").status_code == 200
    assert api.get("/zones").status_code == 200  # kept under that generation
    redis_client.delete(auth.GENERATION)  # a flush or a failover loses it
    api_key_revoke(key=issued.key, actor=OPERATOR)  # again one change from scratch
    assert api.get("/zones").status_code == 401


def test_a_deleted_vendors_kept_key_is_refused():
    vendor = VendorFactory()
    api = Api(api_key_issue(name="erp", vendor=vendor, actor=OPERATOR).secret)
    assert api.get("/zones").status_code == 200
    assert api.get("/zones").status_code == 200
    vendor_soft_delete(vendor=vendor, actor=OPERATOR)
    assert api.get("/zones").status_code == 401


def test_a_vendor_deleted_for_good_takes_its_kept_key_with_it():
    from okada.core.actors import Actor
    from okada.core.services import tracked_hard_delete

    vendor = VendorFactory()  # onboarded, key issued, nothing sold yet: may be deleted for good
    api = Api(api_key_issue(name="erp", vendor=vendor, actor=OPERATOR).secret)
    assert api.get("/zones").status_code == 200
    assert api.get("/zones").status_code == 200  # kept
    tracked_hard_delete(obj=vendor, actor=Actor(role=Actor.SYSTEM, label="test"))
    assert not ApiKey.objects.exists()
    assert api.get("/zones").status_code == 401


def test_a_kept_key_stops_at_its_expiry():
    expires = timezone.now() + timedelta(seconds=2)
    api = Api(api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR, expires_at=expires).secret)
    assert api.get("/zones").status_code == 200
    assert api.get("/zones").status_code == 200  # kept
    deadline = time.monotonic() + 10
    answers = []  # (sent before the expiry, status, answered after it)
    while time.monotonic() < deadline:
        before = timezone.now() < expires
        status = api.get("/zones").status_code
        answers.append((before, status, timezone.now() >= expires))
        if status == 401:
            break
        time.sleep(0.1)  # a request every 100 ms until the refusal (bounded by the deadline)
    assert answers[-1][1:] == (401, True)
    assert all(before for before, status, _ in answers if status == 200)


def test_personal_tokens_are_read_on_every_request():
    vendor = VendorFactory()
    user = UserFactory(username="awa")
    user.set_password("s3cret-pass")
    user.save()
    membership = vendor.members.create(user=user, role="manager")
    api = Api(personal_token_issue(username="awa", password="s3cret-pass").secret)
    assert api.get("/zones").status_code == 200
    assert any("credentials_personaltoken" in sql for sql in _queries(api)[1])
    membership.delete()  # the admin may do this: nothing tells the processes
    assert api.get("/zones").status_code == 401


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_redis_nothing_kept_is_trusted():
    api = Api(api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR).secret)
    assert api.get("/zones").status_code == 200
    with override_settings(OKADA_API_RATELIMIT_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"):
        status, queries = _queries(api)
        assert status == 200
        assert any("credentials_apikey" in sql for sql in queries)  # read from the database
        status, queries = _queries(api)
        assert status == 200
        assert any("credentials_apikey" in sql for sql in queries)  # and not kept while Redis is away


@override_settings(OKADA_API_CREDENTIAL_CACHE_SECONDS=0)
def test_the_cache_can_be_turned_off():
    api = Api(api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR).secret)
    assert api.get("/zones").status_code == 200
    assert any("credentials_apikey" in sql for sql in _queries(api)[1])


def test_an_error_while_checking_a_credential_never_logs_the_secret(monkeypatch, capsys):
    """A 500 is logged with its traceback (JSON logs): never with the frames' local variables,
    which hold the bearer secret (and, on POST /auth/token, the password)."""
    import json
    import logging.config

    from okada.core import logs
    from okada.credentials import resolver

    secret = api_key_issue(name="erp", vendor=VendorFactory(), actor=OPERATOR).secret

    def broken(raw: str, prefix: str) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(resolver, "_api_key", broken)
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        response = Api(secret).get("/zones")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert response.status_code == 500
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [error] = [line for line in lines if line["event"] == "unhandled error in the API"]
    assert "database went away" in json.dumps(error["exception"])  # the traceback is still there
    assert not any(secret in json.dumps(line) for line in lines)
