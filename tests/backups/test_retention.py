"""Retention: which backups the policy keeps, on generated histories and on a year of nights."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from backups.retention import Policy, to_keep

DOUALA = ZoneInfo("Africa/Douala")


def expected_kept(taken_at: dict[int, datetime], policy: Policy) -> set[int]:
    """The policy read literally: group the backups by local day, ISO week and month; for the N
    newest groups of each kind, keep the group's newest backup."""
    rules = [
        (policy.daily, lambda t: t.date()),
        (policy.weekly, lambda t: t.isocalendar()[:2]),
        (policy.monthly, lambda t: (t.year, t.month)),
    ]
    kept: set[int] = set()
    for count, period_of in rules:
        groups: dict[Any, list[int]] = defaultdict(list)
        for key, at in taken_at.items():
            groups[period_of(at.astimezone(DOUALA))].append(key)
        for period in sorted(groups, reverse=True)[:count]:
            kept.add(max(groups[period], key=lambda k: taken_at[k]))
    return kept


moments = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
policies = st.builds(Policy, daily=st.integers(0, 40), weekly=st.integers(0, 15), monthly=st.integers(0, 14))


@settings(max_examples=300, deadline=None)
@given(times=st.lists(moments, unique=True, max_size=120), policy=policies)
def test_retention_keeps_exactly_the_newest_backup_of_each_of_the_newest_periods(times, policy):
    taken_at = dict(enumerate(times))
    assert to_keep(taken_at, policy, DOUALA) == expected_kept(taken_at, policy)


@settings(max_examples=100, deadline=None)
@given(
    start=moments,
    gaps=st.lists(st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=9)), max_size=80),
)
def test_one_day_of_daily_retention_keeps_only_the_newest_backup(start, gaps):
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    kept = to_keep(dict(enumerate(times)), Policy(daily=1, weekly=0, monthly=0), DOUALA)
    assert kept == {len(times) - 1}


def test_a_year_of_nightly_backups_keeps_30_days_13_weeks_and_12_months():
    last = date(2026, 12, 1)  # a Tuesday
    nights = {
        last - timedelta(days=n): datetime.combine(last - timedelta(days=n), datetime.min.time())
        for n in range(400)
    }
    taken_at = {day: at.replace(hour=2, tzinfo=DOUALA) for day, at in nights.items()}

    kept = to_keep(taken_at, Policy(daily=30, weekly=13, monthly=12), DOUALA)

    daily = {last - timedelta(days=n) for n in range(30)}  # 2 November .. 1 December
    sundays = {
        date(2026, 11, 1),
        *(date(2026, 10, d) for d in (4, 11, 18, 25)),
        *(date(2026, 9, d) for d in (13, 20, 27)),
    }
    month_ends = {
        date(2026, 10, 31), date(2026, 9, 30), date(2026, 8, 31), date(2026, 7, 31), date(2026, 6, 30),
        date(2026, 5, 31), date(2026, 4, 30), date(2026, 3, 31), date(2026, 2, 28), date(2026, 1, 31),
    }  # fmt: skip
    assert kept == daily | sundays | month_ends
    assert len(kept) == 48


def test_days_are_local_days_in_douala():
    # 22:30 and 23:30 UTC on 30 November are 23:30 on the 30th and 00:30 on 1 December in Douala.
    taken_at = {
        "evening": datetime(2026, 11, 30, 22, 30, tzinfo=UTC),
        "after_midnight": datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
    }
    assert to_keep(taken_at, Policy(daily=2, weekly=0, monthly=0), DOUALA) == {"evening", "after_midnight"}
    assert to_keep(taken_at, Policy(daily=2, weekly=0, monthly=0), ZoneInfo("UTC")) == {"after_midnight"}
