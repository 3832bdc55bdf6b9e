"""seed_demo: sizes, determinism, and the same invariants the services keep (stock = ledger,
totals, lifecycle, payments, history), on a small data set built in the test's transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, models, transaction

from catalog.models import Category, Product, Stock, StockMovement, Vendor
from okada.core.fields import normalize_cm_phone
from okada.demo import data
from okada.demo.seed import COLUMNS, HISTORY_TABLES, SeedConfig, SeedError, seed_demo
from okada.partitions.ddl import add_months, ensure_month_partitions
from orders.audit import invariant_audit
from orders.models import OPEN_STATUSES, Customer, Order, OrderEvent, OrderItem, Payment, Zone
from orders.services import TRANSITIONS
from tests.catalog.factories import VendorFactory
from tests.ids import uuid7_time

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
SMALL = SeedConfig(vendors=3, products_per_vendor=10, customers=20, orders=40, months=2, seed=7, now=NOW)


def rows(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture
def seeded():
    return seed_demo(SMALL)


def fingerprint() -> dict[str, Any]:
    """Everything a seed decides, order numbers made relative (the sequence is not rolled back)."""
    first = min(int(n[3:]) for n in Order.objects.values_list("number", flat=True))
    return {
        "vendors": sorted(Vendor.objects.values_list("id", "slug", "name", "phone", "status", "created_at")),
        "products": sorted(Product.objects.values_list("id", "vendor__slug", "sku", "name", "price_xaf")),
        "customers": sorted(Customer.objects.values_list("id", "phone", "name", "zone__name")),
        "orders": sorted(
            (int(o[0][3:]) - first, *o[1:])
            for o in Order.objects.values_list(
                "number", "id", "placed_at", "status", "payment_status", "total_xaf", "customer__phone"
            )
        ),
        "items": sorted(OrderItem.objects.values_list("order_id", "sku", "quantity", "line_total_xaf")),
        "events": sorted(OrderEvent.objects.values_list("id", "order_id", "kind", "to_status", "created_at")),
        "ledger": sorted(
            StockMovement.objects.values_list("id", "product_id", "kind", "delta", "created_at")
        ),
        "stock": sorted(Stock.objects.values_list("product_id", "on_hand", "reserved", "version")),
    }


# --- sizes and determinism ----------------------------------------------------------------------


def test_counts_match_the_options(seeded):
    assert Vendor.objects.count() == 3
    assert Product.objects.count() == 30
    assert Stock.objects.count() == 30
    assert Customer.objects.count() == 20
    assert Order.objects.count() == 40
    assert Zone.objects.count() == len(data.ZONES)
    assert Category.objects.filter(parent__isnull=True).count() == len(data.CATEGORIES)
    # what the result reports is what is in the tables
    for table, count in seeded.counts.items():
        assert rows(f"SELECT count(*) FROM {table}")[0][0] == count, table  # noqa: S608
    assert seeded.rows == sum(seeded.counts.values()) and seeded.rows_per_second > 0


def test_same_seed_same_data_whatever_the_load_path():
    fingerprints = []
    for config, bulk in ((SMALL, False), (SMALL, True), (dataclasses.replace(SMALL, seed=8), False)):
        with transaction.atomic():
            seed_demo(config, bulk=bulk)
            fingerprints.append(fingerprint())
            transaction.set_rollback(True)
    plain, bulk_loaded, other_seed = fingerprints
    assert plain == bulk_loaded
    assert plain["products"] != other_seed["products"]
    assert plain["orders"] != other_seed["orders"]


def test_refuses_a_database_that_already_has_marketplace_data(seeded):
    with pytest.raises(SeedError, match="already holds"):
        seed_demo(SMALL)


# --- stock and ledger ---------------------------------------------------------------------------

LEDGER_SQL = """
SELECT s.product_id, s.on_hand, s.reserved,
       coalesce(sum(m.delta) FILTER (WHERE m.kind = ANY(%s)), 0),
       coalesce(sum(m.delta) FILTER (WHERE m.kind = ANY(%s)), 0)
