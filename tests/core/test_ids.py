"""Primary keys are UUID v7: made by the models in Python and by okada_uuid7() in SQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from tests.ids import assert_made_at, uuid7_time
from tests.testapp.models import Book, Shelf

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)


def test_new_rows_get_uuid7_ids_carrying_their_creation_time():
    shelf = Shelf.objects.create(code="A1")
    book = Book.objects.create(shelf=shelf, title="Mongo Beti")

    for row in (shelf, book):
        row.refresh_from_db()
        assert_made_at(row.pk, row.created_at, within=SECOND)
    assert len({shelf.pk, book.pk}) == 2
    # The history row keeps the id of the row it records.
    assert book.history.get().id == book.pk


def test_ids_made_one_after_another_sort_in_that_order_in_the_database():
    # uuid6.uuid7() never goes back: within one millisecond it moves its timestamp on by one.
    made = [Shelf.objects.create(code=f"S{n}").pk for n in range(50)]
    assert list(Shelf.objects.filter(pk__in=made).order_by("pk").values_list("pk", flat=True)) == made


def test_okada_uuid7_in_sql_makes_distinct_v7_ids_of_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT okada_uuid7(), clock_timestamp() FROM generate_series(1, 1000)")
        made = cursor.fetchall()
    assert len({value for value, _ in made}) == 1000
    for value, at in made:
        assert_made_at(value, at, within=dt.timedelta(milliseconds=5))
    # A random part too: ids of the same millisecond differ past the timestamp.
    assert len({uuid7_time(value) for value, _ in made}) < 1000
