"""`manage.py maintain_partitions`: the dry run prints the plan and changes nothing; a real run
does the work through job() and says what it did."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from okada.core.jobs import advisory_lock
from okada.core.models import JobRun
from okada.partitions import ddl
from okada.partitions.models import PartitionAction
from tests.partitions.conftest import partition_names

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("maintain_partitions", *args, stdout=out)
    return out.getvalue()


def test_dry_run_prints_each_step_and_changes_nothing(scratch_table):
    table = scratch_table(premake_months=1)
    this_month = ddl.utc_month_of(timezone.now())
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
    this_month = ddl.utc_month_of(timezone.now())
    assert f"done: created {ddl.partition_name(table, this_month)}" in out
    assert len(partition_names(table)) == 3
    assert JobRun.objects.get(name="partitions.maintain_partitions").outcome == JobRun.Outcome.SUCCESS
    assert "Nothing to do." in run()


def test_a_run_by_hand_while_another_runs_is_refused():
    with advisory_lock("partitions.maintain_partitions") as lock:  # held by this live process
        assert lock.try_acquire()
        with pytest.raises(CommandError, match="in progress"):
            run()
