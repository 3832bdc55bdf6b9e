"""Pushes against the real database: exactly once, in order, under real concurrent connections."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connections, transaction
from django.test import override_settings

from catalog.models import Product, Stock, StockMovement
from catalog.selectors import stock_audit
from catalog.services import product_soft_delete, product_update, stock_adjust, vendor_suspend
from okada.core.actors import Actor
from okada.core.errors import InvalidInput, NotFound
from okada.core.services import tracked_hard_delete
from orders.models import Order
from sync.models import ConflictKind, ConflictStatus, Device, Mutation, SyncConflict
from sync.push import TryAgain
from sync.services import (
    APPLY_DEVICE,
    KEEP_SERVER,
    DeviceRevoked,
    MutationGap,
    conflict_resolve,
    device_revoke,
)
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.concurrency import race
from tests.languages import reads_in_its_language
from tests.orders.factories import OrderFactory
from tests.sync.factories import WAIT, Phone, in_threads, stale_count_conflict

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(role=Actor.STAFF, label="ops")


def on_hand(product: Product) -> int:
    return Stock.objects.get(product=product).on_hand


def stock_id(product: Product) -> str:
    return str(Stock.objects.get(product=product).pk)


def test_the_same_push_sent_five_times_applies_once():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    sale = phone.mutation("stock.adjust", product_id=str(product.pk), delta=-2, reason="vente")

    answers = [phone.push(sale) for _ in range(5)]

    assert answers[0]["results"] == [{"id": 1, "status": "applied", "code": None, "conflict_id": None}]
    assert all(a["results"][0]["status"] == "duplicate" for a in answers[1:])
    assert all(a["last_mutation_id"] == 1 for a in answers)
    assert on_hand(product) == 8
    assert StockMovement.objects.filter(product_id=product.pk, kind="adjustment").count() == 1


def test_the_same_push_sent_five_times_at_once_applies_once():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    batch = [phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1) for _ in range(3)]

    answers = in_threads([lambda: phone.push(*batch) for _ in range(5)])

    assert not [a for a in answers if isinstance(a, Exception)], answers
    statuses = sorted(r["status"] for a in answers for r in a["results"])
    assert statuses.count("applied") == 3 and statuses.count("duplicate") == 12
    assert on_hand(product) == 7
    assert Device.objects.get(pk=phone.device.pk).last_mutation_id == 3
    assert not stock_audit()


def test_a_lost_response_retried_applies_once():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    first = [phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1) for _ in range(2)]
    phone.push(*first)  # applied, but the answer never reached the phone
    later = phone.mutation("stock.adjust", product_id=str(product.pk), delta=-4)

    answer = phone.push(*first, later)

    assert [r["status"] for r in answer["results"]] == ["duplicate", "duplicate", "applied"]
    assert on_hand(product) == 4


def test_a_retry_replays_the_stored_result_of_a_rejection_and_a_conflict():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=1)
    phone = Phone(vendor)
    batch = [
        phone.mutation("stock.adjust", product_id=str(uuid.uuid4()), delta=1),
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-5),
    ]
    first = phone.push(*batch)
    again = phone.push(*batch)

    assert [r["status"] for r in first["results"]] == ["rejected", "conflict"]
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert (
        [r["code"] for r in again["results"]]
        == [r["code"] for r in first["results"]]
        == [
            "not_found",
            "impossible_stock",
        ]
    )
    assert again["results"][1]["conflict_id"] == first["results"][1]["conflict_id"] is not None


def test_a_gap_is_refused_and_changes_nothing():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1))
    phone.next_id += 1  # mutation 2 was lost on the phone

    with pytest.raises(MutationGap) as refused:
        phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1))

    assert refused.value.data["last_mutation_id"] == 1
    assert on_hand(product) == 9
    assert Device.objects.get(pk=phone.device.pk).last_mutation_id == 1


def test_mutation_ids_must_go_up_by_one_within_a_push():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    a = phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1)
    phone.next_id += 1
    b = phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1)

    with pytest.raises(InvalidInput):
        phone.push(a, b)
    assert on_hand(product) == 10


def test_a_rejected_mutation_advances_and_the_next_applies():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=0),
        phone.mutation("no.such.thing"),
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-3),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("rejected", "invalid"),
        ("rejected", "invalid"),
        ("applied", None),
    ]
    assert answer["last_mutation_id"] == 3
    assert on_hand(product) == 7
    assert Mutation.objects.get(device=phone.device, mutation_id=1).status == "rejected"


def test_offline_sales_of_3_and_2_from_10_leave_5():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    till, tablet = Phone(vendor, "Caisse"), Phone(vendor, "Tablette")
    till.pull_all(), tablet.pull_all()

    answers = in_threads(
        [
            lambda: till.push(till.mutation("stock.adjust", product_id=str(product.pk), delta=-3)),
            lambda: tablet.push(tablet.mutation("stock.adjust", product_id=str(product.pk), delta=-2)),
        ]
    )

    assert [a["results"][0]["status"] for a in answers] == ["applied", "applied"]
    assert on_hand(product) == 5
    till.pull_all(), tablet.pull_all()
    assert (
        till.copy("stock")[stock_id(product)]["on_hand"]
        == tablet.copy("stock")[stock_id(product)]["on_hand"]
        == 5
    )


def test_offline_sales_of_8_and_5_from_10_give_one_applied_and_one_conflict():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    till, tablet = Phone(vendor, "Caisse"), Phone(vendor, "Tablette")

    answers = in_threads(
        [
            lambda: till.push(till.mutation("stock.adjust", product_id=str(product.pk), delta=-8)),
            lambda: tablet.push(tablet.mutation("stock.adjust", product_id=str(product.pk), delta=-5)),
        ]
    )

    results = sorted((a["results"][0]["status"], a["results"][0]["code"]) for a in answers)
    assert results == [("applied", None), ("conflict", "impossible_stock")]
    conflict = SyncConflict.objects.get()
    assert conflict.kind == ConflictKind.IMPOSSIBLE_STOCK and conflict.status == ConflictStatus.OPEN
    assert conflict.device_value["delta"] in (-8, -5)
    assert conflict.server_value["on_hand"] in (2, 5)  # what was left after the other sale
    assert on_hand(product) in (2, 5) and on_hand(product) >= 0


def test_a_stale_price_update_becomes_a_conflict_staff_resolve_and_the_device_sees_it(staff_user):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    phone.pull_all()
    seen = phone.copy("products")[str(product.pk)]
    product_update(product=product, data={"price_xaf": 1200}, actor=STAFF)  # staff, meanwhile

    answer = phone.push(
        phone.mutation(
            "product.update",
            product_id=str(product.pk),
            base_version=seen["version"],
            fields={"price_xaf": 900, "name": "Savon de Marseille"},
        )
    )

    result = answer["results"][0]
    assert (result["status"], result["code"]) == ("conflict", "price")
    product.refresh_from_db()
    assert (product.price_xaf, product.name) == (1200, "Savon de Marseille")  # name: last writer wins
    conflict = SyncConflict.objects.get(pk=result["conflict_id"])
    assert conflict.device_value == {"fields": {"price_xaf": 900}}
    assert conflict.server_value["fields"]["price_xaf"] == 1200
    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["price_xaf"] == 1200
    assert phone.copy("conflicts")[str(conflict.pk)]["status"] == "open"

    staff = Actor.for_staff_user(_with_perm(staff_user, "resolve_syncconflict", "change_product"))
    conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff, note="prix du marché")

    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["price_xaf"] == 900
    assert phone.copy("conflicts")[str(conflict.pk)]["status"] == "applied_device"
    assert conflict.history.count() == 2  # opened, resolved  # type: ignore[attr-defined]


def _with_perm(user, *codenames: str):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@override_settings(OKADA_SYNC_LOCK_TIMEOUT_MS=WAIT * 1000)  # the push's wait ends with the race
@pytest.mark.parametrize("first", ["device", "api"])
def test_a_device_price_and_an_if_match_patch_at_once_lose_neither_silently(first):
    # Both changed the price from the version they read. Whichever takes the product's lock
    # first applies; the other, waiting for it, then sees the version moved: the PATCH is refused
    # (409 version_conflict), the device's change becomes a price conflict for staff. Never both
    # applied, the later one overwriting the earlier unseen.
    from catalog.services import VersionConflict

    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    phone.pull_all()
    base = phone.copy("products")[str(product.pk)]["version"]
    change = phone.mutation(
        "product.update", product_id=str(product.pk), base_version=base, fields={"price_xaf": 900}
    )
    integration = Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="integration")

    def device() -> dict:
        return phone.push(change)["results"][0]

    def api() -> Product:
        return product_update(
            product=product, data={"price_xaf": 1200}, actor=integration, expected_version=base
        )

    if first == "device":
        pushed, patched = race(device, api)
        assert pushed["status"] == "applied" and isinstance(patched, VersionConflict), (pushed, patched)
        assert Product.objects.get(pk=product.pk).price_xaf == 900
        assert not SyncConflict.objects.exists()
    else:
        patched, pushed = race(api, device)
        assert isinstance(patched, Product), (patched, pushed)
        assert (pushed["status"], pushed["code"]) == ("conflict", "price"), pushed
        assert Product.objects.get(pk=product.pk).price_xaf == 1200
        conflict = SyncConflict.objects.get(pk=pushed["conflict_id"])
        assert conflict.device_value == {"fields": {"price_xaf": 900}}
        assert conflict.server_value["fields"]["price_xaf"] == 1200


def test_a_price_update_on_a_stale_version_applies_when_the_price_did_not_move():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    phone.pull_all()
    base = phone.copy("products")[str(product.pk)]["version"]
    product_update(product=product, data={"description": "Lot de 3"}, actor=STAFF)

    answer = phone.push(
        phone.mutation(
            "product.update", product_id=str(product.pk), base_version=base, fields={"price_xaf": 900}
        )
    )

    assert answer["results"][0]["status"] == "applied"
    product.refresh_from_db()
    assert (product.price_xaf, product.description) == (900, "Lot de 3")


def test_an_update_of_a_product_deleted_meanwhile_keeps_it_deleted_and_records_the_update(staff_user):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    base = phone.copy("products")[str(product.pk)]["version"]
    product_soft_delete(product=product, actor=STAFF)

    answer = phone.push(
        phone.mutation(
            "product.update", product_id=str(product.pk), base_version=base, fields={"name": "Neuf"}
        )
    )

    assert (answer["results"][0]["status"], answer["results"][0]["code"]) == ("conflict", "delete_vs_update")
    assert Product.deleted_objects.filter(pk=product.pk).exists()
    phone.pull_all()
    assert str(product.pk) not in phone.copy("products")

    conflict = SyncConflict.objects.get()
    staff = Actor.for_staff_user(_with_perm(staff_user, "resolve_syncconflict"))
    conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=staff)
    assert Product.deleted_objects.filter(pk=product.pk).exists()


def test_stock_mutations_on_a_product_deleted_meanwhile_are_rejected_and_change_nothing():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    version = Stock.objects.get(product=product).version
    product_soft_delete(product=product, actor=STAFF)
    movements = StockMovement.objects.filter(product_id=product.pk).count()

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-2, reason="vente"),
        phone.mutation("stock.count", product_id=str(product.pk), on_hand=3, base_version=version),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "not_found")] * 2
    assert answer["last_mutation_id"] == 2
    assert on_hand(product) == 10
    assert StockMovement.objects.filter(product_id=product.pk).count() == movements


def test_a_stock_conflict_of_a_product_deleted_since_is_not_applied_by_staff(staff_user):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    answer = phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-20))
    assert answer["results"][0]["code"] == "impossible_stock"
    product_soft_delete(product=product, actor=STAFF)
    conflict = SyncConflict.objects.get()
    staff = Actor.for_staff_user(_with_perm(staff_user, "resolve_syncconflict", "adjust_stock"))

    with pytest.raises(NotFound):
        conflict_resolve(conflict=conflict, resolution=APPLY_DEVICE, actor=staff)

    assert SyncConflict.objects.get(pk=conflict.pk).status == ConflictStatus.OPEN
    assert on_hand(product) == 10


def test_a_delete_wins_over_a_change_made_meanwhile():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    base = phone.copy("products")[str(product.pk)]["version"]
    product_update(product=product, data={"name": "Changé"}, actor=STAFF)

    answer = phone.push(phone.mutation("product.delete", product_id=str(product.pk), base_version=base))

    assert answer["results"][0]["status"] == "applied"
    assert Product.deleted_objects.filter(pk=product.pk).exists()


def test_a_stock_count_applies_when_only_reservations_moved():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    phone.pull_all()
    seen = phone.copy("stock")[stock_id(product)]
    OrderFactory(vendor=vendor, items=[(product, 2)])  # reserves: version moves, on_hand does not

    counted = phone.push(
        phone.mutation(
            "stock.count",
            product_id=str(product.pk),
            on_hand=9,
            base_version=seen["version"],
            base_on_hand=10,
        )
    )
    assert counted["results"][0]["status"] == "applied"
    assert on_hand(product) == 9


def test_a_stock_count_conflicts_when_units_moved_and_changes_nothing():
    conflict, product = stale_count_conflict(VendorFactory())  # counted 8 after 5 units arrived

    pushed = Mutation.objects.get(device=conflict.device, mutation_id=conflict.mutation_id)
    assert (pushed.status, pushed.code, pushed.conflict_id) == ("conflict", "stale_count", conflict.pk)
    assert on_hand(product) == 15


def test_an_order_moved_meanwhile_gives_a_transition_conflict():
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    from orders.services import order_transition

    order_transition(order=order, to="cancelled", actor=STAFF)

    answer = phone.push(
        phone.mutation("order.transition", order_id=str(order.pk), to="accepted", base_status="pending")
    )

    assert (answer["results"][0]["status"], answer["results"][0]["code"]) == ("conflict", "stale_transition")
    assert Order.objects.get(pk=order.pk).status == "cancelled"


def test_an_order_transition_from_the_device_goes_through_the_lifecycle_rules():
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    phone = Phone(vendor)

    answer = phone.push(
        phone.mutation("order.transition", order_id=str(order.pk), to="accepted", base_status="pending"),
        phone.mutation("order.transition", order_id=str(order.pk), to="refunded", base_status="accepted"),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("applied", None),
        ("rejected", "invalid_transition"),
    ]
    assert Order.objects.get(pk=order.pk).status == "accepted"


@pytest.mark.parametrize(
    ("to", "base_status"),
    [("delivred", "pending"), ("accepted", "acepted"), ("zz", "accepted"), ("accepted", "")],
)
def test_an_order_transition_naming_no_status_is_rejected_invalid_and_records_no_conflict(to, base_status):
    # Found by fuzzing: a `to` that is no status was refused by the lifecycle (invalid_transition,
    # REST says invalid), and a `base_status` that is none opened a stale_transition conflict.
    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    phone = Phone(vendor)

    answer = phone.push(
        phone.mutation("order.transition", order_id=str(order.pk), to=to, base_status=base_status)
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "invalid")]
    assert not SyncConflict.objects.exists()
    assert Order.objects.get(pk=order.pk).status == "pending"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("stock.adjust", {"delta": -1, "reasn": "casse"}),
        ("stock.count", {"on_hand": 3, "base_version": 1, "base_onhand": 9}),
        ("product.update", {"base_version": 1, "fields": {"name": "Riz"}, "field": {"price_xaf": 1}}),
        ("product.delete", {"base_version": 1, "force": True}),
    ],
)
def test_a_mutation_with_an_unknown_argument_is_rejected_and_changes_nothing(name, args):
    # A typo (`reasn`) used to fall back to the default silently, as REST refuses unknown fields.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    phone = Phone(vendor)

    answer = phone.push(phone.mutation(name, product_id=str(product.pk), **args))

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "invalid")]
    typo = sorted(set(args) - {"delta", "on_hand", "base_version", "fields"})[0]
    assert typo in Mutation.objects.get(device__vendor=vendor).message  # what staff read
    product.refresh_from_db()
    assert (product.version, product.deleted_at, product.stock.on_hand) == (1, None, 5)
    assert not StockMovement.objects.filter(product=product).exclude(reason__icontains="initial").exists()


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
def test_a_stock_adjustment_with_a_blank_reason_is_applied_with_the_devices_default_reason(reason):
    # A blank reason was the ledger movement's reason. Refusing it (as REST refuses one) would
    # lose units that moved on the shelf: an app may send "" for "no reason typed". It takes the
    # default a device gets when it sends none; a reason sent is trimmed as REST trims it.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-2, reason=reason),
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1),
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-3, reason="  casse "),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("applied", None)] * 3
    assert on_hand(product) == 4
    adjustments = StockMovement.objects.filter(product_id=product.pk, kind="adjustment")
    assert list(adjustments.order_by("created_at").values_list("delta", "reason")) == [
        (-2, "adjusted on device"),
        (-1, "adjusted on device"),
        (-3, "casse"),
    ]


@pytest.mark.parametrize("base_version", ["x" * 1000, 1.5, -1, True, {"a": 1}, [1], 2**63])
def test_a_delete_whose_base_version_is_no_version_is_rejected_and_deletes_nothing(base_version):
    # `base_version` is not used by a delete, and anything at all was accepted there (a 1,000
    # character text, an object), where every other mutation rejects what is no version.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    phone = Phone(vendor)

    answer = phone.push(
        phone.mutation("product.delete", product_id=str(product.pk), base_version=base_version)
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "invalid")]
    assert "base_version" in Mutation.objects.get(device__vendor=vendor).message
    product.refresh_from_db()
    assert product.deleted_at is None
    # Without one, or with a version (even a stale one: the delete wins), it deletes.
    answer = phone.push(phone.mutation("product.delete", product_id=str(product.pk), base_version=0))
    assert [r["status"] for r in answer["results"]] == ["applied"]


def test_a_product_created_offline_keeps_its_id_and_takes_stock_changes():
    vendor = VendorFactory()
    phone = Phone(vendor)
    new_id = str(uuid.uuid4())

    answer = phone.push(
        phone.mutation(
            "product.create", id=new_id, sku="PLT-1", name="Plantain", price_xaf=500, initial_stock=6
        ),
        phone.mutation("stock.adjust", product_id=new_id, delta=-2),
        phone.mutation("product.create", id=str(uuid.uuid4()), sku="PLT-1", name="Double", price_xaf=500),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("applied", None),
        ("applied", None),
        ("rejected", "sku_taken"),
    ]
    product = Product.objects.get(pk=new_id)
    assert product.vendor_id == vendor.pk and on_hand(product) == 4
    phone.pull_all()
    assert phone.copy("products")[new_id]["sku"] == "PLT-1"


def test_a_sku_pushed_in_another_unicode_form_is_the_same_sku():
    # "É" typed as E + U+0301 on one phone and as one code point elsewhere: one SKU, stored NFC.
    vendor = VendorFactory()
    phone = Phone(vendor)
    new_id = str(uuid.uuid4())

    answer = phone.push(
        phone.mutation("product.create", id=new_id, sku="CAFE\u0301-1", name="Caf\u00e9", price_xaf=500),
        phone.mutation(
            "product.create", id=str(uuid.uuid4()), sku="CAF\u00c9-1", name="Double", price_xaf=500
        ),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("applied", None),
        ("rejected", "sku_taken"),
    ]
    assert list(Product.objects.filter(vendor=vendor).values_list("pk", "sku")) == [
        (uuid.UUID(new_id), "CAF\u00c9-1")
    ]
    phone.pull_all()
    assert phone.copy("products")[new_id]["sku"] == "CAF\u00c9-1"


def test_a_rejected_change_is_sent_back_so_the_device_drops_its_own_value():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    phone.pull_all()
    phone.tables["products"][str(product.pk)]["price_xaf"] = -5  # shown on the phone meanwhile

    answer = phone.push(
        phone.mutation("product.update", product_id=str(product.pk), base_version=1, fields={"price_xaf": -5})
    )

    assert answer["results"][0]["status"] == "rejected"
    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["price_xaf"] == 1000


def test_another_vendors_product_cannot_be_touched():
    ours, theirs = VendorFactory(), VendorFactory()
    their_product = ProductFactory(vendor=theirs, initial_stock=10)
    phone = Phone(ours)

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(their_product.pk), delta=-10),
        phone.mutation("product.delete", product_id=str(their_product.pk)),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [("rejected", "not_found")] * 2
    assert on_hand(their_product) == 10 and Product.objects.filter(pk=their_product.pk).exists()


@override_settings(OKADA_SYNC_LOCK_TIMEOUT_MS=200)
def test_a_busy_database_answers_try_again_and_the_retry_applies():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    phone = Phone(vendor)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Product.objects.select_for_update().get(pk=product.pk)
                locked.set()
                assert release.wait(WAIT)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    rename = phone.mutation(
        "product.update", product_id=str(product.pk), base_version=1, fields={"name": "Nouveau"}
    )
    try:
        assert locked.wait(WAIT)
        with pytest.raises(TryAgain) as busy:
            phone.push(rename)
    finally:
        release.set()
        holder.join(WAIT)

    assert busy.value.status == 503 and busy.value.data["last_mutation_id"] == 0
    assert Device.objects.get(pk=phone.device.pk).last_mutation_id == 0
    assert not Mutation.objects.exists()
    assert phone.push(rename)["results"][0]["status"] == "applied"
    assert Product.objects.get(pk=product.pk).name == "Nouveau"


def test_a_revoked_device_cannot_push():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=3)
    phone = Phone(vendor)
    device_revoke(device=phone.device, actor=STAFF, reason="volé")

    with pytest.raises(DeviceRevoked):
        phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-3))
    assert on_hand(product) == 3


@pytest.mark.parametrize(
    "mutations",
    [
        [],
        "x",
        [{"id": 0, "name": "stock.adjust", "args": {}}],
        [{"id": True, "name": "stock.adjust", "args": {}}],
        [{"name": "stock.adjust", "args": {}}],
        ["stock.adjust"],
    ],
)
def test_bad_push_input_is_refused(mutations):
    from sync.push import push

    phone = Phone(VendorFactory())
    with pytest.raises(InvalidInput):
        push(actor=phone.actor, device_id=phone.device.pk, mutations=mutations)


def test_a_mutation_that_cannot_be_read_is_rejected_alone_and_its_retry_replays_the_code():
    from sync.push import push

    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    phone = Phone(vendor)
    mutations = [
        {"id": 1, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -1}, "more": 1},
        {"id": 2, "name": "stock.split", "args": {"product_id": str(product.pk)}},
        {"id": 3, "name": "stock.adjust", "args": [str(product.pk), -1]},
        {"id": 4, "name": "stock.adjust", "args": {"product_id": str(product.pk), "delta": -1}},
    ]

    first = push(actor=phone.actor, device_id=phone.device.pk, mutations=mutations).as_dict()
    again = push(actor=phone.actor, device_id=phone.device.pk, mutations=mutations).as_dict()

    assert [(r["status"], r["code"]) for r in first["results"]] == [("rejected", "invalid")] * 3 + [
        ("applied", None)
    ]
    assert [(r["status"], r["code"]) for r in again["results"]] == [("duplicate", "invalid")] * 3 + [
        ("duplicate", None)
    ]
    assert first["last_mutation_id"] == again["last_mutation_id"] == 4
    assert on_hand(product) == 9
    stored = {m.mutation_id: (m.name, m.args) for m in Mutation.objects.filter(device=phone.device)}
    assert stored[2] == ("stock.split", {"product_id": str(product.pk)})
    assert stored[3] == ("stock.adjust", {})  # not an object: not kept as args


# --- Rows deleted between lookup and lock: a 404 or a rejected mutation, never a 500 ------------


@pytest.mark.django_db(transaction=True)
def test_a_push_from_a_device_deleted_meanwhile_is_not_found():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=3)
    phone = Phone(vendor)

    deleted, pushed = race(
        lambda: Device.objects.filter(pk=phone.device.pk).delete(),
        lambda: phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1)),
    )

    assert deleted[0] == 1, (deleted, pushed)
    assert isinstance(pushed, NotFound), (deleted, pushed)
    assert on_hand(product) == 3


@pytest.mark.django_db(transaction=True)
def test_a_count_of_a_product_deleted_for_good_meanwhile_is_rejected_as_not_found():
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=3)
    phone = Phone(vendor)

    deleted, pushed = race(
        # its own copy: a deleted instance loses its pk, which the other thread still reads
        lambda: tracked_hard_delete(obj=Product.objects.get(pk=product.pk), actor=Actor.system("test")),
        lambda: phone.push(
            phone.mutation("stock.count", product_id=str(product.pk), on_hand=7, base_version=1)
        ),
    )

    assert deleted is None, (deleted, pushed)
    assert not isinstance(pushed, Exception), (deleted, pushed)
    assert [(r["status"], r["code"]) for r in pushed["results"]] == [("rejected", "not_found")]
    assert Device.objects.get(pk=phone.device.pk).last_mutation_id == 1


def test_two_devices_creating_one_product_id_at_once_apply_it_once_and_reject_the_other():
    # One vendor app restored from a backup onto two phones replays the same queued create (the
    # id the app chose) from both. The second waits on the first's primary key, then must be
    # rejected like a create of an id already taken, not fail the whole push (a 500).
    vendor = VendorFactory()
    phones = Phone(vendor, "Caisse 1"), Phone(vendor, "Caisse 2")
    product_id = str(uuid.uuid4())
    first, second = (
        phone.mutation("product.create", id=product_id, sku=sku, name="Mangue", price_xaf=300)
        for phone, sku in zip(phones, ("MNG-1", "MNG-2"), strict=True)
    )

    applied, rejected = race(lambda: phones[0].push(first), lambda: phones[1].push(second))

    assert isinstance(applied, dict) and isinstance(rejected, dict), (applied, rejected)
    assert applied["results"] == [{"id": 1, "status": "applied", "code": None, "conflict_id": None}]
    assert rejected["results"] == [{"id": 1, "status": "rejected", "code": "invalid", "conflict_id": None}]
    assert rejected["last_mutation_id"] == 1
    assert list(Product.all_objects.filter(vendor=vendor).values_list("pk", "sku")) == [
        (uuid.UUID(product_id), "MNG-1")
    ]


def test_a_suspended_vendors_device_keeps_its_shelf_facts_for_staff_changes_no_product_and_moves_its_orders(
    client, admin_user
):
    # Offline while Okada suspended its vendor, the phone sold at the counter and counted the
    # shelf: facts that happened, kept for staff as conflicts (vendor_suspended), not lost. Its
    # catalog changes are the vendor's intent: refused (vendor_suspended), recorded with their args.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000, initial_stock=10)
    shelf = ProductFactory(vendor=vendor, initial_stock=5)
    gone = ProductFactory(vendor=vendor)
    order = OrderFactory(vendor=vendor)
    phone = Phone(vendor)
    phone.pull_all()
    seen = phone.copy("products")[str(product.pk)]
    stock_seen = phone.copy("stock")[stock_id(product)]
    shelf_seen = phone.copy("stock")[stock_id(shelf)]
    product_soft_delete(product=gone, actor=STAFF)
    # Staff moved the price and the stock meanwhile: the device's count of that stock is stale,
    # a conflict stale_count as for any vendor (never applied from the list over the restock).
    product_update(product=product, data={"price_xaf": 1100}, actor=STAFF)
    stock_adjust(product=product, delta=2, reason="livraison", actor=STAFF)
    vendor_suspend(vendor=vendor, actor=STAFF)

    def catalog_state() -> tuple[object, ...]:
        return (
            sorted(
                Product.all_objects.filter(vendor=vendor).values_list(
                    "id", "price_xaf", "version", "deleted_at"
                )
            ),
            sorted(Stock.objects.filter(vendor=vendor).values_list("pk", "on_hand", "version")),
            StockMovement.objects.filter(vendor_id=vendor.pk).count(),
        )

    before = catalog_state()

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=-2, reason="vente"),
        phone.mutation(
            "stock.count",
            product_id=str(shelf.pk),
            on_hand=4,
            base_version=shelf_seen["version"],
            base_on_hand=5,
        ),
        phone.mutation(
            "stock.count",
            product_id=str(product.pk),
            on_hand=9,
            base_version=stock_seen["version"],
            base_on_hand=10,
        ),
        phone.mutation("product.create", id=str(uuid.uuid4()), sku="NEW-1", name="Mil", price_xaf=300),
        phone.mutation(
            "product.update",
            product_id=str(product.pk),
            base_version=seen["version"],
            fields={"price_xaf": 900},
        ),
        phone.mutation("product.delete", product_id=str(product.pk)),
        phone.mutation("product.delete", product_id=str(gone.pk)),
        phone.mutation("order.transition", order_id=str(order.pk), to="accepted", base_status="pending"),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("conflict", "vendor_suspended"),
        ("conflict", "vendor_suspended"),
        ("conflict", "stale_count"),
        *[("rejected", "vendor_suspended")] * 4,
        ("applied", None),
    ]
    assert answer["last_mutation_id"] == 8
    assert catalog_state() == before  # nothing applied yet; accepting an order moves no stock
    assert Order.objects.get(pk=order.pk).status == "accepted"
    conflicts = {c.mutation_id: c for c in SyncConflict.objects.filter(device=phone.device)}
    assert sorted(conflicts) == [1, 2, 3]
    assert all(c.status == ConflictStatus.OPEN for c in conflicts.values())
    sale, count = conflicts[1], conflicts[2]
    assert (sale.entity, sale.row_id) == ("stock", uuid.UUID(stock_id(product)))
    assert sale.device_value == {"product_id": str(product.pk), "delta": -2, "reason": "vente"}
    assert sale.server_value["on_hand"] == 12
    assert (count.entity, count.row_id, count.base_version) == (
        "stock",
        uuid.UUID(stock_id(shelf)),
        shelf_seen["version"],
    )
    assert count.device_value == {"product_id": str(shelf.pk), "on_hand": 4, "base_on_hand": 5}
    assert count.server_value["on_hand"] == 5
    # The rejections are recorded like any other, with what the device sent.
    rejected = Mutation.objects.filter(device=phone.device, status="rejected").order_by("mutation_id")
    assert [(m.name, m.code) for m in rejected] == [
        ("product.create", "vendor_suspended"),
        ("product.update", "vendor_suspended"),
        ("product.delete", "vendor_suspended"),
        ("product.delete", "vendor_suspended"),
    ]
    assert rejected[1].args == {
        "product_id": str(product.pk),
        "base_version": seen["version"],
        "fields": {"price_xaf": 900},
    }
    # The device still pulls (reads are allowed): the server's rows replace what it showed, and
    # its conflicts come with their kind.
    phone.pull_all()
    assert phone.copy("products")[str(product.pk)]["price_xaf"] == 1100
    assert phone.copy("stock")[stock_id(product)]["on_hand"] == 12
    assert phone.copy("orders")[str(order.pk)]["status"] == "accepted"
    assert phone.copy("conflicts")[str(sale.pk)]["kind"] == "vendor_suspended"
    client.force_login(admin_user)
    reads_in_its_language(
        client,
        f"/admin/sync/mutation/{rejected[0].pk}/change/",
        "Ce vendeur est suspendu",
        "This vendor is suspended",
    )


def test_a_suspended_vendors_bad_stock_mutation_is_still_rejected_for_what_is_wrong_with_it():
    """Only a change staff could apply is kept as a conflict: a bad delta, an unknown or deleted
    product are rejected as for any vendor, and no conflict is left for staff."""
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    gone = ProductFactory(vendor=vendor, initial_stock=3)
    phone = Phone(vendor)
    product_soft_delete(product=gone, actor=STAFF)
    vendor_suspend(vendor=vendor, actor=STAFF)

    answer = phone.push(
        phone.mutation("stock.adjust", product_id=str(product.pk), delta=0),
        phone.mutation("stock.adjust", product_id=str(uuid.uuid4()), delta=1),
        phone.mutation("stock.adjust", product_id=str(gone.pk), delta=1),
        phone.mutation("stock.count", product_id=str(gone.pk), on_hand=1, base_version=1),
        phone.mutation("stock.count", product_id=str(product.pk), on_hand=-1, base_version=1),
    )

    assert [(r["status"], r["code"]) for r in answer["results"]] == [
        ("rejected", "invalid"),
        ("rejected", "not_found"),
        ("rejected", "not_found"),
        ("rejected", "not_found"),
        ("rejected", "invalid"),
    ]
    assert not SyncConflict.objects.exists()
    assert on_hand(product) == 10


def test_staff_apply_or_discard_what_a_suspended_vendors_device_recorded_on_the_shelf():
    from okada.core.roles import OPERATIONS
    from tests.catalog.factories import role_user
    from tests.sync.factories import suspended_vendor_stock_conflicts

    sale, count, product = suspended_vendor_stock_conflicts(VendorFactory())
    operations = Actor.for_staff_user(role_user(OPERATIONS))
    movements = StockMovement.objects.filter(product_id=product.pk)
    assert (on_hand(product), movements.count()) == (10, 1)  # the initial stock only

    conflict_resolve(conflict=sale, resolution=APPLY_DEVICE, actor=operations)
    assert on_hand(product) == 8
    sold = movements.latest("created_at")
    assert (sold.kind, sold.delta, sold.reason) == ("adjustment", -2, "vente")
    # The count was recorded on 10 on hand; the sale applied since moved them: applied only
    # from its page, by staff who saw the current value (the stale-count rules).
    conflict_resolve(
        conflict=count, resolution=APPLY_DEVICE, actor=operations, opened_at=_stock_updated(product)
    )
    assert on_hand(product) == 7
    counted = movements.latest("created_at")
    assert (counted.kind, counted.delta) == ("count", -1)
    assert SyncConflict.objects.get(pk=count.pk).status == ConflictStatus.APPLIED_DEVICE
    assert not stock_audit()


def _stock_updated(product: Product) -> str:
    return Stock.objects.get(product=product).updated_at.isoformat()


def test_staff_keep_the_server_value_of_a_suspended_vendors_shelf_changes():
    from okada.core.roles import OPERATIONS
    from tests.catalog.factories import role_user
    from tests.sync.factories import suspended_vendor_stock_conflicts

    sale, count, product = suspended_vendor_stock_conflicts(VendorFactory())
    operations = Actor.for_staff_user(role_user(OPERATIONS))

    for conflict in (sale, count):
        conflict_resolve(conflict=conflict, resolution=KEEP_SERVER, actor=operations)

    assert on_hand(product) == 10
    assert StockMovement.objects.filter(product_id=product.pk).count() == 1
    assert set(SyncConflict.objects.values_list("status", flat=True)) == {ConflictStatus.KEPT_SERVER}


def test_a_suspended_vendors_count_is_not_applied_before_the_sale_the_device_made_before_it():
    """The device sold 2, then counted what was left: applied the other way round, the count
    and then the sale, the shelf's 7 would read 5. Staff resolve a device's conflicts on one row
    in the order the device made them (discarding the earlier one is always allowed)."""
    from okada.core.roles import OPERATIONS
    from sync.services import EarlierConflictOpen
    from tests.catalog.factories import role_user
    from tests.sync.factories import suspended_vendor_stock_conflicts

    sale, count, product = suspended_vendor_stock_conflicts(VendorFactory())
    operations = Actor.for_staff_user(role_user(OPERATIONS))

    with pytest.raises(EarlierConflictOpen):
        conflict_resolve(conflict=count, resolution=APPLY_DEVICE, actor=operations)
    assert (on_hand(product), SyncConflict.objects.get(pk=count.pk).status) == (10, ConflictStatus.OPEN)

    conflict_resolve(conflict=sale, resolution=KEEP_SERVER, actor=operations)
    conflict_resolve(conflict=count, resolution=APPLY_DEVICE, actor=operations)
    assert on_hand(product) == 7
