"""Data written by the orders migrations: run their SQL on rows as they were before."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from okada.core.actors import Actor
from orders.models import CustomerAlias, Order, OrderEvent, Payment
from orders.services import payment_refund_settle
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.orders.factories import CustomerFactory, OrderFactory, payment_needing_refund

pytestmark = pytest.mark.django_db

FLAGGED_AT = import_module("orders.migrations.0020_payment_refund_flagged_at")
V8 = import_module("orders.migrations.0030_order_place_v8_customer_name")
V9 = import_module("orders.migrations.0034_order_place_v9_customer_before_stock")
V10 = import_module("orders.migrations.0038_order_place_v10_alias_under_lock")
ALIASES = import_module("orders.migrations.0036_customer_alias")


def flag_event_at(payment: Payment):
    return OrderEvent.objects.get(order_id=payment.order_id, kind="note", data__needs_refund=True).created_at


def test_refunds_owed_before_the_column_get_the_time_of_their_flag_event_or_else_of_the_money():
    owed = payment_needing_refund(key="owed")
    settled = payment_needing_refund(key="settled")
    payment_refund_settle(payment=settled, actor=Actor.system("test"), note="rendu")
    unflagged_event = payment_needing_refund(key="no-event")
    with connection.cursor() as cursor:
        # The timeline is append-only (migration 0025): this rewrite of it, made to build an old
        # row, is undone with the test's transaction, like the trigger's disabling.
        cursor.execute("ALTER TABLE orders_orderevent DISABLE TRIGGER okada_append_only")
    OrderEvent.objects.filter(order_id=unflagged_event.order_id, kind="note").update(
        data={"needs_refund": True, "payment_id": "another payment"}
    )
    paid_at = timezone.now() - timedelta(hours=2)
    long_ago = timezone.now() - timedelta(days=9)
    with connection.cursor() as cursor:
        # As before migration 0020: no column value (its CHECK dropped with the test's transaction).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys checked now: ALTER may run
        cursor.execute("ALTER TABLE orders_payment DROP CONSTRAINT orders_payment_owed_since")
        cursor.execute("UPDATE orders_payment SET refund_flagged_at = NULL, created_at = %s", [long_ago])
        cursor.execute("UPDATE orders_payment SET paid_at = %s WHERE id = %s", [paid_at, unflagged_event.pk])

        cursor.execute(FLAGGED_AT.BACKFILL)

    flagged = dict(Payment.objects.values_list("pk", "refund_flagged_at"))
    assert flagged[owed.pk] == flag_event_at(owed)
    assert flagged[settled.pk] == flag_event_at(settled)  # settled refunds were owed too
    assert flagged[unflagged_event.pk] == paid_at  # no event of its own: when the money came
    assert all(when > long_ago for when in flagged.values())


def _order_place_functions() -> dict[str, str]:
    """Each okada_order_place() overload's arguments and body."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_function_identity_arguments(oid), prosrc FROM pg_proc "
            "WHERE proname = 'okada_order_place' AND pronamespace = 'public'::regnamespace"
        )
        return dict(cursor.fetchall())


def _body(sql: str) -> str:
    return sql.split("AS $$", 1)[1].rsplit("$$", 1)[0]


V10_MIGRATIONS = ("0038_order_place_v10_alias_under_lock",)
V9_MIGRATIONS = ("0034_order_place_v9_customer_before_stock",)
# v9 is built from v8's text, v10 from v9's: going back to v7 goes back through them.
CUSTOMER_NAME_MIGRATIONS = (
    "0029_order_customer_name",
    "0030_order_place_v8_customer_name",
    *V9_MIGRATIONS,
    *V10_MIGRATIONS,
)


def _step(*, backwards: bool, names: tuple[str, ...] = CUSTOMER_NAME_MIGRATIONS) -> None:
    """Unapply (newest first) or apply these migrations alone, in the test's transaction (undone
    with it). Not `migrate` to 0028: it would unapply the later migrations too, among them index
    builds that cannot run in a transaction (CONCURRENTLY)."""
    executor = MigrationExecutor(connection)
    for name in reversed(names) if backwards else names:
        state = executor.loader.project_state(("orders", name), at_end=False)  # before it
        migration = executor.loader.get_migration("orders", name)
        if backwards:
            executor.unapply_migration(state, migration)
        else:
            executor.apply_migration(state, migration)


