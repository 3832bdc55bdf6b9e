"""Shared reads: counts capped for dashboard badges."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from okada.core.models import JobRun
from okada.core.querysets import count_up_to

pytestmark = pytest.mark.django_db


def test_a_capped_count_is_exact_up_to_the_cap_and_cap_plus_one_beyond():
    for i in range(5):
        JobRun.objects.create(name=f"probe {i}")

    assert count_up_to(JobRun.objects.all(), 10) == 5
    assert count_up_to(JobRun.objects.all(), 5) == 5
    assert count_up_to(JobRun.objects.all(), 3) == 4  # shown as "3+"
    assert count_up_to(JobRun.objects.filter(name="probe 1"), 3) == 1


def test_a_capped_count_stops_reading_after_the_cap_and_sorts_nothing():
    with CaptureQueriesContext(connection) as queries:
        count_up_to(JobRun.objects.order_by("-started_at"), 3)

    (query,) = queries.captured_queries
    assert "LIMIT 4" in query["sql"] and "ORDER BY" not in query["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query["sql"])
        plan = [row[0] for row in cursor.fetchall()]
    assert "Aggregate" in plan[0] and "Limit" in plan[1], plan  # the LIMIT under the count
