"""Every admin URL and every action, POSTed by users who may only look: nothing changes.

The matrix is built from the admin itself (admin.site._registry, each ModelAdmin's get_urls and
actions), so a screen, a custom view or an action added later is in it without editing this file;
a URL whose parameters the matrix cannot fill fails `test_the_matrix_fills_every_admin_url`.

Two users, both active staff, each logged in with a real CSRF token (the test client enforcing it):
- "viewer": every view permission there is (`view_*`, `health.view_database_health`) and nothing
  else: what a read-only auditor is given;
- "nobody": no permission at all.
For each of them and each admin URL, a POST (add, change, delete, history revert, custom views:
stock adjust/count, order transition/note/export, conflict resolve, partition run, backup now,
database session signals and statistics reset, a user's password) answers 403 (404: a deleted
order's buttons; the pages that only read render, writing nothing), and every action of
every screen (with its confirmation fields) is refused or not offered: either way no table is written
(PostgreSQL's counts of this transaction's inserts, updates and deletes, history and the admin log
included, even writes rolled back to a savepoint) and nothing is queued to Celery.
GETs of every URL change nothing either, and the sensitive ones (an export's file, key and token
hashes, another user's password form) are not served to them. And each permission to act (beyond
add, change, delete and view: export orders, adjust stock, run a backup...) held alone opens no
page of data: reading takes a view (or change) permission.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission
from django.db import connection, connections
from django.test import TestCase
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from tests.admin_client import csrf_client, csrf_post
from tests.catalog.factories import UserFactory

pytestmark = pytest.mark.django_db

# Tables a request writes whoever makes it: the session (logins, messages). Nothing else may move.
MOVES_ON_EVERY_REQUEST = ("public.django_session",)


# --- The two users -------------------------------------------------------------------------------


def _viewer() -> Any:
    user = UserFactory(username="viewer", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def _nobody() -> Any:
    return UserFactory(username="nobody", is_staff=True)


USERS = {"viewer": _viewer, "nobody": _nobody}


# --- What "nothing changed" means ----------------------------------------------------------------


def _queued() -> list[str]:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(m)["headers"]["task"] for m in broker.lrange("celery", 0, -1)]


WRITES_SQL = """
    SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del
      FROM pg_stat_xact_user_tables
     WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
