"""The API's conventions for times: Python's and PostgreSQL's texts of one instant are the same."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from okada.core.api.serializers import utc, utc_sql
from okada.core.models import JobRun

pytestmark = pytest.mark.django_db

INSTANTS = [
    dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC),  # no microseconds: still six digits
    dt.datetime(2026, 11, 22, 9, 30, 0, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=ZoneInfo("Africa/Douala")),  # the day before, in UTC
    dt.datetime(2026, 3, 8, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/St_Johns")),  # a half-hour offset
    dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # a year of three digits
]


@pytest.mark.parametrize("session_zone", ["UTC", "Africa/Douala", "America/St_Johns", "Asia/Kathmandu"])
def test_postgresql_writes_a_time_exactly_as_python_does_whatever_the_session_zone(session_zone):
    runs = [JobRun.objects.create(name=f"probe {i}", started_at=at) for i, at in enumerate(INSTANTS)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [session_zone])

    texts = dict(JobRun.objects.annotate(text=utc_sql("started_at")).values_list("pk", "text"))

    assert [texts[run.pk] for run in runs] == [utc(instant) for instant in INSTANTS]
    assert utc(INSTANTS[0]) == "2026-11-22T09:30:00.000000Z"
    assert utc(INSTANTS[2]) == "2025-12-31T23:00:00.000007Z"
    assert utc(INSTANTS[4]) == "0999-12-31T23:59:59.000000Z"


def test_no_time_is_none_in_python():
    assert utc(None) is None
