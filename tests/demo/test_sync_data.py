"""The offline-sync activity added to a seeded marketplace (okada.demo.sync_data, bench/kept.py):
rows the services could have written, every constraint and partition respected, and the admin's
sync screens reading them."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from itertools import pairwise

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from catalog.models import Vendor
from okada.core.roles import OPERATIONS
from okada.demo.seed import SeedConfig, seed_demo
from okada.demo.sync_data import fill_sync
from sync.feed import BY_NAME
from sync.models import Device, Mutation, SyncConflict
from tests.catalog.factories import role_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled():
    now = timezone.now()
    seed_demo(
        SeedConfig(vendors=6, products_per_vendor=5, customers=20, orders=60, months=2, seed=3, now=now)
    )
    with connection.cursor() as cur:
        counts = fill_sync(cur, now=now, seed=0.5)
    return now, counts


def test_devices_of_active_and_suspended_vendors_push_their_ids_in_order(filled):
    now, counts = filled
    selling = set(Vendor.objects.filter(status__in=["active", "suspended"]).values_list("pk", flat=True))
    devices = list(Device.objects.all())
    assert {d.vendor_id for d in devices} == selling
    assert len(devices) == counts["sync_device"] <= 2 * len(selling)
    window = now - dt.timedelta(days=settings.OKADA_SYNC_MUTATION_RETENTION_DAYS)
    for device in devices:
        pushed = list(Mutation.objects.filter(device=device).order_by("mutation_id"))
        ids = [m.mutation_id for m in pushed]
        # The kept ones follow each other up to the device's last; older ones were pruned.
        assert ids == list(range(ids[0], device.last_mutation_id + 1)), device
        times = [m.created_at for m in pushed]
        assert times == sorted(times) and window <= times[0] and times[-1] <= now
        assert device.last_push_at == times[-1]
        assert all(a.pk < b.pk for a, b in pairwise(pushed))  # UUID v7 of their time


def test_conflicts_are_those_of_the_pushes_with_their_history(filled):
    _, counts = filled
    conflicts = {c.pk: c for c in SyncConflict.objects.all()}
    assert len(conflicts) == counts["sync_conflict"] > 0
    for mutation in Mutation.objects.filter(status=Mutation.Status.CONFLICT):
        assert mutation.conflict_id is not None
        conflict = conflicts[mutation.conflict_id]
        assert (conflict.device_id, conflict.mutation_id, conflict.kind) == (
            mutation.device_id,
            mutation.mutation_id,
            mutation.code,
        )
    assert not Mutation.objects.exclude(status=Mutation.Status.CONFLICT).exclude(conflict=None).exists()
    resolved = [c for c in conflicts.values() if c.status != SyncConflict.Status.OPEN]
    assert all(c.resolved_at is not None and c.resolved_at >= c.created_at for c in resolved)
    history = SyncConflict.history.model.objects
    assert history.filter(history_type="+").count() == len(conflicts)
    assert history.filter(history_type="~").count() == len(resolved)


def test_the_feed_rows_sit_in_their_monthly_partitions(filled):
    _, counts = filled
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM sync_change GROUP BY 1")
        where = dict(cur.fetchall())
    assert counts["sync_change"] > 0 and "sync_change_default" not in where


def test_each_conflict_is_in_the_feed_once_per_event_at_its_time(filled):
    # The fill writes a conflict's feed rows at its creation and its resolution; the capture
    # trigger of sync_conflict also recorded every conflict again, all stamped with the fill's
    # own transaction, as if written then: twice in the feed.
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.id, f.created_at, c.created_at, c.resolved_at FROM sync_change f"
            " CROSS JOIN unnest(f.row_ids) AS u(id) JOIN sync_conflict c ON c.id = u.id"
            " WHERE f.entity = %s",
            [BY_NAME["conflicts"].code],
        )
        fed = cur.fetchall()
    assert fed
    assert all(at in (created, resolved) for _id, at, created, resolved in fed)
    events = [(conflict_id, at) for conflict_id, at, _c, _r in fed]
    assert len(events) == len(set(events))


def feed_entries(where: str, params: list) -> Counter[tuple[int, str]]:
    """How often each (entity, row id) is in the feed rows chosen by `where`."""
    with connection.cursor() as cur:
        rows = "SELECT f.entity, u.row_id::text FROM sync_change f CROSS JOIN unnest(f.row_ids) AS u(row_id)"
        cur.execute(f"{rows} WHERE {where}", params)
        return Counter(cur.fetchall())


def test_a_small_seed_then_the_fill_put_each_row_in_the_feed_as_captured_or_as_filled_not_both():
    # A small seed fires the capture triggers: each seeded row once. The fill writes the rows it
    # covers (orders, items, stock, products) at their events' times; they were in the feed a
    # second time, as the seed had captured them, stamped with its transaction.
    now = timezone.now()
    seed_demo(
        SeedConfig(vendors=6, products_per_vendor=5, customers=20, orders=60, months=2, seed=3, now=now),
        bulk=False,
    )
    seeded = feed_entries("true", [])
    with connection.cursor() as cur:
        cur.execute("SELECT array_agg(id) FROM sync_change")
        captured_rows = cur.fetchone()[0]
    assert set(seeded.values()) == {1}  # the seed alone: once each

    with connection.cursor() as cur:
        fill_sync(cur, now=now, seed=0.5)

    captured = feed_entries("f.id = ANY(%s::uuid[])", [captured_rows])
    filled = feed_entries("NOT f.id = ANY(%s::uuid[])", [captured_rows])
    for name in ("orders", "order_items", "stock", "products"):
        assert any(entity == BY_NAME[name].code for entity, _ in filled), name  # the fill covers some
    assert not set(captured) & set(filled)
    assert set(captured.values()) <= {1}
    assert set(captured) | set(filled) >= set(seeded)  # none left out


def test_a_second_fill_is_refused_and_writes_nothing(filled):
    _, counts = filled
    with connection.cursor() as cur, pytest.raises(ValueError, match="already hold"):
        fill_sync(cur, now=timezone.now())
    assert Mutation.objects.count() == counts["sync_mutation"]


@pytest.mark.parametrize("url", ["/admin/sync/device/", "/admin/sync/syncconflict/", "/admin/sync/mutation/"])
def test_the_sync_screens_list_the_activity(client, filled, url):
    client.force_login(role_user(OPERATIONS))
    response = client.get(url)
    assert response.status_code == 200 and len(response.context["cl"].result_list) > 0