def test_order_place_v8_replaces_v7_and_going_back_restores_v7_exactly():
    # A new argument is a new signature: CREATE OR REPLACE would have left v7 beside v8, and
    # calls of either arity would still find one of them.
    def arguments(sql: str) -> str:
        return sql.split("public.okada_order_place(", 1)[1].split(") RETURNS", 1)[0]

    [(v10_arguments, v10_body)] = _order_place_functions().items()
    assert "p_customer_name text" in v10_arguments and v10_body == _body(V10.SQL)

    _step(backwards=True)
    [(v7_arguments, v7_body)] = _order_place_functions().items()
    assert "p_customer_name" not in v7_arguments and v7_body == _body(V8.V7.SQL)
    assert "p_customer_name" not in arguments(V8.V7.SQL) and "customer_name" not in v7_body
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'customer_name' "
            "AND table_name IN ('orders_order', 'orders_historicalorder')"
        )
        assert cursor.fetchone() == (0,)

    _step(backwards=False)
    assert _order_place_functions() == {v10_arguments: v10_body}


def test_order_place_v9_replaces_v8_in_place_and_going_back_restores_v8_exactly():
    _step(backwards=True, names=V10_MIGRATIONS)
    [(arguments, v9_body)] = _order_place_functions().items()
    assert v9_body == _body(V9.SQL) != _body(V8.SQL)
    # Only the lookup by phone changed: it locks the customer it finds, before the stock rows.
    assert v9_body.count("FOR KEY SHARE") == _body(V8.SQL).count("FOR KEY SHARE") + 1
    assert v9_body.index("FOR KEY SHARE;") < v9_body.index("FOR UPDATE OF s")

    _step(backwards=True, names=V9_MIGRATIONS)
    assert _order_place_functions() == {arguments: _body(V8.SQL)}  # one overload, v8's

    _step(backwards=False, names=V9_MIGRATIONS)
    assert _order_place_functions() == {arguments: v9_body}


def test_order_place_v10_replaces_v9_in_place_and_going_back_restores_v9_exactly():
    [(arguments, v10_body)] = _order_place_functions().items()
    assert v10_body == _body(V10.SQL) != _body(V9.SQL)
    # The customer is locked as often as in v9, its name read where it is locked; the alias is a
    # statement of its own after the checks, run only when the names differ.
    assert v10_body.count("FOR KEY SHARE") == _body(V9.SQL).count("FOR KEY SHARE")
    assert "EXISTS (SELECT FROM orders_customer" not in v10_body
    assert v10_body.index("FOR UPDATE OF s") < v10_body.index("INSERT INTO orders_customer_alias")

    _step(backwards=True, names=V10_MIGRATIONS)
    assert _order_place_functions() == {arguments: _body(V9.SQL)}  # one overload, v9's

    _step(backwards=False, names=V10_MIGRATIONS)
    assert _order_place_functions() == {arguments: v10_body}


def test_a_placement_by_the_code_of_the_release_before_v8_still_places_the_order():
    # Between migration 0030 and the restart, the running code calls with v7's 15 arguments: its
    # orders hold '' and show the customer's name, as every order did before.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    customer = CustomerFactory(name="Awa Mbarga")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT okada_order_place(%s, %s, %s, %s::uuid[], %s::integer[], %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s)",
            [
                *(vendor.pk, customer.pk, customer.zone_id, [product.pk], [1], "cash", "admin", "Akwa", ""),
                *(None, "staff:ops", None, "order placed", None, None),
            ],
        )
        (result,) = cursor.fetchone()
    order = Order.objects.select_related("customer").get(pk=json.loads(result)["id"])
    assert (order.customer_name, order.shown_customer_name) == ("", "Awa Mbarga")
    assert order.history.get().customer_name == ""
    assert not CustomerAlias.objects.exists()  # no name of its own: it shows the record's (v10)


def test_the_alias_backfill_names_each_vendors_orders_under_another_name_than_their_customers_once():
    awa = CustomerFactory(name="Awa Mbarga")
    vendor, other = VendorFactory(), VendorFactory()
    given = {}
    for shop, name in ((vendor, "Paul Eto"), (vendor, "Paul Eto"), (vendor, "Awa Mbarga"), (vendor, ""),
                       (other, "Awa M."), (other, "Paul Eto")):  # fmt: skip
        order = OrderFactory(vendor=shop, customer=awa)
        given[order.pk] = name
    for pk, name in given.items():  # as placed, before the services wrote aliases
        Order.objects.filter(pk=pk).update(customer_name=name)
    CustomerAlias.objects.all().delete()

    with connection.cursor() as cursor:
        cursor.execute(ALIASES.BACKFILL_SQL)
        cursor.execute(ALIASES.BACKFILL_SQL)  # again: nothing more

    assert sorted(CustomerAlias.objects.values_list("vendor_id", "customer_id", "name")) == sorted(
        [(vendor.pk, awa.pk, "Paul Eto"), (other.pk, awa.pk, "Awa M."), (other.pk, awa.pk, "Paul Eto")]
    )