"""


def writes() -> dict[str, int]:
    """Rows inserted, updated or deleted per table by this transaction so far (a test's requests
    run in the test's transaction): writes rolled back to a savepoint count too."""
    with connection.cursor() as cursor:
        cursor.execute(WRITES_SQL)
        return {table: n for table, n in cursor.fetchall() if table not in MOVES_ON_EVERY_REQUEST}


@contextmanager
def unchanged(what: str) -> Iterator[None]:
    before, queued = writes(), _queued()
    # Jobs are queued on commit (backups, drills, partition maintenance), which never comes in a
    # test's transaction: a callback registered at all is a queued job.
    with TestCase.captureOnCommitCallbacks() as callbacks:
        yield
    assert callbacks == [], f"{what} would queue on commit: {callbacks}"
    after = writes()
    moved = sorted(t for t in after if after[t] != before.get(t, 0))
    assert moved == [], f"{what} wrote to {moved}"
    assert _queued() == queued, f"{what} queued {_queued()[len(queued) :]}"


@pytest.fixture
def empty_queue() -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery")


# --- One row (and a deleted one) of every screen ---------------------------------------------------


def _world(export_owner: Any) -> dict[Any, list[Any]]:
    """Rows for every registered model, made by the services where there are some: {model: [live,
    deleted...]}. `export_owner` asked for the order export (so a missing permission check on its
    download would hand them the file)."""
    from django_celery_beat import models as beat

    from backups.models import BackupVerification
    from catalog import services as catalog
    from catalog.models import Category, Product, Stock, StockMovement, Vendor, VendorMember
    from okada.core.actors import Actor
    from okada.core.models import JobRun
    from okada.credentials.models import ApiKey, PersonalToken
    from okada.credentials.services import api_key_issue, personal_token_issue
    from okada.health.models import Alert, DatabaseAction, DatabaseHealth
    from okada.partitions.models import PartitionAction, PartitionedTable
    from orders import exports
    from orders import services as orders
    from orders.models import Customer, Order, OrderEvent, OrderExport, OrderStatus, Payment, Zone
    from sync.models import Device, Mutation, SyncConflict
    from tests.backups.factories import BackupVerificationFactory
    from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory
    from tests.orders.factories import CustomerFactory, OrderFactory, ZoneFactory, order_in_status
    from tests.sync.factories import stale_count_conflict
    from tests.testapp.models import Book, Shelf
    from tests.testapp.services import shelf_create, tracked_delete

    staff = Actor(role=Actor.STAFF, label="tests")
    vendor, gone_vendor = VendorFactory(), VendorFactory()
    catalog.vendor_soft_delete(vendor=gone_vendor, actor=staff)
    owner = UserFactory(username="owner")
    owner.set_password("pw-12345678")
    owner.save()
    member = catalog.vendor_member_add(vendor=vendor, user=owner, role="owner", actor=staff)
    gone_member = catalog.vendor_member_add(vendor=vendor, user=UserFactory(), role="staff", actor=staff)
    catalog.vendor_member_remove(member=gone_member, actor=staff)
    category, gone_category = CategoryFactory(), CategoryFactory()
    catalog.category_soft_delete(category=gone_category, actor=staff)
    product = ProductFactory(vendor=vendor, initial_stock=10, category=category)
    gone_product = ProductFactory(vendor=vendor)
    catalog.product_soft_delete(product=gone_product, actor=staff)
    zone, gone_zone = ZoneFactory(), ZoneFactory()
    orders.zone_soft_delete(zone=gone_zone, actor=staff)
    customer, gone_customer = CustomerFactory(zone=zone), CustomerFactory(zone=zone)
    orders.customer_soft_delete(customer=gone_customer, actor=staff)
    order = OrderFactory(vendor=vendor, customer=customer, zone=zone, items=[(product, 1)])
    gone_order = order_in_status(OrderStatus.CANCELLED, vendor=vendor, customer=customer, zone=zone)
    orders.order_soft_delete(order=gone_order, actor=staff)
    refund = orders.payment_record(
        order=order_in_status(OrderStatus.CANCELLED, vendor=vendor, customer=customer, zone=zone),
        provider="cash",
        idempotency_key="refund-owed",
        amount_xaf=1500,
        status=Payment.Status.SUCCEEDED,
        actor=staff,
    )
    export = OrderExport.objects.create(requested_by=export_owner, status=OrderExport.Status.DONE)
    export.file_name = f"{export.pk}.csv"
    export.save()
    exports.export_path(export).parent.mkdir(parents=True, exist_ok=True)
    exports.export_path(export).write_text("number\nOK-0000001\n")
    conflict, _ = stale_count_conflict(vendor)
    key = api_key_issue(name="erp", vendor=vendor, actor=staff).key
    token = personal_token_issue(username="owner", password="pw-12345678").token
    group = Group.objects.create(name="Auditeurs")
    group.permissions.add(Permission.objects.get(codename="view_vendor"))
    task = beat.PeriodicTask.objects.get(task="backups.run_backup")  # a job needing its own permission
    pruning = beat.PeriodicTask.objects.get(task="credentials.prune_tokens")  # one needing none
    interval = beat.IntervalSchedule.objects.create(every=7, period="days")
    clocked = beat.ClockedSchedule.objects.create(clocked_time=timezone.now())
    solar = beat.SolarSchedule.objects.create(event="sunrise", latitude=4.05, longitude=9.7)
    for schedule in (interval, clocked, solar):
        beat.PeriodicTask.objects.create(
            name=f"tâche {schedule.pk}-{type(schedule).__name__}",
            task="credentials.prune_tokens",
            one_off=schedule is clocked,
            **{type(schedule).__name__.replace("Schedule", "").lower(): schedule},
        )
    verification = BackupVerificationFactory()
    shelf = shelf_create(actor=staff, code="A1", label="Allée 1")
    book = Book.objects.create(shelf=shelf, title="Livre")
    gone_shelf = shelf_create(actor=staff, code="B1", label="Allée 2")
    tracked_delete(obj=gone_shelf, actor=staff)
    alert = Alert.objects.create(key="x:1", kind="lock_wait", severity="warning", message="m", data={})
    return {
        Vendor: [vendor, gone_vendor],
        VendorMember: [member, gone_member],
        Category: [category, gone_category],
        Product: [product, gone_product],
        Stock: [Stock.objects.get(product=product)],
        StockMovement: [StockMovement.objects.filter(product=product).first()],
        Zone: [zone, gone_zone],
        Customer: [customer, gone_customer],
        Order: [order, gone_order],
        OrderEvent: [OrderEvent.objects.filter(order=order).first()],
        Payment: [refund],
        OrderExport: [export],
        Device: [Device.objects.filter(vendor=vendor).first()],
        SyncConflict: [conflict],
        Mutation: [Mutation.objects.first()],
        ApiKey: [key],
        PersonalToken: [token],
        JobRun: [JobRun.objects.create(name="test.job", outcome="success")],
        type(owner): [owner, UserFactory(is_superuser=True, is_staff=True)],
        Group: [group, Group.objects.get(name="Finance")],
        beat.PeriodicTask: [task, pruning],
        beat.CrontabSchedule: [task.crontab],
        beat.IntervalSchedule: [interval],
        beat.ClockedSchedule: [clocked],
        beat.SolarSchedule: [solar],
        PartitionedTable: [PartitionedTable.objects.get(pk="orders_orderevent")],
        PartitionAction: [
            PartitionAction.objects.create(
                table="orders_orderevent",
                partition="orders_orderevent_p200103",
                kind=PartitionAction.Kind.CREATED,
                outcome=PartitionAction.Outcome.SUCCESS,
            )
        ],
        Alert: [alert],
        DatabaseAction: [DatabaseAction.objects.create(kind="cancel", pid=7, target="t", succeeded=True)],
        type(verification.backup): [verification.backup],
        BackupVerification: [verification],
        DatabaseHealth: [],  # no rows: its screens are its URLs
        Shelf: [shelf, gone_shelf],
        Book: [book],
    }


# --- Every admin URL, filled -------------------------------------------------------------------------


def _patterns(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def model_urls(model: Any) -> list[str]:
    """The URL patterns of `model`'s screen (its ModelAdmin's get_urls), as written."""
    model_admin = admin.site._registry[model]
    return [route for route, p in _patterns(model_admin.get_urls()) if route != "<path:object_id>/"]


HISTORY_REVERT = r"^([^/]+)/history/([^/]+)/$"


def filled(model: Any, route: str, rows: list[Any], pid: int) -> list[str]:
    """The concrete URLs of `route` for `rows` (empty when the matrix cannot fill it)."""
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    if route == HISTORY_REVERT:
        return [
            f"{base}{row.pk}/history/{record.history_id}/"
            for row in rows
            if hasattr(row, "history")
            for record in row.history.all()[:1]
        ]
    if route.startswith("<int:pid>/") or "<int:pid>" in route:
        return [
            base + route.replace("<int:pid>", str(pid)).replace("<str:kind>", kind)
            for kind in ("cancel", "terminate")
        ]
    if "<path:object_id>" in route or "<str:object_id>" in route or "<id>" in route:
        return [base + re.sub(r"<(path|str):object_id>|<id>", str(row.pk), route) for row in rows]
    if "<" in route or "(" in route:
        return []
    return [base + route]


# Pages that only read: a POST to them renders them (Django's history list, the health tabs, the
# open-orders queue, a partitioned table's page and plan), checked to change nothing all the same.
READ_ONLY_ROUTES = {
    "<path:object_id>/history/",
    "",
    "queries/",
    "activity/",
    "storage/",
    "indexes/",
    "sequences/",
    "connections/",
    "queue/",
    "<str:object_id>/plan/",
}
# The pages of actions that ask first: a user who may not run the action never sees them.
CONFIRMATIONS = {
    "admin/delete_selected_confirmation.html",
    "admin/okada/hard_delete_confirmation.html",
    "admin/orders/refund_settle.html",
}


def reads_only(model: Any, route: str) -> bool:
    # A partitioned table's page is a custom one that only reads (PartitionedTableAdmin.change_view).
    return route in READ_ONLY_ROUTES or (
        model._meta.label == "partitions.PartitionedTable" and route == "<path:object_id>/change/"
    )


ACTION_FIELDS = {
    # Every action's confirmation at once: Django's "delete selected", the hard delete's and the
    # refunds' confirmations.
    "post": "yes",
    "confirm": "yes",
    "note": "rendu en espèces",
    "index": "0",
}


def form_fields(rows: list[Any]) -> dict[str, Any]:
    """Fields the custom views read (a view that forgot its permission check would act on them)."""
    product = next((r for r in rows if type(r).__name__ == "Product"), None)
    on_hand = product.stock.on_hand if product is not None else 0
    return {
        "adjust-delta": "5",
        "adjust-reason": "inventaire",
        "count-on_hand": "3",
        "count-expected_on_hand": str(on_hand),
        "count-reason": "inventaire",
        "to": "cancelled",
        "note": "annulée par le client",
        "resolution": "apply_device",
        "query": "",
        "post": "yes",
        "confirm": "yes",
        "password1": "pw-changed-1234",
        "password2": "pw-changed-1234",
        "name": "x",
    }


@pytest.fixture
def other_backend() -> Iterator[int]:
    """Another session's pid, for the screens that cancel or terminate one."""
    conn = connections.create_connection("default")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            yield int(cursor.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def exports_dir(settings: Any, tmp_path: Any) -> None:
    settings.OKADA_PRIVATE_DIR = tmp_path / "private"


# --- The matrix --------------------------------------------------------------------------------------


def test_the_matrix_fills_every_admin_url():
    # A custom URL with a parameter the matrix does not know would be left out silently.
    unfilled = [
        f"{model._meta.label}: {route}"
        for model in admin.site._registry
        for route in model_urls(model)
        if not filled(model, route, [_Row()], 1)
    ]
    assert unfilled == []


class _Row:
    pk = "00000000-0000-0000-0000-000000000000"

    class history:  # stands for a row's history manager
        @staticmethod
        def all() -> list[Any]:
            return [type("Record", (), {"history_id": 1})()]


@pytest.mark.parametrize("who", USERS)
def test_no_admin_post_or_action_changes_anything_for_a_user_who_may_only_view(
    who, empty_queue, other_backend, exports_dir
):
    user = USERS[who]()
    world = _world(export_owner=user)
    assert set(world) == set(admin.site._registry), "every screen has rows to act on"
    client = csrf_client(user)
    allowed = []
    for model, rows in world.items():
        model_admin: Any = admin.site._registry[model]
        fields = form_fields([r for rs in world.values() for r in rs])
        # Every URL of the screen: the change list's own POST is the actions (below).
        for route in model_urls(model):
            for url in filled(model, route, rows, other_backend):
                if url.endswith(f"/{model._meta.model_name}/"):
                    continue
                with unchanged(f"{who}: POST {url}"):
                    response = csrf_post(client, url, fields)
                # Refused (a deleted order's page is gone: 404), or a page that only reads.
                if response.status_code not in (403, 404) and not reads_only(model, route):
                    allowed.append(f"POST {url} -> {response.status_code}")
        # Every action, on live and deleted rows, confirmed.
        changelist = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        query = "?deleted=all" if "deleted" in {f.name for f in model._meta.fields} else ""
        # Each row alone (an action may refuse a whole selection for one of its rows), then all.
        selections = [[row] for row in rows] + ([rows] if len(rows) > 1 else [])
        for (_, name, _), selected in itertools.product(model_admin._get_base_actions(), selections):
            data = {
                **ACTION_FIELDS,
                "action": name,
                helpers.ACTION_CHECKBOX_NAME: [str(r.pk) for r in selected],
            }
            with unchanged(f"{who}: action {model._meta.label}.{name} on {selected}"):
                response = csrf_post(client, changelist + query, data)
            # Not offered: the list again (view) or 403 (nobody); never the action's own page.
            assert response.status_code in (200, 302, 403), (name, response.status_code)
            if response.status_code == 200:
                shown = {t.name for t in response.templates}
                assert not shown & CONFIRMATIONS, (model._meta.label, name, shown & CONFIRMATIONS)
    assert allowed == []


def _root() -> Any:
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("who", [*USERS, "root"])
def test_no_admin_page_changes_anything_when_read(who, empty_queue, other_backend, exports_dir):
    # The CSRF check guards POSTs only: a page that wrote on a GET would be a link away from
    # anyone's browser. Superusers included, who may do everything by POST.
    user = {**USERS, "root": _root}[who]()
    world = _world(export_owner=user)
    client = csrf_client(user)
    for model, rows in world.items():
        for route in model_urls(model):
            for url in filled(model, route, rows, other_backend):
                with unchanged(f"{who}: GET {url}"):
                    response = client.get(url)
                assert response.status_code in (200, 302, 403, 404, 405), (url, response.status_code)


@pytest.mark.parametrize("who", USERS)
def test_sensitive_pages_are_not_served_to_a_user_who_may_only_view(who, exports_dir):
    from okada.credentials.models import ApiKey, PersonalToken
    from orders.models import OrderExport

    user = USERS[who]()
    world = _world(export_owner=user)
    client = csrf_client(user)
    export = world[OrderExport][0]
    # Their own export, but they may not export orders: no file.
    assert client.get(f"/admin/orders/orderexport/{export.pk}/download/").status_code == 403
    # Another account's password form: only for who may change that account.
    owner = world[type(user)][0]
    assert client.get(f"/admin/auth/user/{owner.pk}/password/").status_code == 403
    # Key and token pages never show their hashes (to whoever may read them).
    for model, secret in ((ApiKey, "key_hash"), (PersonalToken, "token_hash")):
        row = world[model][0]
        page = client.get(f"/admin/{model._meta.app_label}/{model._meta.model_name}/{row.pk}/change/")
        assert page.status_code == (200 if who == "viewer" else 403)
        assert getattr(row, secret) not in page.content.decode()
    # Nor a list filter on them, which would tell the hash a character at a time.
    for url in (
        "/admin/credentials/apikey/?key_hash__startswith=a",
        "/admin/credentials/personaltoken/?token_hash__startswith=a",
    ):
        assert client.get(url).status_code in (400, 403), url
    # The confirmation of a statistics reset: superusers only.
    assert client.get("/admin/health/databasehealth/queries/reset/").status_code == 403


def test_a_permission_to_act_reads_no_screen_on_its_own(other_backend, exports_dir):
    # The permissions beyond Django's four (adjust stock, export orders, run a backup...) say what
    # one may do, not what one may read: alone (a custom role), none opens a page of data. The
    # export permission alone listed its holder's exports and served their files, the order list
    # (customers' names and phones) that the holder could not open.
    acting = list(
        Permission.objects.exclude(codename__regex=r"^(add|change|delete|view)_").select_related(
            "content_type"
        )
    )
    assert {"orders.export_orders", "catalog.adjust_stock", "backups.run_backup"} <= {
        f"{p.content_type.app_label}.{p.codename}" for p in acting
    }
    holders = {}
    for permission in acting:
        user = UserFactory(username=f"only-{permission.codename}", is_staff=True)
        user.user_permissions.add(permission)
        holders[f"{permission.content_type.app_label}.{permission.codename}"] = user
    world = _world(export_owner=holders["orders.export_orders"])
    read = []
    for name, user in holders.items():
        client = csrf_client(user)
        for model, rows in world.items():
            for route in model_urls(model):
                for url in filled(model, route, rows, other_backend):
                    if client.get(url).status_code == 200:
                        read.append(f"{name}: GET {url}")
    assert read == []


def test_the_matrix_posts_are_real_ones_a_superuser_gets_done(empty_queue, exports_dir):
    """The harness itself: with the permissions, the same POSTs (CSRF token, fields) do act, so
    the matrix's "nothing changed" means refused, not malformed."""
    from catalog.models import Product, Stock, Vendor
    from orders.models import Order, OrderStatus

    root = _root()
    world = _world(export_owner=root)
    client = csrf_client(root)
    product = world[Product][0]
    fields = form_fields([product])
    csrf_post(client, f"/admin/catalog/product/{product.pk}/adjust-stock/", fields)
    assert Stock.objects.get(product=product).on_hand == 15
    order = world[Order][0]
    csrf_post(client, f"/admin/orders/order/{order.pk}/transition/", fields)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    vendor = world[Vendor][0]
    csrf_post(
        client,
        "/admin/catalog/vendor/?deleted=all",
        {**ACTION_FIELDS, "action": "suspend", helpers.ACTION_CHECKBOX_NAME: [str(vendor.pk)]},
    )
    assert Vendor.objects.get(pk=vendor.pk).status == Vendor.Status.SUSPENDED
