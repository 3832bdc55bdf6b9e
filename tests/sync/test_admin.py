"""Sync admin: conflicts resolved and devices revoked through the services, with permissions."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Product, Stock, Vendor
from catalog.services import product_update
from okada.core.actors import Actor
from okada.core.roles import OPERATIONS
from orders.models import Order
from sync import services
from sync.models import ConflictStatus, Device, SyncConflict
from sync.push import MUTATIONS
from tests.catalog.factories import ProductFactory, UserFactory, VendorFactory, role_user
from tests.credentials.factories import vendor_api
from tests.languages import admin_page, reads_in_its_language
from tests.plans import plan_nodes
from tests.sync.factories import (
    Phone,
    register_device,
    stale_count_conflict,
    stale_transition_conflict,
    suspended_vendor_stock_conflicts,
)

pytestmark = pytest.mark.django_db

STAFF = Actor(role=Actor.STAFF, label="ops")
CONFLICTS = "/admin/sync/syncconflict/"
DEVICES = "/admin/sync/device/"


def price_conflict() -> tuple[SyncConflict, Product]:
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor, price_xaf=1000)
    phone = Phone(vendor)
    product_update(product=product, data={"price_xaf": 1100}, actor=STAFF)
    answer = phone.push(
        phone.mutation(
            "product.update", product_id=str(product.pk), base_version=1, fields={"price_xaf": 900}
        )
    )
    return SyncConflict.objects.get(pk=answer["results"][0]["conflict_id"]), product


def staff_user(*codenames: str):
    user = UserFactory(is_staff=True)
    perms = Permission.objects.filter(codename__in=["view_syncconflict", "view_device", *codenames])
    user.user_permissions.add(*perms)
    return user


def test_staff_apply_the_device_value_from_the_conflicts_list(client):
    conflict, product = price_conflict()
    user = staff_user("resolve_syncconflict", "change_product")  # the price goes through product_update
    client.force_login(user)

    response = client.post(CONFLICTS, {"action": "apply_device", "_selected_action": [str(conflict.pk)]})

    assert response.status_code == 302
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.APPLIED_DEVICE and conflict.resolved_by == user
    assert Product.objects.get(pk=product.pk).price_xaf == 900


def test_staff_keep_the_server_value(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict"))

    client.post(CONFLICTS, {"action": "keep_server", "_selected_action": [str(conflict.pk)]})

    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.KEPT_SERVER
    assert Product.objects.get(pk=product.pk).price_xaf == 1100


def test_staff_without_the_permission_cannot_resolve_even_by_posting(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("change_product"))

    response = client.post(CONFLICTS, {"action": "apply_device", "_selected_action": [str(conflict.pk)]})

    assert response.status_code in (200, 302, 403)
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    assert Product.objects.get(pk=product.pk).price_xaf == 1100


def test_the_conflict_page_shows_both_sides_and_its_history(client, admin_user):
    conflict, _product = price_conflict()
    client.force_login(admin_user)

    page = client.get(f"{CONFLICTS}{conflict.pk}/change/").content.decode()
    history = client.get(f"{CONFLICTS}{conflict.pk}/history/")

    assert "900" in page and "1100" in page
    assert history.status_code == 200
    assert client.get(CONFLICTS).status_code == 200
    assert client.get("/admin/sync/mutation/").status_code == 200


def test_staff_revoke_a_device_with_the_permission_only(client):
    phone = Phone(VendorFactory())
    client.force_login(staff_user())
    client.post(DEVICES, {"action": "revoke", "_selected_action": [str(phone.device.pk)]})
    assert Device.objects.get(pk=phone.device.pk).revoked_at is None

    user = staff_user("revoke_device")
    client.force_login(user)
    response = client.post(DEVICES, {"action": "revoke", "_selected_action": [str(phone.device.pk)]})

    assert response.status_code == 302
    device = Device.objects.get(pk=phone.device.pk)
    assert device.revoked_at is not None and device.revoked_by == user


def test_the_operations_role_resolves_conflicts_and_revokes_devices(client):
    conflict, product = price_conflict()
    phone = Phone(VendorFactory())
    client.force_login(role_user(OPERATIONS))
    assert client.get(CONFLICTS).status_code == 200 and client.get(DEVICES).status_code == 200

    client.post(CONFLICTS, {"action": "apply_device", "_selected_action": [str(conflict.pk)]})
    client.post(DEVICES, {"action": "revoke", "_selected_action": [str(phone.device.pk)]})

    assert SyncConflict.objects.get(pk=conflict.pk).status == ConflictStatus.APPLIED_DEVICE
    assert Product.objects.get(pk=product.pk).price_xaf == 900
    assert Device.objects.get(pk=phone.device.pk).revoked_at is not None


def test_the_lists_keep_their_query_count_as_rows_grow(client, admin_user, django_assert_max_num_queries):
    client.force_login(admin_user)
    price_conflict()
    with django_assert_max_num_queries(12):
        assert client.get(CONFLICTS).status_code == 200
    for _ in range(5):
        price_conflict()
    with django_assert_max_num_queries(12):
        assert client.get(CONFLICTS).status_code == 200
    with django_assert_max_num_queries(12):
        assert "Caisse 1" in client.get(DEVICES).content.decode()


@pytest.mark.parametrize("codenames", [(), ("resolve_syncconflict", "change_product")])
def test_a_history_revert_post_never_reopens_a_resolved_conflict(client, codenames):
    # simple-history's revert form would save the old row as it was (status open, no resolver),
    # outside conflict_resolve: the conflict could then be resolved, and applied, a second time.
    conflict, _product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict", "change_product"))
    client.post(CONFLICTS, {"action": "keep_server", "_selected_action": [str(conflict.pk)]})
    opened = conflict.history.earliest("history_date")
    client.force_login(staff_user(*codenames))

    response = client.post(f"{CONFLICTS}{conflict.pk}/history/{opened.history_id}/", {})

    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.KEPT_SERVER and conflict.resolved_at is not None
    assert response.status_code == 403


def test_what_the_admin_actions_record_reads_in_french_on_the_pages(client, admin_user):
    # The notes are stored in English (data) and shown in the page's language, nothing mixed.
    conflict, _product = price_conflict()
    phone = Phone(VendorFactory())
    client.force_login(admin_user)
    client.post(CONFLICTS, {"action": "keep_server", "_selected_action": [str(conflict.pk)]})
    client.post(DEVICES, {"action": "revoke", "_selected_action": [str(phone.device.pk)]})

    pages = {
        "conflict": client.get(f"{CONFLICTS}{conflict.pk}/change/").content.decode(),
        "conflict history": client.get(f"{CONFLICTS}{conflict.pk}/history/").content.decode(),
        "device": client.get(f"{DEVICES}{phone.device.pk}/change/").content.decode(),
    }

    english = ["resolved in admin", "revoked in admin", "sync conflict: keep_server"]
    assert {name: [e for e in english if e in page] for name, page in pages.items()} == {
        name: [] for name in pages
    }
    assert "révoqué dans l\u2019administration" in pages["device"]
    assert "résolu dans l\u2019administration (valeur du serveur gardée)" in pages["conflict"]
    assert "résolu dans l\u2019administration" in pages["conflict history"]


# --- Resolving from the conflict's page: refused when the row changed since it was opened -------


def resolve_url(conflict: SyncConflict) -> str:
    return f"{CONFLICTS}{conflict.pk}/resolve/"


def opened_page(client, conflict: SyncConflict, language: str = "en") -> tuple[str, str]:
    """The conflict's page and the `_okada_loaded_at` its resolution forms carry."""
    html = admin_page(client, f"{CONFLICTS}{conflict.pk}/change/", language)
    found = re.search(r'name="_okada_loaded_at" value="([^"]+)"', html)
    assert found, "the resolution forms carry the time the product was last changed"
    return html, found.group(1)


