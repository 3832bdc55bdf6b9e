"""System checks on the partition settings."""

from __future__ import annotations

from okada.partitions.checks import partition_settings


def ids(settings) -> list[str | None]:
    return [e.id for e in partition_settings()]


def test_the_default_settings_pass(settings):
    assert ids(settings) == []


def test_premake_below_one_month_is_refused(settings):
    settings.OKADA_PARTITION_PREMAKE_MONTHS = 0
    assert ids(settings) == ["okada.partitions.E001"]


def test_a_retention_for_an_unknown_table_is_refused(settings):
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_ordereventz": "12"}
    assert ids(settings) == ["okada.partitions.E002"]


def test_a_retention_for_the_stock_ledger_is_refused(settings):
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"catalog_stockmovement": "12"}
    errors = partition_settings()
    assert [e.id for e in errors] == ["okada.partitions.E003"]
    assert "stock audit" in errors[0].msg


def test_a_retention_that_is_not_a_number_of_months_is_refused(settings):
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "two years"}
    assert ids(settings) == ["okada.partitions.E004"]
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "forever"}
    assert ids(settings) == []
