"""Which backups a retention policy keeps: a pure function of their times, tested on its own.

The rules are restic's `--keep-daily/--keep-weekly/--keep-monthly`: for the N newest days (ISO
weeks, months) that have at least one backup, keep the newest backup of each. The rules are
independent and their union is kept, so with 30/13/12 a backup made nightly is kept for 30 days,
then one a week for about three months, then one a month for a year. Periods are local days
(TIME_ZONE, Africa/Douala): "Tuesday's backup" is the one staff call Tuesday's.

Pre-migration backups (`make migrate` takes one before migrating) have a rule of their own: the N
newest of them are kept whatever the other rules say. They are what an operator restores when a
migration goes wrong, and the rules above would drop one as soon as a nightly or manual backup
follows it the same day (it is then no longer the newest of its day).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Policy:
    daily: int
    weekly: int
    monthly: int
    pre_migration: int = 0  # the N newest pre-migration backups, kept in addition

    @classmethod
    def from_settings(cls) -> Policy:
        from django.conf import settings

        return cls(
            daily=settings.OKADA_BACKUP_KEEP_DAILY,
            weekly=settings.OKADA_BACKUP_KEEP_WEEKLY,
            monthly=settings.OKADA_BACKUP_KEEP_MONTHLY,
            pre_migration=settings.OKADA_BACKUP_KEEP_PRE_MIGRATION,
        )


def _day(at: datetime) -> tuple[int, ...]:
    return (at.year, at.month, at.day)


def _week(at: datetime) -> tuple[int, ...]:
    iso = at.isocalendar()
    return (iso.year, iso.week)


def _month(at: datetime) -> tuple[int, ...]:
    return (at.year, at.month)


def to_keep(
    taken_at: Mapping[K, datetime], policy: Policy, tz: tzinfo, *, pre_migration: Collection[K] = ()
) -> set[K]:
    """The keys of `taken_at` ({key: when the backup was taken}) that `policy` keeps.

    `pre_migration` names the keys that are pre-migration backups: they count for the daily,
    weekly and monthly rules like any other, and the `policy.pre_migration` newest of them are
    kept besides.
    """
    newest_first = sorted(taken_at.items(), key=lambda item: item[1], reverse=True)
    rules: list[tuple[int, Callable[[datetime], tuple[int, ...]]]] = [
        (policy.daily, _day),
        (policy.weekly, _week),
        (policy.monthly, _month),
    ]
    keep: set[K] = set()
    for count, period_of in rules:
        periods: set[tuple[int, ...]] = set()
        for key, at in newest_first:
            if len(periods) >= count:
                break
            period = period_of(at.astimezone(tz))
            if period not in periods:  # the first seen is the newest of its period
                periods.add(period)
                keep.add(key)
    before_migrations = [key for key, _at in newest_first if key in pre_migration]
    keep.update(before_migrations[: max(policy.pre_migration, 0)])
    return keep
