"""A failed partition step reads in the viewer's language in the action log and the job run,
whether the hourly task (French) or `manage.py maintain_partitions` (English) ran it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import translation

from okada.core.models import JobRun
from okada.partitions import ddl
from okada.partitions import services as partition_services
from okada.partitions.models import PartitionAction
from okada.partitions.services import MaintenanceFailed
from okada.partitions.tasks import maintain_partitions
from tests.languages import reads_in_its_language

pytestmark = pytest.mark.django_db(transaction=True)

SQUATTED = ("existe mais n\u2019est pas la partition", "exists but is not the")


@pytest.mark.parametrize("writer", ["worker", "command"])
def test_a_failed_step_reads_in_the_viewers_language_whoever_ran_it(
    writer, scratch_table, client, admin_user
):
    table = scratch_table(premake_months=0)
    this_month = ddl.utc_month_of(partition_services.clock())
    with connection.cursor() as cursor:  # a table squatting the name of this month's partition
        cursor.execute(f"CREATE TABLE {ddl.partition_name(table, this_month)} (x int)")
    if writer == "worker":
        with translation.override("fr"), pytest.raises(MaintenanceFailed):
            maintain_partitions()
    else:
        with pytest.raises(CommandError):
            call_command("maintain_partitions", stdout=StringIO())
    failed = PartitionAction.objects.get(table=table)
    run = JobRun.objects.get(name="partitions.maintain_partitions")

    client.force_login(admin_user)
    for url in (
        f"/admin/partitions/partitionaction/{failed.pk}/change/",
        f"/admin/partitions/partitionedtable/{table}/change/",  # the table's action log
        f"/admin/core/jobrun/{run.pk}/change/",  # its error and its summary
    ):
        reads_in_its_language(client, url, *SQUATTED)
