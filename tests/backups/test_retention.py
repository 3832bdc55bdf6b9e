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


def expected_kept(
    taken_at: dict[int, datetime], policy: Policy, pre_migration: frozenset[int] = frozenset()
) -> set[int]:
    """The policy read literally: group the backups by local day, ISO week and month; for the N
    newest groups of each kind, keep the group's newest backup; and keep the N newest
    pre-migration backups."""
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
    kept.update(sorted(pre_migration, key=lambda k: taken_at[k], reverse=True)[: policy.pre_migration])
    return kept


moments = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
policies = st.builds(
    Policy,
    daily=st.integers(0, 40),
    weekly=st.integers(0, 15),
    monthly=st.integers(0, 14),
    pre_migration=st.integers(0, 6),
)


@settings(max_examples=300, deadline=None)
@given(times=st.lists(moments, unique=True, max_size=120), policy=policies)
def test_retention_keeps_exactly_the_newest_backup_of_each_of_the_newest_periods(times, policy):
    taken_at = dict(enumerate(times))
    assert to_keep(taken_at, policy, DOUALA) == expected_kept(taken_at, policy)


@settings(max_examples=300, deadline=None)
@given(
    backups=st.lists(st.tuples(moments, st.booleans()), unique_by=lambda b: b[0], max_size=120),
    policy=policies,
)
def test_retention_also_keeps_the_newest_pre_migration_backups(backups, policy):
    taken_at = {key: at for key, (at, _) in enumerate(backups)}
    pre_migration = frozenset(key for key, (_, before_migrating) in enumerate(backups) if before_migrating)
    assert to_keep(taken_at, policy, DOUALA, pre_migration=pre_migration) == expected_kept(
        taken_at, policy, pre_migration
    )


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


def test_a_pre_migration_backup_outlives_a_later_backup_the_same_day():
    # Migrated at 10:00 (backup first), then a manual backup at 14:00 and the nightly at 02:00:
    # the pre-migration backup is no longer the newest of its day, and is still the one to restore.
    taken_at = {
        "pre_migration": datetime(2026, 12, 1, 10, 0, tzinfo=DOUALA),
        "manual": datetime(2026, 12, 1, 14, 0, tzinfo=DOUALA),
        "nightly": datetime(2026, 12, 2, 2, 0, tzinfo=DOUALA),
    }
    policy = Policy(daily=30, weekly=13, monthly=12, pre_migration=3)

    assert to_keep(taken_at, policy, DOUALA, pre_migration={"pre_migration"}) == set(taken_at)
    # Without its rule (not named as such, or OKADA_BACKUP_KEEP_PRE_MIGRATION=0) the daily rule drops it.
    assert to_keep(taken_at, policy, DOUALA) == {"manual", "nightly"}
    no_rule = Policy(daily=30, weekly=13, monthly=12, pre_migration=0)
    assert to_keep(taken_at, no_rule, DOUALA, pre_migration={"pre_migration"}) == {"manual", "nightly"}


def test_only_the_n_newest_pre_migration_backups_are_kept_by_their_rule():
    # Four migrations at 10:00 on four days, each followed by a manual backup at 16:00.
    days = [date(2026, 11, d) for d in (3, 10, 17, 24)]
    taken_at = {}
    for day in days:
        taken_at[f"pre {day}"] = datetime.combine(day, datetime.min.time(), DOUALA).replace(hour=10)
        taken_at[f"manual {day}"] = taken_at[f"pre {day}"] + timedelta(hours=6)
    pre_migration = {key for key in taken_at if key.startswith("pre")}

    kept = to_keep(
        taken_at, Policy(daily=2, weekly=0, monthly=0, pre_migration=3), DOUALA, pre_migration=pre_migration
    )

    assert kept == {
        "manual 2026-11-24",
        "manual 2026-11-17",
        "pre 2026-11-24",
        "pre 2026-11-17",
        "pre 2026-11-10",
    }


def test_a_pre_migration_backup_counts_as_the_backup_of_its_day():
    # The newest of its day, it is the day's backup for the daily rule, even with no rule of its own
    # (the nightly taken before it that day is covered by it and may go).
    taken_at = {
        "nightly": datetime(2026, 12, 1, 2, 0, tzinfo=DOUALA),
        "pre_migration": datetime(2026, 12, 1, 10, 0, tzinfo=DOUALA),
    }
    kept = to_keep(
        taken_at,
        Policy(daily=1, weekly=0, monthly=0, pre_migration=0),
        DOUALA,
        pre_migration={"pre_migration"},
    )
    assert kept == {"pre_migration"}
