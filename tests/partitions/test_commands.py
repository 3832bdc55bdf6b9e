"""`manage.py maintain_partitions`: the dry run prints the plan and changes nothing; a real run
does the work through job() and says what it did."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from okada.core.jobs import advisory_lock
from okada.core.models import JobRun
from okada.partitions import ddl
from okada.partitions import services as partition_services
from okada.partitions.models import PartitionAction
from orders.models import OrderEvent
from tests.concurrency import database_url
from tests.core.test_commands import ROOT
from tests.orders.factories import OrderFactory
from tests.partitions.conftest import at, partition_names

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("maintain_partitions", *args, stdout=out)
    return out.getvalue()


def test_dry_run_prints_each_step_and_changes_nothing(scratch_table):
    table = scratch_table(premake_months=1)
    this_month = ddl.utc_month_of(partition_services.clock())
    expected = [
        ddl.partition_name(table, this_month),
        ddl.partition_name(table, ddl.add_months(this_month, 1)),
    ]

    out = run("--dry-run")

    for name in expected:
        assert name in out
    assert partition_names(table) == {f"{table}_default"}
    assert not PartitionAction.objects.exists() and not JobRun.objects.exists()


def test_dry_run_says_when_there_is_nothing_to_do():
    assert "nothing to do" in run("--dry-run")


def test_a_run_by_hand_does_the_plan_and_prints_it(scratch_table):
    table = scratch_table(premake_months=1)
    out = run()
    this_month = ddl.utc_month_of(partition_services.clock())
    assert f"done: created {ddl.partition_name(table, this_month)}" in out
    assert len(partition_names(table)) == 3
    assert JobRun.objects.get(name="partitions.maintain_partitions").outcome == JobRun.Outcome.SUCCESS
    assert "Nothing to do." in run()


def test_a_run_by_hand_while_another_runs_is_refused():
    with advisory_lock("partitions.maintain_partitions") as lock:  # held by this live process
        assert lock.try_acquire()
        with pytest.raises(CommandError, match="in progress"):
            run()


# --- One language: English, whatever LANGUAGE_CODE (French) says -------------------------------


def test_the_dry_run_prints_english_when_run_as_operators_run_it(real_partitions_restored):
    # manage.py activates no language: Django would translate into LANGUAGE_CODE ("fr").
    OrderEvent.objects.create(order=OrderFactory(), kind="note", created_at=at(2090, 5, 2), data={})
    result = subprocess.run(
        [sys.executable, "manage.py", "maintain_partitions", "--dry-run"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "okada.settings.test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"Partition maintenance plan at \d{4}-\d\d-\d\d \d\d:\d\d UTC:", lines[0])
    assert (
        "  orders_orderevent: create orders_orderevent_p209005 and move 1 row out of DEFAULT into it"
        "  [2090-05-01 .. 2090-06-01)"
    ) in lines


@pytest.fixture
def default_language():
    """As under manage.py (and cron): no language active, so LANGUAGE_CODE, French."""
    translation.deactivate()  # the English of the autouse fixture comes back after the test
    assert translation.get_language() == "fr"


def test_every_line_of_a_run_is_english_in_a_french_installation(scratch_table, default_language):
    table = scratch_table(with_default=False, premake_months=0)
    name = ddl.partition_name(table, ddl.utc_month_of(partition_services.clock()))

    assert run("--dry-run").splitlines()[1:] == [
        f"  {table}: create {name} ahead  [{name[-6:-2]}-{name[-2:]}-01 .. {next_month(name)})",
        f"  warning: {table} has no DEFAULT partition: an insert for a month without partition would fail.",
    ]
    assert run().splitlines() == [
        f"done: created {name}",
        f"warning: {table} has no DEFAULT partition: an insert for a month without partition would fail.",
    ]
    assert run().splitlines() == [
        f"warning: {table} has no DEFAULT partition: an insert for a month without partition would fail.",
        "Nothing to do.",
    ]
    with advisory_lock("partitions.maintain_partitions") as lock:
        assert lock.try_acquire()
        with pytest.raises(CommandError) as refused:
            run()
    assert str(refused.value) == "Another maintenance run is in progress: nothing done."
    assert translation.get_language() == "fr"  # the command put the language back


def next_month(name: str) -> str:
    month = ddl.add_months(dt.date(int(name[-6:-2]), int(name[-2:]), 1), 1)
    return f"{month:%Y-%m-%d}"
