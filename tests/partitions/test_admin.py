"""Partition screens: tables with their partitions, archives and actions; the plan; "run
maintenance now" queued to a real Celery worker for those allowed, refused for the others."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from okada.celery import app
from okada.core.models import JobRun
from okada.partitions.models import PartitionAction
from tests.partitions.conftest import at

WAIT = 60  # seconds: a deadline, never a sleep


def change_url(table: str) -> str:
    return reverse("admin:partitions_partitionedtable_change", args=[quote(table)])


def plan_url(table: str) -> str:
    return reverse("admin:partitions_plan", args=[quote(table)])


RUN_URL = "/admin/partitions/partitionedtable/run/"


def broker() -> Any:
    """The Redis client of the test broker (the queue `celery` is a Redis list)."""
    import redis

    return redis.Redis.from_url(app.conf.broker_url)


def queued_tasks() -> int:
    return int(broker().llen("celery"))


@pytest.fixture
def empty_queue():
    broker().delete("celery")


@pytest.mark.django_db
def test_the_table_list_shows_each_partitioned_table_with_its_policy(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/partitions/partitionedtable/").content.decode()
    assert "catalog_stockmovement" in page and "orders_orderevent" in page
    assert "Stock movements" in page or "Mouvements de stock" in page


@pytest.mark.django_db
def test_a_tables_screen_shows_partitions_with_utc_bounds_rows_size_and_archives(client, admin_user):
    PartitionAction.objects.create(
        table="orders_orderevent",
        partition="orders_orderevent_p200103",
        kind=PartitionAction.Kind.ARCHIVED,
        outcome=PartitionAction.Outcome.SUCCESS,
        starts_at=at(2001, 3),
        ends_at=at(2001, 4),
        rows=3,
        archive_path="/srv/backups/partitions/orders_orderevent/orders_orderevent_p200103-x.dump",
        archive_sha256="ab" * 32,
        archive_bytes=2048,
    )
    client.force_login(admin_user)
    response = client.get(change_url("orders_orderevent"))
    assert response.status_code == 200
    page = response.content.decode()
    partitions = response.context["partitions"]
    assert any(p.is_default for p in partitions)
    month = next(p for p in partitions if p.month is not None)
    assert f"{month.starts_at:%Y-%m-%d} 00:00" in page  # UTC, not Douala's 01:00
    assert "orders_orderevent_default" in page
    assert "orders_orderevent_p200103-x.dump" in page and "ab" * 32 in page
    assert plan_url("orders_orderevent") in page
    assert RUN_URL in page  # a superuser may run it


@pytest.mark.django_db
def test_the_plan_screen_lists_the_steps_and_changes_nothing(client, admin_user, scratch_table_atomic):
    from okada.partitions import registry
    from okada.partitions.registry import PartitionPolicy

    registry.register(PartitionPolicy(table=scratch_table_atomic, premake_months=1))
    try:
        client.force_login(admin_user)
        response = client.get(plan_url(scratch_table_atomic))
    finally:
        registry.unregister(scratch_table_atomic)
    assert response.status_code == 200
    assert [s.action for s in response.context["steps"]] == ["create", "create"]
    assert f"{scratch_table_atomic}_p" in response.content.decode()
    assert not PartitionAction.objects.exists()


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_queue_a_run(client, staff_user, empty_queue):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_partitionedtable"))
    client.force_login(staff_user)
    assert client.get(change_url("orders_orderevent")).status_code == 200
    assert RUN_URL not in client.get(change_url("orders_orderevent")).content.decode()

    assert client.post(RUN_URL, {"table": "orders_orderevent"}).status_code == 403
    assert queued_tasks() == 0


@pytest.mark.django_db
def test_running_is_a_post(client, admin_user, empty_queue):
    client.force_login(admin_user)
    assert client.get(RUN_URL).status_code == 405
    assert queued_tasks() == 0


@pytest.mark.django_db
def test_staff_without_view_permission_do_not_see_the_screens(client, staff_user):
    client.force_login(staff_user)
    assert client.get(change_url("orders_orderevent")).status_code == 403
    assert client.get(plan_url("orders_orderevent")).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("page", [change_url, plan_url], ids=["table", "plan"])
@pytest.mark.parametrize("reader", ["superuser", "Operations"])
def test_a_post_to_a_tables_screen_or_plan_is_refused_and_queues_nothing(
    client, admin_user, staff_user, empty_queue, page, reader
):
    # Read-only screens: a POST was answered as a GET (200), as if a form had done something.
    if reader == "Operations":
        staff_user.groups.set(Group.objects.filter(name="Operations"))
    client.force_login(admin_user if reader == "superuser" else staff_user)
    url = page("orders_orderevent")
    assert client.get(url).status_code == 200
    assert client.post(url, {"table": "orders_orderevent"}).status_code == 403
    assert queued_tasks() == 0 and not PartitionAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_staff_with_the_permission_queue_a_run_that_a_worker_carries_out(client, staff_user, empty_queue):
    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_partitionedtable", "run_partition_maintenance"])
    )
    client.force_login(staff_user)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        response = client.post(RUN_URL, {"table": "orders_orderevent"})
        assert response.status_code == 302
        assert response["Location"] == change_url("orders_orderevent")
        deadline = time.monotonic() + WAIT
        while (
            not JobRun.objects.filter(name="partitions.maintain_partitions")
            .exclude(outcome="running")
            .exists()
        ):
            assert time.monotonic() < deadline, "the worker never ran the maintenance"
            time.sleep(0.1)  # polling with a deadline
    run = JobRun.objects.get(name="partitions.maintain_partitions")
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.summary is not None and run.summary["failed"] == []


@pytest.mark.django_db
def test_the_action_log_is_read_only(client, admin_user):
    action = PartitionAction.objects.create(
        table="orders_orderevent", partition="orders_orderevent_p200103", kind="created", outcome="success"
    )
    client.force_login(admin_user)
    assert client.get("/admin/partitions/partitionaction/add/").status_code == 403
    page = client.get(f"/admin/partitions/partitionaction/{action.pk}/change/").content.decode()
    assert 'name="partition"' not in page
