"""Primary keys are UUID v7: made by the models in Python and by okada_uuid7() in SQL."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection

from okada.core.ids import uuid7, uuid7_int
from tests.ids import uuid7_time
from tests.testapp.models import Book, Shelf

pytestmark = pytest.mark.django_db

MS = dt.timedelta(milliseconds=1)


def now_ms_floor() -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, tz=dt.UTC)


def test_new_rows_get_uuid7_ids_of_the_millisecond_they_were_made():
    before = now_ms_floor()
    shelf = Shelf.objects.create(code="A1")
    book = Book.objects.create(shelf=shelf, title="Mongo Beti")
    after = now_ms_floor()

    for row in (shelf, book):
        assert before <= uuid7_time(row.pk) <= after
        row.refresh_from_db()
        assert before <= row.created_at < after + MS


def test_ids_sort_by_the_millisecond_they_were_made_in():
    made = [Shelf.objects.create(code=f"S{n}").pk for n in range(50)]
    in_database = list(Shelf.objects.filter(pk__in=made).order_by("pk").values_list("pk", flat=True))
    times = [uuid7_time(pk) for pk in made]
    assert times == sorted(times)  # the clock never went back
    assert [uuid7_time(pk) for pk in in_database] == times


def test_ids_of_one_millisecond_differ_in_their_random_bits():
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert len({uuid7_time(i) for i in ids}) < 5000  # some shared a millisecond


def test_uuid7_int_lays_out_the_fields_of_rfc_9562():
    value = uuid7_int(0x0123_4567_89AB, (1 << 74) - 1)
    assert f"{value:032x}" == "0123456789ab7fffbfffffffffffffff"
    assert f"{uuid7_int(1, 0):032x}" == "00000000000170008000000000000000"


def test_okada_uuid7_in_sql_makes_distinct_v7_ids_of_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        (before,) = cursor.fetchone()
        cursor.execute("SELECT okada_uuid7() FROM generate_series(1, 1000)")
        made = [value for (value,) in cursor.fetchall()]
        cursor.execute("SELECT clock_timestamp()")
        (after,) = cursor.fetchone()
    assert len(set(made)) == 1000
    floor = before.replace(microsecond=before.microsecond // 1000 * 1000)
    assert all(floor <= uuid7_time(value) <= after for value in made)
