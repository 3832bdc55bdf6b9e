"""System checks on the partition settings."""

from __future__ import annotations

from django.utils import translation

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


def test_the_check_explains_in_english_whatever_language_is_active(settings):
    # manage.py runs the checks before its English-only handle(): the policy's note came out in
    # French inside an English sentence.
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"catalog_stockmovement": "12"}
    with translation.override("fr"):
        (error,) = partition_settings()
    assert "stock audit" in error.msg and "Conservé" not in error.msg


def test_a_retention_that_is_not_a_number_of_months_is_refused(settings):
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "two years"}
    assert ids(settings) == ["okada.partitions.E004"]
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "forever"}
    assert ids(settings) == []


def test_a_retention_below_one_month_is_refused_with_the_minimum(settings):
    # 0 kept the current month alone: every earlier month was archived and dropped at the next run.
    for value in ("0", "-3", 0):
        settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": value}
        (error,) = partition_settings()
        assert error.id == "okada.partitions.E005"
        assert "OKADA_PARTITION_RETENTION_MONTHS" in error.msg and "at least 1 month" in error.msg
    settings.OKADA_PARTITION_RETENTION_MONTHS = {"orders_orderevent": "1"}
    assert ids(settings) == []
