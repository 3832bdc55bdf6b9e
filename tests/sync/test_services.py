"""Devices, conflict resolution, the feed's generation and upkeep."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone, translation

from catalog.models import Product, Stock, Vendor
from catalog.services import product_update, stock_adjust, vendor_soft_delete
from okada.core.actors import Actor
from okada.core.errors import ChangedSinceOpened, InUse, InvalidInput, NotAllowed, NotFound
from okada.core.services import tracked_hard_delete
from okada.partitions.registry import policy_for
from orders.models import Order
from orders.services import order_transition
from sync.models import Change, ConflictStatus, Device, FeedState, Mutation, SyncConflict
from sync.services import (
    APPLY_DEVICE,
    KEEP_SERVER,
    ConflictResolved,
    DeviceRevoked,
    DeviceTaken,
    conflict_resolve,
    device_register,
    device_revoke,
    feed_partition_detached,
    generation_current,
    generation_rotate,
    push_results_prune,
)
from tests.catalog.factories import ProductFactory, UserFactory, VendorFactory, staff_actor
from tests.concurrency import WAIT, in_thread, race
from tests.orders.factories import OrderFactory
from tests.sync.factories import Phone, register_device, stale_count_conflict, stale_transition_conflict

pytestmark = pytest.mark.django_db

STAFF = Actor(role=Actor.STAFF, label="ops")


def vendor_actor(vendor):
    return Actor(role=Actor.VENDOR, vendor_id=vendor.pk, user=UserFactory())


def staff_with(*codenames: str) -> Actor:
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return Actor.for_staff_user(type(user).objects.get(pk=user.pk))


def test_registering_a_device_is_idempotent_and_renames_it():
    vendor = VendorFactory()
    device_id = uuid.uuid4()
    device, created = device_register(actor=vendor_actor(vendor), device_id=device_id, name="Caisse")
    again, created_again = device_register(
        actor=vendor_actor(vendor), device_id=str(device_id), name="Caisse 2"
    )
    assert (created, created_again) == (True, False)
    assert again.pk == device.pk == device_id and again.name == "Caisse 2"
    assert Device.objects.count() == 1 and again.vendor_id == vendor.pk


def test_a_device_id_of_another_vendor_is_refused():
    device_id = uuid.uuid4()
    device_register(actor=vendor_actor(VendorFactory()), device_id=device_id, name="A")
    with pytest.raises(DeviceTaken):
        device_register(actor=vendor_actor(VendorFactory()), device_id=device_id, name="B")


def test_only_a_vendor_registers_devices_and_input_is_checked():
    vendor = VendorFactory()
    with pytest.raises(NotAllowed):
        device_register(actor=STAFF, device_id=uuid.uuid4(), name="x")
    with pytest.raises(InvalidInput):
        device_register(actor=vendor_actor(vendor), device_id="not-a-uuid", name="x")
    with pytest.raises(InvalidInput):
        device_register(actor=vendor_actor(vendor), device_id=uuid.uuid4(), name=" ")
    assert not Device.objects.exists()


def test_revoking_needs_the_permission_and_a_revoked_device_cannot_register_again():
    vendor = VendorFactory()
    device, _ = device_register(actor=vendor_actor(vendor), device_id=uuid.uuid4(), name="Caisse")
    with pytest.raises(NotAllowed):
        device_revoke(device=device, actor=staff_with())
    assert Device.objects.get(pk=device.pk).revoked_at is None

    staff = staff_with("revoke_device")
    device_revoke(device=device, actor=staff, reason="téléphone perdu")

    device.refresh_from_db()
    assert device.revoked_at is not None and device.revoked_by == staff.user
    assert device.revoke_reason == "téléphone perdu"
    with pytest.raises(DeviceRevoked):
        device_register(actor=vendor_actor(vendor), device_id=device.pk, name="Caisse")


def _price_conflict(vendor) -> SyncConflict:
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    product_update(product=product, data={"price_xaf": 1100}, actor=STAFF)
    phone.push(
        phone.mutation(
            "product.update", product_id=str(product.pk), base_version=1, fields={"price_xaf": 900}
        )
    )
    return SyncConflict.objects.get()


def test_resolving_needs_the_permission():
    conflict = _price_conflict(VendorFactory())
    with pytest.raises(NotAllowed):
        conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff_with())
    with pytest.raises(NotAllowed):
        conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=vendor_actor(conflict.vendor))
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN


def test_keeping_the_server_value_resolves_once():
    conflict = _price_conflict(VendorFactory())
    staff = staff_with("resolve_syncconflict")

    conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff, note="prix fixé par le siège")

    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.KEPT_SERVER and conflict.resolved_by == staff.user
    assert conflict.resolved_at is not None and conflict.resolution_note == "prix fixé par le siège"
    with pytest.raises(ConflictResolved):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)
    assert [h.status for h in conflict.history.order_by("history_date")] == ["open", "kept_server"]


def test_applying_a_device_value_that_is_still_impossible_keeps_the_conflict_open():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=2)
    phone = Phone(vendor)
    phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-5))
    conflict = SyncConflict.objects.get()
    staff = staff_with("resolve_syncconflict", "adjust_stock")

    from catalog.services import InsufficientStock

    with pytest.raises(InsufficientStock):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN

    from catalog.services import stock_adjust

    stock_adjust(product=product, delta=10, reason="livraison", actor=STAFF, kind="restock")
    conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)
    assert Stock.objects.get(product=product).on_hand == 7
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_the_device_value_is_not_applied_over_a_change_made_since_the_conflict():
    # Nothing a user saved is lost: the product was changed after the conflict was recorded (the
    # staff resolving it saw the older value); applying the device's price would undo that.
    conflict = _price_conflict(VendorFactory())
    product = Product.objects.get(pk=conflict.row_id)
    product_update(product=product, data={"price_xaf": 1300}, actor=STAFF)
    staff = staff_with("resolve_syncconflict", "change_product")

    with pytest.raises(ChangedSinceOpened) as refused:
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert (refused.value.code, refused.value.status) == ("changed_since_opened", 409)
    assert Product.objects.get(pk=product.pk).price_xaf == 1300
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    # Keeping the server's value loses nothing: still allowed.
    conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff)
    assert Product.objects.get(pk=product.pk).price_xaf == 1300


def test_the_device_value_is_applied_when_the_product_did_not_change_since_the_conflict():
    conflict = _price_conflict(VendorFactory())
    staff = staff_with("resolve_syncconflict", "change_product")

    conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert Product.objects.get(pk=conflict.row_id).price_xaf == 900
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_the_device_value_applies_over_a_change_the_staff_saw_when_they_opened_the_page():
    # Opened before a change: refused. Opened again after it (the page shows the current value):
    # applying is then a choice made knowingly.
    conflict = _price_conflict(VendorFactory())
    product = Product.objects.get(pk=conflict.row_id)
    opened_before = product.updated_at.isoformat()
    product = product_update(product=product, data={"price_xaf": 1300}, actor=STAFF)
    staff = staff_with("resolve_syncconflict", "change_product")

    with pytest.raises(ChangedSinceOpened):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff, opened_at=opened_before)
    assert Product.objects.get(pk=product.pk).price_xaf == 1300

    conflict_resolve(
        conflict=conflict, resolution=APPLY_DEVICE, actor=staff, opened_at=product.updated_at.isoformat()
    )
    assert Product.objects.get(pk=product.pk).price_xaf == 900


def test_a_deleted_product_restored_since_the_conflict_is_not_overwritten():
    from catalog.services import product_restore, product_soft_delete

    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, name="Savon")
    phone = Phone(vendor)
    product_soft_delete(product=product, actor=STAFF)
    phone.push(
        phone.mutation("product.update", product_id=str(product.pk), base_version=1, fields={"name": "X"})
    )
    conflict = SyncConflict.objects.get()
    product = product_restore(product=product, actor=STAFF)
    product_update(product=product, data={"name": "Savon noir"}, actor=STAFF)
    staff = staff_with("resolve_syncconflict", "change_product")

    with pytest.raises(ChangedSinceOpened):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert Product.objects.get(pk=product.pk).name == "Savon noir"


# --- From the list (no page opened): every kind is checked against what the conflict recorded ---


def test_a_stock_count_is_not_applied_over_a_restock_made_since_the_conflict():
    conflict, product = stale_count_conflict(VendorFactory())
    stock_adjust(product=product, delta=10, reason="livraison", actor=STAFF)  # 25 on hand now
    staff = staff_with("resolve_syncconflict", "count_stock")

    with translation.override("en"), pytest.raises(ChangedSinceOpened) as refused:
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert (refused.value.code, refused.value.status) == ("changed_since_opened", 409)
    assert "changed after this conflict was recorded" in str(refused.value)
    assert "Open the conflict, look at the current value" in str(refused.value)
    assert Stock.objects.get(product=product).on_hand == 25
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff)  # loses nothing: allowed
    assert Stock.objects.get(product=product).on_hand == 25
    assert SyncConflict.objects.get().status == ConflictStatus.KEPT_SERVER


def test_a_stock_count_applies_when_the_stock_did_not_change_since_the_conflict():
    conflict, product = stale_count_conflict(VendorFactory())

    conflict_resolve(
        conflict=conflict, resolution=APPLY_DEVICE, actor=staff_with("resolve_syncconflict", "count_stock")
    )

    assert Stock.objects.get(product=product).on_hand == 8
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_a_stock_count_applies_over_a_reservation_made_since_the_conflict():
    # An order reserving units moves the stock's version but not the units on hand the count
    # replaces: nothing would be undone, so a busy shop's counts are not refused for it.
    conflict, product = stale_count_conflict(VendorFactory())
    OrderFactory(vendor=product.vendor, items=[(product, 3)])
    assert Stock.objects.get(product=product).version != conflict.server_value["version"]

    conflict_resolve(
        conflict=conflict, resolution=APPLY_DEVICE, actor=staff_with("resolve_syncconflict", "count_stock")
    )

    assert (Stock.objects.get(product=product).on_hand, Stock.objects.get(product=product).reserved) == (8, 3)
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_an_order_transition_is_not_applied_over_a_move_made_since_the_conflict():
    conflict, order = stale_transition_conflict(VendorFactory())
    order_transition(order=order, to="preparing", actor=STAFF)  # staff went on with it meanwhile
    staff = staff_with("resolve_syncconflict", "transition_order")

    with translation.override("fr"), pytest.raises(ChangedSinceOpened) as refused:
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    message = str(refused.value)
    assert "modifié après l\u2019enregistrement de ce conflit" in message
    assert "Ouvrez le conflit, regardez la valeur actuelle" in message
    assert Order.objects.get(pk=order.pk).status == "preparing"
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN


def test_an_order_transition_applies_when_the_order_did_not_move_since_the_conflict():
    conflict, order = stale_transition_conflict(VendorFactory())

    staff = staff_with("resolve_syncconflict", "transition_order")

    conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_an_unknown_resolution_is_refused():
    conflict = _price_conflict(VendorFactory())
    with pytest.raises(InvalidInput):
        conflict_resolve(conflict=conflict, resolution="both", actor=staff_with("resolve_syncconflict"))


def test_rotating_the_generation_changes_the_token():
    before = generation_current().token
    generation_rotate(reason="restored")
    assert generation_current().token != before


def test_the_feed_is_kept_by_the_partition_registry_with_a_retention():
    policy = policy_for("sync_change")
    assert policy is not None and policy.retention_months == 3 and not policy.archive
    assert policy.on_detach == "sync.services.feed_partition_detached"


def test_a_detached_month_of_the_feed_records_the_highest_position_it_held():
    vendor = VendorFactory()
    ProductFactory(vendor=vendor)
    top = Change.objects.order_by("-xid", "-id").first()
    assert top is not None
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE sync_change_gone AS SELECT * FROM sync_change")
        feed_partition_detached(cur, "sync_change", "sync_change_gone")
    state = FeedState.objects.get()
    assert (state.pruned_xid, state.pruned_id) == (top.xid, top.id)
    assert generation_current().pruned == (top.xid, str(top.id))


def test_old_push_results_are_pruned(settings):
    settings.OKADA_SYNC_MUTATION_RETENTION_DAYS = 30
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=3)
    phone = Phone(vendor)
    phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=1))
    Mutation.objects.update(created_at=timezone.now() - dt.timedelta(days=31))

    assert push_results_prune() == 1
    # A retry of a pruned mutation is still a duplicate: last_mutation_id remembers it.
    again = phone.push({"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": 1}})
    assert again["results"] == [{"id": 1, "status": "duplicate", "code": None, "conflict_id": None}]
    assert Stock.objects.get(product=product).on_hand == 4


def test_the_feed_state_is_recreated_when_missing():
    FeedState.objects.all().delete()
    assert generation_current().token
    assert FeedState.objects.count() == 1


def _exists(name: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cur.fetchone()[0])


# --- Rows deleted between the caller's lookup and the service's lock: a 404, never a 500 --------


@pytest.mark.django_db(transaction=True)
def test_revoking_a_device_deleted_meanwhile_is_not_found():
    device = register_device(VendorFactory())

    deleted, revoked = race(
        lambda: Device.objects.filter(pk=device.pk).delete(),
        lambda: device_revoke(device=device, actor=staff_with("revoke_device")),
    )

    assert deleted == (1, {"sync.Device": 1}), (deleted, revoked)
    assert isinstance(revoked, NotFound), (deleted, revoked)


@pytest.mark.django_db(transaction=True)
def test_resolving_a_conflict_deleted_meanwhile_is_not_found():
    conflict = _price_conflict(VendorFactory())

    deleted, resolved = race(
        lambda: SyncConflict.objects.filter(pk=conflict.pk).delete(),
        lambda: conflict_resolve(
            conflict=conflict, resolution=KEEP_SERVER, actor=staff_with("resolve_syncconflict")
        ),
    )

    assert deleted[0] == 1, (deleted, resolved)
    assert isinstance(resolved, NotFound), (deleted, resolved)


@pytest.mark.django_db(transaction=True)
def test_a_device_registered_and_deleted_by_others_while_it_registers_is_not_found():
    # Another request registers the same id just before this one inserts it (IntegrityError),
    # and the row is deleted before this one re-reads it under lock: NotFound, not DoesNotExist.
    vendor = VendorFactory()
    device_id = uuid.uuid4()
    others_did: list[str] = []

    def on_another_connection(work: Callable[[], object]) -> None:
        thread, errors = in_thread(work)
        thread.join(WAIT)
        assert not thread.is_alive() and not errors, errors

    def others_meanwhile(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "sync_device"') and not others_did:
            on_another_connection(lambda: Device.objects.create(id=device_id, vendor=vendor, name="Autre"))
            others_did.append("registered")
        elif "FOR UPDATE" in sql and others_did == ["registered"]:
            on_another_connection(lambda: Device.objects.filter(pk=device_id).delete())
            others_did.append("deleted")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(others_meanwhile), pytest.raises(NotFound):
        device_register(actor=vendor_actor(vendor), device_id=device_id, name="Caisse")

    assert others_did == ["registered", "deleted"]
    assert not Device.objects.filter(pk=device_id).exists()


def test_applying_a_stock_conflict_of_a_product_deleted_for_good_since_is_not_found():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=2)
    phone = Phone(vendor)
    phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-5))
    conflict = SyncConflict.objects.get()
    tracked_hard_delete(obj=product, actor=Actor.system("test"))

    staff = staff_with("resolve_syncconflict", "adjust_stock")

    with pytest.raises(NotFound):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN


def test_a_vendor_with_a_registered_device_is_kept_the_delete_is_a_clear_in_use_not_a_500():
    # Devices (and sync conflicts) are kept for good and point at their vendor through a
    # protected key: safedelete's cascade raised ProtectedError, a 500 in the admin.
    vendor = VendorFactory()
    device = register_device(vendor)
    device_revoke(device=device, actor=staff_actor())  # a revoked device is still kept
    with translation.override("en"), pytest.raises(InUse, match="devices, which are kept for good"):
        vendor_soft_delete(vendor=vendor, actor=staff_actor())
    assert Vendor.objects.filter(pk=vendor.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_product_changed_while_the_device_value_is_being_applied_keeps_the_change():
    # The REST API's update holds the product's lock when staff apply the device's value: the
    # resolution waits for it, then finds the product changed since the conflict: refused.
    conflict = _price_conflict(VendorFactory())
    product = Product.objects.get(pk=conflict.row_id)
    staff = staff_with("resolve_syncconflict", "change_product")

    updated, resolved = race(
        lambda: product_update(product=product, data={"price_xaf": 1300}, actor=STAFF),
        lambda: conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff),
    )

    assert isinstance(updated, Product), (updated, resolved)
    assert isinstance(resolved, ChangedSinceOpened), (updated, resolved)
    assert Product.objects.get(pk=product.pk).price_xaf == 1300
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