def test_the_page_shows_the_current_value_and_applies_the_device_value(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict", "change_product"))
    html, opened = opened_page(client, conflict)
    assert "Apply the device value" in html and "Current server value" in html

    response = client.post(resolve_url(conflict), {"resolution": "apply_device", "_okada_loaded_at": opened})

    assert response.status_code == 302
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE
    assert Product.objects.get(pk=product.pk).price_xaf == 900


def test_a_product_changed_through_the_api_after_the_page_was_opened_is_not_overwritten(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict", "change_product"))
    _html, opened = opened_page(client, conflict)
    api = vendor_api(product.vendor)
    assert api.patch(f"/products/{product.pk}", {"price_xaf": 1300}).status_code == 200  # meanwhile

    response = client.post(
        resolve_url(conflict), {"resolution": "apply_device", "_okada_loaded_at": opened}, follow=True
    )

    assert Product.objects.get(pk=product.pk).price_xaf == 1300
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    page = response.content.decode()
    assert "changed at" in page and "after you opened this page" in page
    assert "1300" in page  # back on the page, which shows the current value
    # Reloaded, the page carries the new time: applying is now a choice made knowingly.
    _html, reopened = opened_page(client, conflict)
    assert reopened != opened
    client.post(resolve_url(conflict), {"resolution": "apply_device", "_okada_loaded_at": reopened})
    assert Product.objects.get(pk=product.pk).price_xaf == 900


def test_the_refusal_reads_in_french(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict", "change_product"))
    html, opened = opened_page(client, conflict, "fr")
    assert "Appliquer la valeur de l\u2019appareil" in html
    product_update(product=product, data={"price_xaf": 1300}, actor=STAFF)

    response = client.post(
        resolve_url(conflict), {"resolution": "apply_device", "_okada_loaded_at": opened}, follow=True
    )

    page = response.content.decode()
    assert "après que vous avez ouvert cette page" in page and "after you opened" not in page
    assert Product.objects.get(pk=product.pk).price_xaf == 1300


def test_the_list_action_does_not_overwrite_a_change_made_since_the_conflict(client):
    conflict, product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict", "change_product"))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert vendor_api(product.vendor).patch(f"/products/{product.pk}", {"price_xaf": 1300}).status_code == 200

    response = client.post(
        CONFLICTS, {"action": "apply_device", "_selected_action": [str(conflict.pk)]}, follow=True
    )

    assert Product.objects.get(pk=product.pk).price_xaf == 1300
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    assert "changed after this conflict was recorded" in response.content.decode()


@pytest.mark.parametrize("codenames", [(), ("change_product",)])
def test_a_view_only_user_cannot_resolve_from_the_page_even_by_posting(client, codenames):
    conflict, product = price_conflict()
    client.force_login(staff_user(*codenames))
    html = admin_page(client, f"{CONFLICTS}{conflict.pk}/change/", "en")
    assert "Apply the device value" not in html

    response = client.post(
        resolve_url(conflict),
        {"resolution": "apply_device", "_okada_loaded_at": product.updated_at.isoformat()},
    )

    assert response.status_code == 403
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    assert Product.objects.get(pk=product.pk).price_xaf == 1100


# --- From the list: a stock count or an order move is not applied over a change made since -----


def apply_from_the_list(client, conflict: SyncConflict, language: str = "en") -> str:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.post(
        CONFLICTS, {"action": "apply_device", "_selected_action": [str(conflict.pk)]}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def test_the_list_action_does_not_undo_a_restock_made_since_a_stock_count_conflict(client):
    conflict, product = stale_count_conflict(VendorFactory())
    api = vendor_api(product.vendor)
    restock = api.post(f"/products/{product.pk}/stock-adjustments", {"delta": 10, "reason": "livraison"})
    assert restock.status_code in (200, 201), restock.content  # 25 on hand now
    client.force_login(role_user(OPERATIONS))

    page = apply_from_the_list(client, conflict)

    assert Stock.objects.get(product=product).on_hand == 25
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    assert "changed after this conflict was recorded" in page
    assert "Open the conflict, look at the current value" in page


def test_the_list_action_applies_a_stock_count_when_the_stock_did_not_change(client):
    conflict, product = stale_count_conflict(VendorFactory())
    client.force_login(role_user(OPERATIONS))

    apply_from_the_list(client, conflict)

    assert Stock.objects.get(product=product).on_hand == 8
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


def test_the_list_action_does_not_cancel_an_order_moved_since_the_conflict_and_says_so_in_french(client):
    conflict, order = stale_transition_conflict(VendorFactory())
    moved = vendor_api(order.vendor).post(f"/orders/{order.pk}/transitions", {"to": "preparing"})
    assert moved.status_code == 200, moved.content
    client.force_login(role_user(OPERATIONS))

    page = apply_from_the_list(client, conflict, "fr")

    assert Order.objects.get(pk=order.pk).status == "preparing"
    assert SyncConflict.objects.get().status == ConflictStatus.OPEN
    assert "modifié après l\u2019enregistrement de ce conflit" in page
    assert "Ouvrez le conflit, regardez la valeur actuelle" in page


def test_the_list_action_applies_an_order_move_when_the_order_did_not_move(client):
    conflict, order = stale_transition_conflict(VendorFactory())
    client.force_login(role_user(OPERATIONS))

    apply_from_the_list(client, conflict)

    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert SyncConflict.objects.get().status == ConflictStatus.APPLIED_DEVICE


# --- A suspended vendor's shelf changes, kept for staff ------------------------------------------


def test_the_conflict_page_of_a_suspended_vendors_sale_reads_in_french_and_english(client):
    sale, _count, _product = suspended_vendor_stock_conflicts(VendorFactory())
    client.force_login(role_user(OPERATIONS))
    url = f"{CONFLICTS}{sale.pk}/change/"

    reads_in_its_language(
        client,
        url,
        "modification de stock d\u2019un vendeur suspendu",
        "stock change of a suspended vendor",
    )
    for language in ("fr", "en"):
        html = admin_page(client, url, language)
        assert "&quot;delta&quot;: -2" in html and "&quot;reason&quot;: &quot;vente&quot;" in html, language
    assert "Appliquer la valeur de l\u2019appareil" in admin_page(client, url, "fr")
    listing = admin_page(client, f"{CONFLICTS}?kind=vendor_suspended", "fr")
    assert "modification de stock d\u2019un vendeur suspendu" in listing


def test_operations_apply_a_suspended_vendors_sale_and_then_its_count_from_its_page(client):
    sale, count, product = suspended_vendor_stock_conflicts(VendorFactory())
    client.force_login(role_user(OPERATIONS))

    page = apply_from_the_list(client, count)  # the later one first: refused, the sale waits
    assert Stock.objects.get(product=product).on_hand == 10
    assert "Resolve first the earlier conflict this device recorded on this row" in page

    apply_from_the_list(client, sale)
    assert Stock.objects.get(product=product).on_hand == 8
    assert SyncConflict.objects.get(pk=sale.pk).status == ConflictStatus.APPLIED_DEVICE
    # The count was recorded on 10 on hand, which the sale changed: the list refuses it...
    page = apply_from_the_list(client, count)
    assert "changed after this conflict was recorded" in page
    assert SyncConflict.objects.get(pk=count.pk).status == ConflictStatus.OPEN
    # ...its page shows the current value, and applies it knowingly.
    _html, opened = opened_page(client, count)
    client.post(resolve_url(count), {"resolution": "apply_device", "_okada_loaded_at": opened})
    assert Stock.objects.get(product=product).on_hand == 7
    assert SyncConflict.objects.get(pk=count.pk).status == ConflictStatus.APPLIED_DEVICE


def test_the_pushed_mutations_list_names_a_suspended_vendors_conflict_and_rejection_apart(client, admin_user):
    vendor = VendorFactory()
    sale, _count, product = suspended_vendor_stock_conflicts(vendor)
    phone_device = sale.device
    from sync.push import push

    push(
        actor=Actor(role=Actor.VENDOR, vendor_id=vendor.pk, label="Caisse 1"),
        device_id=phone_device.pk,
        mutations=[{"id": 3, "name": "product.delete", "args": {"product_id": str(product.pk)}}],
    )
    client.force_login(admin_user)

    html = admin_page(client, "/admin/sync/mutation/?name=product.delete", "en")
    assert "vendor_suspended" in html and "stock change of a suspended vendor" not in html
    html = admin_page(client, "/admin/sync/mutation/?name=stock.adjust", "en")
    assert "stock change of a suspended vendor" in html


# --- At scale: about a thousand pushes per device, a million and a half in the retention window --

MUTATIONS_LIST = "/admin/sync/mutation/"


def pushes(vendor, name: str, count: int) -> Phone:
    """A device of `vendor` that pushed `count` sales, then one more than its stock: a conflict."""
    product = ProductFactory(vendor=vendor, initial_stock=count)
    phone = Phone(vendor, name=name)
    phone.push(*(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-1) for _ in range(count)))
    phone.push(phone.mutation("stock.adjust", product_id=str(product.pk), delta=-5))  # impossible_stock
    return phone


def sync_mutation_plans(captured) -> list[list[dict]]:
    """The plan of each statement of a page that reads the stored mutations, as planned at scale,
    with the statistics of the rows the test made: those autovacuum took of another test's rows
    (committed, then deleted) chose the plan otherwise. Told that every push was rejected, the
    planner walked the primary key for the rejected ones (a fresh clone's CI run failed so)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_mutation")
    return [plan_nodes(q["sql"]) for q in captured if '"sync_mutation"' in q["sql"]]


def reads_by_index(plan: list[dict]) -> bool:
    """Every read of sync_mutation finds its rows through an index condition (an index scan or
    the bitmaps under a heap scan), never a walk of the whole table or of its key."""
    scans = [n for n in plan if n.get("Relation Name") == "sync_mutation"]

    def conditioned(node: dict) -> bool:
        if "Index Cond" in node:
            return True
        children = node.get("Plans", [])
        return bool(children) and all(conditioned(c) for c in children)

    return bool(scans) and all(conditioned(n) for n in scans)


def reads_of_all_rows(client, url: str, table: str) -> list[str]:
    """The statements of a page that count `table`'s rows or read a DISTINCT column of them
    (a paginator's COUNT(*), a filter's or a date hierarchy's choices): each reads every row."""
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return [
        q["sql"]
        for q in ctx.captured_queries
        if f'"{table}"' in q["sql"] and ("COUNT(" in q["sql"] or "DISTINCT" in q["sql"])
    ]


def test_the_pushed_mutations_list_counts_nothing_and_lists_no_column_of_every_mutation(client):
    # A million and a half stored pushes: the paginator's COUNT(*) and the mutation filter's
    # SELECT DISTINCT name each read all of them, on every page (0.4 to 1 s each).
    pushes(VendorFactory(), "Caisse 1", 3)
    client.force_login(role_user(OPERATIONS))
    for query in ("", "?status__exact=conflict", "?name=stock.adjust", "?p=2"):
        assert reads_of_all_rows(client, MUTATIONS_LIST + query, "sync_mutation") == [], query


def test_the_mutation_filter_offers_every_mutation_a_device_may_push_and_filters_by_it(client):
    vendor = VendorFactory()
    phone = pushes(vendor, "Caisse 1", 2)
    client.force_login(role_user(OPERATIONS))
    cl = client.get(MUTATIONS_LIST).context["cl"]
    spec = next(s for s in cl.filter_specs if getattr(s, "parameter_name", "") == "name")
    assert [c["display"] for c in spec.choices(cl)][1:] == sorted(MUTATIONS)
    shown = client.get(f"{MUTATIONS_LIST}?name=stock.adjust").context["cl"].result_list
    assert [m.mutation_id for m in shown] == [3, 2, 1] and {m.device_id for m in shown} == {phone.device.pk}
    assert list(client.get(f"{MUTATIONS_LIST}?name=product.update").context["cl"].result_list) == []


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("Tablette", "tablet"),  # part of a device's name
        ("Boutique Mbappe", "tablet"),  # its vendor's name
        ("impossible_stock", "coded"),  # a code, whole
        ("IMPOSSIBLE_STOCK", "coded"),
        ("zzqxw", "nothing"),
    ],
)
def test_a_search_of_the_pushed_mutations_reads_them_through_indexes(client, term, found):
    # Before, the term was looked for in every stored mutation's code and its device's name
    # (UPPER(...) LIKE '%term%'): a walk of the whole table newest first, seconds for a term
    # few rows match.
    tablet = pushes(VendorFactory(name="Boutique Mbappe"), "Tablette 2", 2)
    counter = pushes(VendorFactory(name="Marché central"), "Caisse 1", 2)
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(MUTATIONS_LIST, {"q": term})
    shown = {(m.device_id, m.mutation_id) for m in response.context["cl"].result_list}
    expected = {
        "tablet": {(tablet.device.pk, i) for i in (1, 2, 3)},
        "coded": {(tablet.device.pk, 3), (counter.device.pk, 3)},
        "nothing": set(),
    }[found]
    assert shown == expected
    plans = sync_mutation_plans(ctx.captured_queries)
    assert plans and all(reads_by_index(plan) for plan in plans), plans


def test_a_search_matching_more_devices_than_the_probe_names_none_of_them_in_the_query(client, monkeypatch):
    # A common term (a letter) names every device: a statement with a parameter per device then.
    # Past the probe, their pushes are read through a subquery of the devices.
    from sync import admin as sync_admin

    monkeypatch.setattr(sync_admin, "SEARCH_PROBE", 2)
    phones = [pushes(VendorFactory(), f"Caisse {i}", 1) for i in range(3)]
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(MUTATIONS_LIST, {"q": "caisse"})
    assert {m.device_id for m in response.context["cl"].result_list} == {p.device.pk for p in phones}
    listed = [q["sql"] for q in ctx.captured_queries if '"sync_mutation"' in q["sql"]]
    # Django writes a UUID parameter as its 32 hex digits.
    assert listed and not [sql for sql in listed if any(p.device.pk.hex in sql for p in phones)]


@pytest.mark.parametrize(
    "query",
    ["?status__exact=conflict", "?status__exact=rejected", "?status__exact=conflict&name=product.create"],
)
def test_the_pushes_not_applied_are_listed_through_their_own_index(client, query):
    # Rejections and conflicts are a few percent of the pushes: newest first through the
    # primary key, PostgreSQL tested every push down to the 25th match, the whole table when
    # none matched (a conflict of a product.create: 0.3 to 0.6 s at 1.5 million).
    pushes(VendorFactory(), "Caisse 1", 2)
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(MUTATIONS_LIST + query).status_code == 200
    plans = sync_mutation_plans(ctx.captured_queries)
    assert plans and all(reads_by_index(plan) for plan in plans), plans


def test_the_devices_list_links_each_device_to_its_pushes_read_through_its_key(client):
    # Operations follow one device's pushes: before, only by searching its name, which every
    # vendor's "Caisse 1" shares, through the whole table.
    phone = pushes(VendorFactory(), "Caisse 1", 2)
    pushes(VendorFactory(), "Caisse 1", 2)  # another vendor's device of the same name
    client.force_login(role_user(OPERATIONS))
    page = client.get(DEVICES).content.decode()
    link = f"{MUTATIONS_LIST}?device__id__exact={phone.device.pk}"
    assert f'href="{link}"' in page
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(link)
    assert [(m.device_id, m.mutation_id) for m in response.context["cl"].result_list] == [
        (phone.device.pk, 3),
        (phone.device.pk, 2),
        (phone.device.pk, 1),
    ]
    plans = sync_mutation_plans(ctx.captured_queries)
    assert plans and all(reads_by_index(plan) for plan in plans), plans


@pytest.mark.parametrize("url", [DEVICES, CONFLICTS, MUTATIONS_LIST])
def test_the_sync_lists_show_25_rows_a_page(client, url):
    # Rendering the rows is most of a list's time: 100 rows made the devices and conflicts
    # lists 150 to 300 ms at the large scale, 25 (as the other big lists) 60 to 100 ms.
    vendor = VendorFactory()
    for i in range(26):
        register_device(vendor, name=f"Caisse {i}")
    client.force_login(role_user(OPERATIONS))
    assert client.get(url).context["cl"].list_per_page == 25
    if url == DEVICES:
        assert len(client.get(url).context["cl"].result_list) == 25


def test_the_sync_lists_make_the_same_few_queries_for_few_or_more_rows(client):
    # A per-row query (a device's vendor, a conflict's resolver) would cost 25 queries a page.
    def counts() -> dict[str, int]:
        out = {}
        for url in (DEVICES, CONFLICTS, MUTATIONS_LIST):
            client.get(url)  # process-wide caches (content types), as in a running server
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            out[url] = len(ctx.captured_queries)
        return out

    client.force_login(role_user(OPERATIONS))
    pushes(VendorFactory(), "Caisse 1", 1)  # a device, 2 pushes, 1 conflict
    few = counts()
    for i in range(4):
        pushes(VendorFactory(), f"Caisse {i}", 2)
    assert counts() == few
    assert max(few.values()) <= 20, few


# --- The conflicts list at scale: never pruned, hundreds of thousands in a year ----------------


def sync_conflict_plans(captured, *, sorts: bool = False) -> list[list[dict]]:
    """The plan of each statement of a page that reads the conflicts, as planned at scale, with
    the statistics of the test's own rows (see sync_mutation_plans). `sorts`: a search's few
    matches may be sorted (a sort forbidden, PostgreSQL would rather walk every conflict in
    order and test each, the plan at scale that the search must not get)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_conflict")
    return [plan_nodes(q["sql"], sorts=sorts) for q in captured if '"sync_conflict"' in q["sql"]]


def reads_by_index_cond(node: dict) -> bool:
    """A scan that finds its rows through an index condition (or bitmaps of them)."""
    if "Index Cond" in node:
        return True
    children = node.get("Plans", [])
    return bool(children) and all(reads_by_index_cond(c) for c in children)


def conflicts_of_two_vendors() -> tuple[SyncConflict, SyncConflict]:
    """A price conflict of a vendor "Boutique Mbappe" and a stale count of "Marché central"."""
    count, _product = stale_count_conflict(VendorFactory(name="Marché central"))  # the only one yet
    price, _product = price_conflict()
    Vendor.objects.filter(pk=price.vendor_id).update(name="Boutique Mbappe")
    return price, count


def others(device: Device, n: int) -> None:
    """`n` conflicts of `device`, each on a row of its own, through the service."""
    for i in range(n):
        services.conflict_open(
            device=device,
            mutation_id=1000 + i,
            kind="impossible_stock",
            entity="stock",
            row_id=uuid.uuid4(),
            device_value={"delta": -3},
            server_value={"on_hand": 1, "reserved": 0, "version": 2},
        )


@pytest.mark.parametrize(
    "query",
    ["", "?p=2", "?status__exact=open", "?kind__exact=price", "?q=Mbappe", "?created_at_from=2026-01-01"],
)
def test_the_conflicts_list_counts_nothing_and_lists_no_date_of_every_conflict(client, query):
    # Conflicts are never pruned: the paginator's COUNT(*) and the date hierarchy's links (the
    # distinct years of every conflict listed) each read all of them, on every page.
    conflicts_of_two_vendors()
    client.force_login(role_user(OPERATIONS))
    assert reads_of_all_rows(client, CONFLICTS + query, "sync_conflict") == [], query


@pytest.mark.parametrize(
    "query",
    [
        "",  # all of them, newest first: the list a staff member opens
        "?p=2",
        "?status__exact=open",
        "?status__exact=kept_server",
        "?kind__exact=price",
        "?created_at_from=2026-01-01&created_at_to=2026-12-31",
        "?o=1",  # oldest first
    ],
)
def test_each_page_of_the_conflicts_list_reads_them_in_its_order_from_an_index(client, query):
    # Before, the list of all conflicts (and a kind's) read every conflict and sorted them all by
    # their time for each page of 25: 0.3 s at 300,000.
    conflicts_of_two_vendors()
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(CONFLICTS + query).status_code == 200
    plans = sync_conflict_plans(ctx.captured_queries)
    assert plans
    for plan in plans:
        nodes = {n["Node Type"] for n in plan}
        scans = [n for n in plan if n.get("Relation Name") == "sync_conflict"]
        assert scans and all("Index Name" in n for n in scans), plan
        assert not nodes & {"Seq Scan", "Sort"}, plan  # an Incremental Sort orders ties of a time


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("Mbappe", "price"),  # part of a vendor's name
        ("marché CENTRAL", "count"),
        ("row", "price"),  # the whole id of a conflict's row
        ("id", "count"),  # the whole id of a conflict
        ("zzqxw", "none"),
    ],
)
def test_a_search_of_the_conflicts_reads_them_through_indexes(client, term, found):
    # Before, the term was looked for in every conflict's row id and vendor name (UPPER(...) LIKE
    # '%term%'): the whole table joined with the vendors, three times a page (1.1 s at 300,000).
    price, count = conflicts_of_two_vendors()
    others(register_device(VendorFactory()), 300)  # enough rows to weigh a walk of them all
    term = {"row": str(price.row_id), "id": str(count.pk).upper()}.get(term, term)
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CONFLICTS, {"q": term})
    shown = {c.pk for c in response.context["cl"].result_list}
    assert shown == {"price": {price.pk}, "count": {count.pk}, "none": set()}[found]
    for plan in sync_conflict_plans(ctx.captured_queries, sorts=True):
        scans = [n for n in plan if n.get("Relation Name") == "sync_conflict"]
        assert scans and all(reads_by_index_cond(n) for n in scans), plan


@pytest.mark.parametrize(
    ("query", "days"),
    [
        ("created_at__year=2026", ("2026-01-01", "2026-12-31")),
        ("created_at__year=2024&created_at__month=2", ("2024-02-01", "2024-02-29")),
        ("created_at__year=2026&created_at__month=11&created_at__day=3", ("2026-11-03", "2026-11-03")),
    ],
)
def test_a_link_of_the_former_date_hierarchy_lists_the_same_days_as_a_range(client, query, days):
    # The list had a date hierarchy: its month and day read every conflict of the year newest
    # first, testing the local month and day of each (no index condition), down to that day.
    client.force_login(role_user(OPERATIONS))
    response = client.get(f"{CONFLICTS}?status__exact=open&{query}")
    assert response.status_code == 302
    assert response["Location"] == (
        f"{CONFLICTS}?status__exact=open&created_at_from={days[0]}&created_at_to={days[1]}"
    )


def test_the_range_of_days_lists_the_conflicts_of_those_days_in_douala_time(client):
    price, count = conflicts_of_two_vendors()
    # 23:30 UTC on 2 November is 00:30 on 3 November in Douala (UTC+1).
    SyncConflict.objects.filter(pk=price.pk).update(created_at="2026-11-02T23:30:00Z")
    SyncConflict.objects.filter(pk=count.pk).update(created_at="2026-11-02T22:30:00Z")
    # 23:30 UTC on 3 November is 00:30 on 4 November in Douala: after the range.
    others(register_device(VendorFactory()), 1)
    SyncConflict.objects.exclude(pk__in=[price.pk, count.pk]).update(created_at="2026-11-03T23:30:00Z")
    client.force_login(role_user(OPERATIONS))
    response = client.get(
        CONFLICTS, {"created_at__year": 2026, "created_at__month": 11, "created_at__day": 3}, follow=True
    )
    assert [c.pk for c in response.context["cl"].result_list] == [price.pk]


@pytest.mark.parametrize(
    "query",
    [
        "created_at__year=0",
        "created_at__year=99999",
        "created_at__year=99999999999999999999",
        "created_at__year=abc",
        "created_at__year=",
        "created_at__year=2024&created_at__month=13",
        "created_at__year=2024&created_at__month=99999999999999999999",
        "created_at__year=2024&created_at__month=2&created_at__day=31",
        "created_at__month=5",  # no year: the hierarchy never made such a link
    ],
)
def test_a_former_hierarchy_link_that_names_no_day_is_the_lists_invalid_answer(client, query):
    # As the date hierarchy answered it (Django's "?e=1": the list without its filters), not a
    # 500 (year 0, a number too big for a date) nor an empty page read by EXTRACT (month 13).
    client.force_login(role_user(OPERATIONS))
    response = client.get(f"{CONFLICTS}?status__exact=open&{query}")
    assert (response.status_code, response["Location"]) == (302, f"{CONFLICTS}?e=1")
    assert client.get(response["Location"]).status_code == 200


def test_the_range_of_days_runs_to_the_last_day_a_date_can_name(client):
    # The day after 31 December 9999 is no date (OverflowError): the range has no end then.
    # The year 9999 of a former hierarchy link is such a range.
    price, count = conflicts_of_two_vendors()
    SyncConflict.objects.filter(pk=price.pk).update(created_at="2026-11-02T23:30:00Z")  # 3 Nov, Douala
    SyncConflict.objects.filter(pk=count.pk).update(created_at="2026-11-02T22:30:00Z")  # 2 Nov
    client.force_login(role_user(OPERATIONS))
    response = client.get(CONFLICTS, {"created_at_from": "2026-11-03", "created_at_to": "9999-12-31"})
    assert [c.pk for c in response.context["cl"].result_list] == [price.pk]
    response = client.get(CONFLICTS, {"created_at__year": "9999"}, follow=True)
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []


def test_a_search_matching_more_vendors_than_the_probe_names_none_of_them_in_the_query(client, monkeypatch):
    # A common term (a letter) names thousands of vendors: a statement with a parameter per
    # vendor then. Past the probe, their conflicts are read through a subquery of the vendors.
    from sync import admin as sync_admin

    monkeypatch.setattr(sync_admin, "SEARCH_PROBE", 2)
    vendors = [VendorFactory(name=f"Boutique {i}") for i in range(3)]
    for vendor in vendors:
        others(register_device(vendor), 1)
    client.force_login(role_user(OPERATIONS))
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CONFLICTS, {"q": "boutique"})
    shown = {c.vendor_id for c in response.context["cl"].result_list}
    assert shown == {v.pk for v in vendors}
    listed = [q["sql"] for q in ctx.captured_queries if '"sync_conflict"' in q["sql"]]
    # Django writes a UUID parameter as its 32 hex digits.
    assert listed and not [sql for sql in listed if any(v.pk.hex in sql for v in vendors)]


def test_resolving_every_conflict_of_the_list_at_once_is_refused_with_a_message(client):
    # A big table's list: no "select all", and an action posted with it anyway resolves nothing
    # (Django would resolve every open conflict of the filtered list, one by one).
    conflict, _product = price_conflict()
    client.force_login(staff_user("resolve_syncconflict"))
    response = client.post(
        CONFLICTS,
        {"action": "keep_server", "_selected_action": [str(conflict.pk)], "select_across": "1", "index": "0"},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "Cette liste est trop longue pour agir sur toutes ses lignes à la fois\u00a0: "
        "rien n\u2019a été fait. Cochez les lignes sur lesquelles agir, page par page "
        "(filtrez d\u2019abord la liste)."
    ]
    assert SyncConflict.objects.get(pk=conflict.pk).status == ConflictStatus.OPEN
