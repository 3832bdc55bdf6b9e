"""Partition policies: declared by the apps that own the tables, adjusted by settings."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from okada.partitions import registry
from okada.partitions.registry import PartitionPolicy


def test_each_partitioned_table_of_the_domains_has_its_policy():
    assert {"catalog_stockmovement", "orders_orderevent"} <= {p.table for p in registry.policies()}


def test_the_ledger_and_the_order_events_are_kept_forever_by_default():
    ledger = registry.policy_for("catalog_stockmovement")
    events = registry.policy_for("orders_orderevent")
    assert ledger is not None and events is not None
    assert ledger.keeps_forever and not ledger.retention_configurable
    assert events.keeps_forever and events.archive and events.retention_configurable
    assert ledger.premake_months == events.premake_months == 3


def test_settings_set_the_premake_and_a_retention_where_the_policy_allows(settings):
    settings.OKADA_PARTITION_PREMAKE_MONTHS = 6
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "24", "catalog_stockmovement": "12"}
    events = registry.policy_for("orders_orderevent")
    ledger = registry.policy_for("catalog_stockmovement")
    assert events is not None and (events.premake_months, events.retention_months) == (6, 24)
    assert ledger is not None and ledger.retention_months is None  # never from settings
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "forever"}
    assert registry.policy_for("orders_orderevent").keeps_forever  # type: ignore[union-attr]


def test_a_retention_below_one_month_is_never_applied(settings):
    # A process that runs no system check (a Celery worker) fails instead of retiring every month.
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "0"}
    with pytest.raises(ValueError):
        registry.policy_for("orders_orderevent")


def test_a_table_gets_one_policy():
    registry.register(PartitionPolicy(table="test_once", retention_months=2))
    try:
        registry.register(PartitionPolicy(table="test_once", retention_months=2))  # the same: fine
        with pytest.raises(ImproperlyConfigured):
            registry.register(PartitionPolicy(table="test_once", retention_months=3))
    finally:
        registry.unregister("test_once")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": "week"},
        {"premake_months": -1},
        {"retention_months": 1.5},
        {"retention_months": 0},  # would retire every month but the current one
        {"retention_months": 3, "retention_configurable": False},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(kwargs):
    with pytest.raises(ImproperlyConfigured):
        PartitionPolicy(table="test_bad", **kwargs)
