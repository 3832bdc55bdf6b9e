"""health migration 0007: rows written before query values were kept out lose them."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps

from okada.health.models import Alert, DatabaseAction, QueryText

pytestmark = pytest.mark.django_db

SCRUB = import_module("okada.health.migrations.0007_scrub_query_values").scrub
SECRET = "UPDATE auth_user SET password = 'pbkdf2_sha256$secret' WHERE id = 7"
HIDDEN = "UPDATE auth_user SET password = '…' WHERE id = 7"


def test_old_rows_lose_their_query_values_and_keep_the_rest():
    text = QueryText.objects.create(queryid=1, text="ALTER ROLE okada PASSWORD 'hunter2'")
    dollar = QueryText.objects.create(queryid=3, text="DO $$BEGIN PERFORM 'x'; END$$")
    clean = QueryText.objects.create(queryid=2, text="SELECT $1 FROM t WHERE a = $2")
    action = DatabaseAction.objects.create(
        kind="cancel", pid=7, target=f"okada / web / okada: {SECRET}", succeeded=True
    )
    message = f"Backend 7 has run one query for 12 minutes: {SECRET}"
    dollar_alert = Alert.objects.create(
        key="long_query:8@1",
        kind="long_query",
        severity="warning",
        message="Backend 8 has run one query for 11 minutes: SELECT $x$secret$x$",
        data={"message": "...", "params": {"pid": 8, "minutes": 11.0, "query": "SELECT $x$secret$x$"}},
    )
    alert = Alert.objects.create(
        key="long_query:7@1",
        kind="long_query",
        severity="warning",
        message=message,
        data={
            "message": "Backend %(pid)s ...: %(query)s",
            "params": {"pid": 7, "minutes": 12.0, "query": SECRET},
        },
    )
    other = Alert.objects.create(
        key="x:1", kind="lock_wait", severity="warning", message="it's 'quoted'", data={}
    )

    SCRUB(apps, None)

    text.refresh_from_db()
    assert text.text == "ALTER ROLE okada PASSWORD '…'"
    dollar.refresh_from_db()
    assert dollar.text == "DO '…'"
    clean.refresh_from_db()
    assert clean.text == "SELECT $1 FROM t WHERE a = $2"
    action.refresh_from_db()
    assert action.target == f"okada / web / okada: {HIDDEN}"
    alert.refresh_from_db()
    assert alert.data["params"] == {"pid": 7, "minutes": 12.0, "query": HIDDEN}
    assert alert.message == f"Backend 7 has run one query for 12 minutes: {HIDDEN}"
    dollar_alert.refresh_from_db()
    assert dollar_alert.data["params"]["query"] == "SELECT '…'"
    assert dollar_alert.message.endswith("minutes: SELECT '…'")
    other.refresh_from_db()
    assert other.message == "it's 'quoted'"  # not a query: left as written