FROM catalog_stock s LEFT JOIN catalog_stockmovement m ON m.product_id = s.product_id
GROUP BY s.product_id, s.on_hand, s.reserved
"""


def test_stock_equals_the_ledger_for_every_product(seeded):
    ledger = rows(LEDGER_SQL, [list(StockMovement.ON_HAND_KINDS), list(StockMovement.RESERVED_KINDS)])
    assert len(ledger) == 30
    assert [r for r in ledger if (r[1], r[2]) != (r[3], r[4])] == []
    assert all(0 <= reserved <= on_hand for _, on_hand, reserved, _, _ in ledger)
    assert StockMovement.objects.filter(kind="sale").exists()
    assert StockMovement.objects.filter(kind="release").exists()


def test_reserved_stock_is_what_open_orders_hold(seeded):
    held: dict[Any, int] = defaultdict(int)
    for product_id, quantity in OrderItem.objects.filter(
        order__status__in=["pending", "accepted", "preparing", "ready"]
    ).values_list("product_id", "quantity"):
        held[product_id] += quantity
    reserved = {pid: r for pid, r in Stock.objects.values_list("product_id", "reserved") if r}
    assert reserved == dict(held)
    assert reserved, "the newest orders are still open"


def test_stock_never_went_negative_at_any_time():
    """Replaying the ledger in time order: on_hand >= reserved >= 0 after every instant, in a
    busy shop whose shelves run out, so that restocks must arrive before the orders need them."""
    busy = dataclasses.replace(SMALL, vendors=1, products_per_vendor=5, customers=10, orders=300)
    seed_demo(busy)
    assert StockMovement.objects.filter(kind="restock").exclude(reason="initial stock").count() > 5
    history = rows(
        """
        WITH per_instant AS (
            SELECT product_id, created_at,
                   sum(delta) FILTER (WHERE kind = ANY(%s)) AS d_on_hand,
                   sum(delta) FILTER (WHERE kind = ANY(%s)) AS d_reserved
            FROM catalog_stockmovement GROUP BY product_id, created_at)
        SELECT product_id, created_at,
               sum(coalesce(d_on_hand, 0)) OVER w, sum(coalesce(d_reserved, 0)) OVER w
        FROM per_instant WINDOW w AS (PARTITION BY product_id ORDER BY created_at)
        """,
        [list(StockMovement.ON_HAND_KINDS), list(StockMovement.RESERVED_KINDS)],
    )
    assert len(history) > 300
    assert [r for r in history if not 0 <= r[3] <= r[2]] == []
    ledger = rows(LEDGER_SQL, [list(StockMovement.ON_HAND_KINDS), list(StockMovement.RESERVED_KINDS)])
    assert [r for r in ledger if (r[1], r[2]) != (r[3], r[4])] == []


def test_ledger_rows_sit_in_their_monthly_partitions(seeded):
    assert rows("SELECT count(*) FROM catalog_stockmovement_default")[0][0] == 0
    assert rows("SELECT count(*) FROM orders_orderevent_default")[0][0] == 0


ID_TABLES = [Zone, Category, Vendor, Product, Stock, StockMovement]
ID_TABLES += [Customer, Order, OrderItem, OrderEvent, Payment]


def test_every_id_is_a_uuid7_of_its_rows_creation_second(seeded):
    # Like the ids the application makes, so the seeded indexes have production's shape.
    for model in ID_TABLES:
        made = model._base_manager.values_list("pk", "created_at")
        assert made, model.__name__
        for pk, created_at in made:  # the seed's times are whole seconds; ids add the millisecond
            assert created_at <= uuid7_time(pk) < created_at + dt.timedelta(seconds=1), model.__name__


# --- orders -------------------------------------------------------------------------------------


def test_order_totals_add_up_and_items_snapshot_the_product(seeded):
    products = {p.pk: p for p in Product.objects.all()}
    for order in Order.objects.select_related("zone").prefetch_related("items"):
        items = list(order.items.all())
        assert items
        assert order.subtotal_xaf == sum(i.line_total_xaf for i in items)
        assert order.total_xaf == order.subtotal_xaf + order.delivery_fee_xaf
        assert order.delivery_fee_xaf == order.zone.delivery_fee_xaf
        assert len({i.product_id for i in items}) == len(items)
        for item in items:
            product = products[item.product_id]
            assert product.vendor_id == order.vendor_id
            assert (item.sku, item.name, item.unit_price_xaf) == (
                product.sku,
                product.name,
                product.price_xaf,
            )
            assert item.line_total_xaf == item.unit_price_xaf * item.quantity


def test_each_orders_events_walk_the_lifecycle_to_its_status(seeded):
    events: dict[Any, list[OrderEvent]] = defaultdict(list)
    for event in OrderEvent.objects.exclude(kind="payment").order_by("created_at"):
        events[event.order_id].append(event)
    statuses = set()
    for order in Order.objects.all():
        timeline = events[order.pk]
        assert (timeline[0].kind, timeline[0].to_status) == ("placed", "pending")
        assert timeline[0].created_at == order.placed_at
        for before, after in pairwise(timeline):
            assert after.kind == "status"
            assert after.from_status == before.to_status
            assert (after.from_status, after.to_status) in TRANSITIONS
        assert timeline[-1].to_status == order.status
        assert all(e.created_at <= NOW for e in timeline)
        statuses.add(order.status)
    # Old orders are finished; the burst of the last four hours leaves some still open.
    assert "delivered" in statuses and statuses & set(OPEN_STATUSES)


def test_paid_orders_have_one_payment_of_their_total(seeded):
    payments = defaultdict(list)
    for payment in Payment.objects.all():
        payments[payment.order_id].append(payment)
    for order in Order.objects.all():
        if order.payment_status == "unpaid":
            assert payments[order.pk] == []
            continue
        (payment,) = payments[order.pk]
        assert (payment.provider, payment.amount_xaf, payment.status) == (
            order.payment_method,
            order.total_xaf,
            "succeeded",
        )
        assert payment.paid_at is not None and payment.paid_at >= order.placed_at
    for order in Order.objects.filter(status="expired"):
        assert order.payment_method != "cash" and order.payment_status == "unpaid"
        assert order.expires_at is not None


def test_a_seeded_marketplace_passes_the_invariant_audit(seeded):
    report = invariant_audit()
    assert report.findings == 0, report.samples
    assert Order.objects.filter(payment_status="paid").exists()  # the paid check had rows to read


def test_order_numbers_come_from_the_sequence_made_by_the_sql_definition(order_number_sequence):
    # Across the 7-digit boundary: the seed makes numbers as okada_order_place does.
    order_number_sequence(9_999_980)
    seed_demo(SMALL)
    expected = [n for (n,) in rows("SELECT okada_order_number(n) FROM generate_series(9999981, 10000020) n")]
    by_number = list(Order.objects.by_number().values_list("number", "placed_at"))
    assert [number for number, _ in by_number] == expected
    assert [placed for _, placed in by_number] == sorted(placed for _, placed in by_number)
    last = rows("SELECT last_value FROM orders_order_number_seq")[0][0]
    assert last == 10_000_020  # the next order the service places gets a fresh number


# --- people -------------------------------------------------------------------------------------


def test_phones_are_valid_unique_cameroonian_mobiles(seeded):
    phones = [
        *Vendor.objects.values_list("phone", flat=True),
        *Customer.objects.values_list("phone", flat=True),
    ]
    assert len(phones) == len(set(phones)) == 23
    for phone in phones:
        assert normalize_cm_phone(phone) == phone
        assert int(phone[4:7]) in data.MOBILE_PREFIXES


def test_every_mobile_prefix_makes_valid_numbers():
    for prefix in data.MOBILE_PREFIXES:
        for rest in ("000000", "123456", "999999"):
            assert normalize_cm_phone(f"+237{prefix}{rest}") == f"+237{prefix}{rest}"


def test_customers_and_vendors_live_in_douala_or_yaounde_zones(seeded):
    for customer in Customer.objects.select_related("zone"):
        assert customer.zone is not None
        assert customer.zone.name in customer.default_address
    for order in Order.objects.select_related("vendor", "zone"):
        assert order.zone.city == order.vendor.city


# --- history ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Zone, Category, Vendor, Product, Customer, Order])
def test_every_tracked_row_has_its_creation_in_history(seeded, model):
    history = model.history.model
    created = history.objects.filter(history_type="+", history_change_reason="seed_demo")
    assert sorted(created.values_list("id", flat=True)) == sorted(
        model.all_objects.values_list("id", flat=True)
    )
    assert not created.filter(history_user__isnull=False).exists()


def test_order_history_ends_with_the_current_state(seeded):
    history = Order.history.model
    for order in Order.objects.all():
        last = history.objects.filter(id=order.pk).order_by("-history_date", "-history_id").first()
        assert (last.status, last.payment_status, last.total_xaf) == (
            order.status,
            order.payment_status,
            order.total_xaf,
        )
        assert history.objects.filter(id=order.pk, history_type="+").get().status == "pending"


# --- the bulk path leaves the schema as it found it ---------------------------------------------


def test_bulk_load_restores_indexes_and_foreign_key_checks():
    # The period's partitions first, so that the comparison sees only the drop and rebuild.
    for table in ("catalog_stockmovement", "orders_orderevent"):
        ensure_month_partitions(table, add_months(NOW.date(), -9), add_months(NOW.date(), 1))
    schema_sql = (
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND (tablename LIKE 'catalog%%' OR tablename LIKE 'orders%%') ORDER BY 2"
    )
    indexes = rows(schema_sql)
    assert len(indexes) > 100

    seed_demo(SMALL, bulk=True)

    assert rows(schema_sql) == indexes
    assert rows("SHOW session_replication_role")[0][0] == "origin"
    order = Order.objects.order_by("pk")[0]
    with transaction.atomic(), pytest.raises(IntegrityError):  # foreign keys are checked again
        connection.cursor().execute("SET CONSTRAINTS ALL IMMEDIATE")
        OrderItem.objects.create(
            order=order,
            product_id=order.vendor_id,  # not a product
            sku="X",
            name="x",
            unit_price_xaf=1,
            quantity=1,
            line_total_xaf=1,
        )


# --- the command ----------------------------------------------------------------------------------


def test_command_if_empty_loads_once_then_does_nothing():
    args = {"vendors": 2, "products_per_vendor": 4, "customers": 5, "orders": 6, "months": 1, "seed": 3}
    out = io.StringIO()
    call_command("seed_demo", if_empty=True, stdout=out, verbosity=0, **args)
    assert "rows in" in out.getvalue()
    counts = (Vendor.objects.count(), Product.objects.count(), Order.objects.count())
    assert counts == (2, 8, 6)

    out = io.StringIO()
    call_command("seed_demo", if_empty=True, stdout=out, verbosity=0, **args)
    assert "already has marketplace data" in out.getvalue()
    assert (Vendor.objects.count(), Product.objects.count(), Order.objects.count()) == counts

    with pytest.raises(CommandError, match="already holds"):
        call_command("seed_demo", stdout=io.StringIO(), verbosity=0, **args)


@pytest.mark.parametrize("bad", [{"orders": -5}, {"months": 0}, {"now": dt.datetime(2026, 1, 1)}])
def test_command_if_empty_still_rejects_bad_options(bad):
    # `seed_demo --orders -5 --if-empty` on a database with data said "not loaded" and exited 0:
    # the typo went unseen until the database was empty and the options were read at last.
    VendorFactory()
    with pytest.raises(CommandError):
        call_command("seed_demo", if_empty=True, stdout=io.StringIO(), verbosity=0, **bad)


def test_command_rejects_bad_sizes():
    with pytest.raises(CommandError):
        call_command("seed_demo", months=0, stdout=io.StringIO(), verbosity=0)
    with pytest.raises(CommandError):
        call_command("seed_demo", "--now=2026-01-01T00:00:00", stdout=io.StringIO(), verbosity=0)


@pytest.mark.parametrize(
    "args",
    [
        ["--now=0001-01-01T00:00:00+00:00"],  # a slip of the date: once a traceback (year 0)
        ["--months=100000"],  # once a traceback (year -6308)
        ["--now=1970-03-01T00:00:00+00:00"],  # before 1970: ids that wrapped around, no error
        ["--now=9999-12-15T00:00:00+00:00"],  # its next month's partition is past year 9999
    ],
)
def test_command_refuses_a_period_ids_and_partitions_cannot_hold_and_writes_nothing(args):
    with pytest.raises(CommandError, match=r"between 1970 and 9999"):
        call_command("seed_demo", *args, "--vendors=1", "--customers=2", stdout=io.StringIO(), verbosity=0)
    assert not Vendor.all_objects.exists()
    assert rows("SELECT count(*) FROM catalog_stockmovement")[0][0] == 0


# --- the seed's own tables ------------------------------------------------------------------------


def _columns(model: type[models.Model]) -> set[str]:
    return {f.column for f in model._meta.concrete_fields if not isinstance(f, models.GeneratedField)}


@pytest.mark.parametrize(
    "model",
    [Zone, Category, Vendor, Product, Customer, Order, OrderItem, Payment, OrderEvent, StockMovement, Stock],
)
def test_seed_columns_are_the_models_columns(model):
    table = model._meta.db_table
    assert set(COLUMNS[table].split(", ")) == _columns(model)
    if table in HISTORY_TABLES:
        history = model.history.model
        expected = _columns(history) - {"history_id"}
        assert (
            set(
                f"{COLUMNS[table]}, history_date, history_change_reason, history_type, history_user_id".split(
                    ", "
                )
            )
            == expected
        )


def test_reference_data_is_safe_to_write_as_copy_text():
    def strings(value: Any):
        if isinstance(value, str):
            yield value
        elif isinstance(value, tuple):
            for v in value:
                yield from strings(v)

    everything = [getattr(data, name) for name in dir(data) if name.isupper()]
    texts = list(strings(tuple(everything)))
    assert len(texts) > 500
    assert [t for t in texts if any(c in t for c in "\t\n\r\\")] == []


def test_seed_demo_is_a_command_of_the_demo_app_not_of_the_core():
    from django.core.management import get_commands

    assert get_commands()["seed_demo"] == "okada.demo"
