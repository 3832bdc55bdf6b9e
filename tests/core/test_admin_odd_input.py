"""Odd but possible input never makes the admin answer 500.

Every registered admin (django.contrib.admin.site._registry) and every custom admin view is asked
what a mistyped or tampered URL, a stale link or a script could send it: a NUL byte, a very long
or quote-filled search, an ordering or page that does not exist, each list filter's parameter
with a value of the wrong kind, date-hierarchy parts out of range, ids that are not ids. The
answer must be a page, a redirect (Django turns a filter it cannot apply into `?e=1`) or a 4xx,
never a 500; and a POST refused (garbage fields, no permission) changes nothing in the database.

Each model's requests run in one test, each request in a savepoint of its own (a database error
then spoils no other), so one run names every request that fails, with its exception.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.contrib.auth import get_user
from django.db import connection, transaction
from django.test import Client, RequestFactory

from okada.core.roles import OPERATIONS, SUPPORT
from tests.catalog.factories import role_user

pytestmark = pytest.mark.django_db

MODELS = list(admin.site._registry)
NUL = "\x00"
#: A value of the wrong kind for any filter: NUL, not a UUID/date/number, quotes, an overflow.
GARBAGE = (NUL, "not-a-uuid", "99999999999999999999")
ROLES = ("superuser", OPERATIONS)


@pytest.fixture(autouse=True)
def _no_traceback_per_refusal():
    """Django logs each 4xx here with its traceback (rendered at length by the console handler):
    the refusals are the point of these tests, and the failures name their exception."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def label(model: Any) -> str:
    return model._meta.label


def changelist_of(model: Any) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.fixture
def marketplace() -> dict[str, Any]:
    """A small marketplace: an order (vendor, product with stock and ledger, customer, zone, events),
    a sync conflict, an export. Enough for every list to render rows."""
    from tests.catalog.factories import VendorFactory
    from tests.orders.factories import OrderFactory
    from tests.sync.factories import stale_count_conflict

    vendor = VendorFactory()
    order = OrderFactory(vendor=vendor)
    conflict, product = stale_count_conflict(vendor)
    return {"vendor": vendor, "order": order, "conflict": conflict, "product": product}


def user_for(role: str, django_user_model: Any) -> Any:
    if role == "superuser":
        return django_user_model.objects.create_superuser(username="root", password="pw", email="r@x.cm")
    return role_user(role)


@pytest.fixture(params=ROLES)
def staff_client(request: Any, django_user_model: Any) -> Client:
    client = Client()
    client.force_login(user_for(request.param, django_user_model))
    return client


def hit(client: Client, method: str, url: str, data: Any = None) -> str | None:
    """The request, in a savepoint; a description of the failure if it raised or answered 5xx."""
    try:
        with transaction.atomic():
            response = getattr(client, method)(url, data or {})
    except Exception as exc:  # what the test client re-raises is what a user would get as a 500
        return (
            f"{method.upper()} {url} {data!r}: {type(exc).__name__}: {str(exc).strip()[:300]} ({where(exc)})"
        )
    if response.status_code >= 500:
        return f"{method.upper()} {url} {data!r}: {response.status_code}"
    return None


def where(exc: BaseException) -> str:
    """The innermost frame of the project's own code (or else the innermost) the error went through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "site-packages" not in f.filename] or frames
    return f"{ours[-1].filename.rsplit('/admin500/', 1)[-1]}:{ours[-1].lineno}"


def assert_no_500(client: Client, requests: Iterator[tuple[str, str, Any]]) -> None:
    found = [f for f in (hit(client, *r) for r in requests) if f is not None]
    assert not found, "\n".join(["server errors:", *found])


# --- Every changelist ---------------------------------------------------------------------------


def filter_parameters(model: Any, user: Any) -> list[str]:
    """The query parameters of the list's filters (as the filters themselves declare them)."""
    from okada.health.models import DatabaseHealth

    if model is DatabaseHealth:
        return []  # its list is the health overview (no table, no filters)
    model_admin = admin.site._registry[model]
    request = RequestFactory().get(changelist_of(model))
    request.user = user
    if not model_admin.has_view_or_change_permission(request):
        return []
    changelist = model_admin.get_changelist_instance(request)
    return [str(p) for spec in changelist.filter_specs for p in spec.expected_parameters() if p]


def changelist_requests(model: Any, user: Any) -> Iterator[tuple[str, str, Any]]:
    url = changelist_of(model)
    model_admin = admin.site._registry[model]
    queries: list[dict[str, str]] = [
        {SEARCH_VAR: NUL},
        {SEARCH_VAR: "x" * 5000},
        {SEARCH_VAR: "'\"\\"},
        {SEARCH_VAR: "100%_"},
        {ORDER_VAR: "999"},
        {ORDER_VAR: "abc"},
        {ORDER_VAR: "-1.1.x"},
        {PAGE_VAR: "abc"},
        {PAGE_VAR: "99999"},
        {PAGE_VAR: "-1"},
        {"all": "1"},
        {"_facets": "1", SEARCH_VAR: NUL},
        {"_popup": "1", "_to_field": "password"},
        {"_to_field": NUL},
        {"created_at__gte": "notadate"},
        {"vendor__id__exact": "not-a-uuid"},
        {"status__exact": NUL},
    ]
    for parameter in filter_parameters(model, user):
        queries += [{parameter: value} for value in GARBAGE]
    hierarchy = model_admin.date_hierarchy
    if hierarchy:
        queries += [
            {f"{hierarchy}__year": "abc"},
            {f"{hierarchy}__year": "99999"},
            {f"{hierarchy}__year": "2024", f"{hierarchy}__month": "13"},
            {f"{hierarchy}__year": "2024", f"{hierarchy}__month": "2", f"{hierarchy}__day": "31"},
            {f"{hierarchy}__year": NUL},
        ]
    for query in queries:
        yield "get", url, query


@pytest.mark.parametrize("model", MODELS, ids=label)
def test_every_changelist_takes_odd_queries_without_a_500(staff_client, marketplace, model):
    assert_no_500(staff_client, changelist_requests(model, get_user(staff_client)))


# --- Every object's pages -----------------------------------------------------------------------

ODD_IDS = (
    "not-a-uuid",
    str(uuid.uuid4()),
    "abc%00def",  # NUL in the path
    "99999999999999999999",
)


def object_requests(model: Any) -> Iterator[tuple[str, str, Any]]:
    base = changelist_of(model)
    for odd in ODD_IDS:
        for page in ("change/", "history/", "delete/", "history/abc/"):
            yield "get", f"{base}{odd}/{page}", None
        for page in ("change/", "delete/"):
            yield "post", f"{base}{odd}/{page}", {"post": "yes"}
    yield "get", f"{base}add/", {"_to_field": "password", "_popup": "1"}


@pytest.mark.parametrize("model", MODELS, ids=label)
def test_every_object_page_takes_odd_ids_without_a_500(client, admin_user, model):
    client.force_login(admin_user)
    before = fingerprint()
    assert_no_500(client, object_requests(model))
    assert changed_since(before) == []


# --- Actions with garbage selections ------------------------------------------------------------


def action_requests(model: Any, user: Any) -> Iterator[tuple[str, str, Any]]:
    url = changelist_of(model)
    request = RequestFactory().get(url)
    request.user = user
    actions = list(admin.site._registry[model].get_actions(request)) or ["delete_selected"]
    for action in [*actions, "no_such_action", NUL]:
        for selected in (["not-a-uuid"], [NUL], ["99999999999999999999"]):
            yield "post", url, {"action": action, "_selected_action": selected, "index": "0"}
    yield "post", url, {"action": actions[0], "select_across": "abc", "index": "x"}


@pytest.mark.parametrize("model", MODELS, ids=label)
def test_every_action_takes_garbage_selections_without_a_500_and_changes_nothing(client, admin_user, model):
    client.force_login(admin_user)
    before = fingerprint()
    assert_no_500(client, action_requests(model, admin_user))
    assert changed_since(before) == []


# --- What changed: every table's rows ----------------------------------------------------------


def changed_since(before: dict[str, str]) -> list[str]:
    """The tables whose rows are not what they were."""
    after = fingerprint()
    return sorted(name for name in after if after[name] != before.get(name))


def fingerprint() -> dict[str, str]:
    """Each table's rows (partitioned tables through their parent), as a hash: equal before and
    after a request that wrote nothing (sessions aside: a login is not a change of data)."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                  AND NOT c.relispartition AND c.relname <> 'django_session'
                ORDER BY c.relname"""
        )
        tables = [name for (name,) in cur.fetchall()]
        cur.execute(
            " UNION ALL ".join(
                f"SELECT %s, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "  # noqa: S608 (quoted names)
                f"FROM {connection.ops.quote_name(name)} t"
                for name in tables
            ),
            tables,
        )
        return dict(cur.fetchall())


# --- The custom admin views (get_urls): screens, forms and buttons --------------------------------

ODD_OBJECT_IDS = ("not-a-uuid", str(uuid.uuid4()), "abc%00def")


def custom_gets(data: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for odd in ODD_OBJECT_IDS:
        for url in (
            f"/admin/catalog/product/{odd}/adjust-stock/",
            f"/admin/catalog/product/{odd}/count-stock/",
            f"/admin/orders/order/{odd}/transition/",
            f"/admin/orders/order/{odd}/note/",
            f"/admin/orders/orderexport/{odd}/download/",
            f"/admin/sync/syncconflict/{odd}/resolve/",
            f"/admin/partitions/partitionedtable/{odd}/plan/",
        ):
            yield "get", url, None
    health = "/admin/health/databasehealth/"
    for query in ({"order": NUL}, {"order": "nope", "compare": "century"}, {"compare": "x" * 5000}):
        yield "get", f"{health}queries/", query
    for page in ("", "activity/", "storage/", "indexes/", "sequences/", "connections/", "queries/reset/"):
        yield "get", f"{health}{page}", {"p": "abc", "o": "999"}
    for pid, kind in (("99999999999", "cancel"), ("1", "terminate"), ("1", "explode")):
        yield "get", f"{health}activity/{pid}/{kind}/", None
    for query in ({"status": NUL}, {"status": "nope"}, {"status": "x" * 5000}):
        yield "get", "/admin/orders/order/queue/", query
    yield "get", "/admin/partitions/partitionedtable/run/", None
    yield "get", "/admin/backups/backup/back-up-now/", None
    yield "get", "/admin/orders/order/export/", None


def custom_posts(data: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """POSTs with fields missing or of the wrong kind: refused, nothing written."""
    product, order, conflict = data["product"].pk, data["order"].pk, data["conflict"].pk
    for fields in (
        {},
        {"adjust-delta": "abc", "adjust-reason": "x"},
        {"adjust-delta": "99999999999999999999", "adjust-reason": "x"},
        {"adjust-delta": "5", "adjust-reason": "x" * 5000},
        {"adjust-delta": "5", "adjust-reason": NUL},
    ):
        yield "post", f"/admin/catalog/product/{product}/adjust-stock/", fields
    for fields in (
        {},
        {"count-on_hand": "-3", "count-expected_on_hand": "0"},
        {"count-on_hand": "99999999999999999999", "count-expected_on_hand": "abc"},
        {"count-on_hand": "1", "count-expected_on_hand": "99999999999999999999"},
    ):
        yield "post", f"/admin/catalog/product/{product}/count-stock/", fields
    for fields in (
        {},
        {"to": "flying"},
        {"to": NUL},
        {"to": "cancelled", "note": ""},
        {"to": "accepted", "note": "x" * 5000},
    ):
        yield "post", f"/admin/orders/order/{order}/transition/", fields
    for fields in ({}, {"note": ""}, {"note": NUL}, {"note": "x" * 5000}):
        yield "post", f"/admin/orders/order/{order}/note/", fields
    for fields in (
        {},
        {"resolution": "both"},
        {"resolution": NUL},
        {"resolution": "apply_device", "_okada_loaded_at": "notadate"},
        {"resolution": "apply_device", "_okada_loaded_at": "9999-99-99T99:99"},
    ):
        yield "post", f"/admin/sync/syncconflict/{conflict}/resolve/", fields
    for odd in ODD_OBJECT_IDS:
        yield (
            "post",
            f"/admin/catalog/product/{odd}/adjust-stock/",
            {"adjust-delta": "1", "adjust-reason": "x"},
        )
        yield "post", f"/admin/orders/order/{odd}/transition/", {"to": "accepted"}
        yield "post", f"/admin/orders/order/{odd}/note/", {"note": "x"}
        yield "post", f"/admin/sync/syncconflict/{odd}/resolve/", {"resolution": "keep_server"}
    yield "post", "/admin/orders/order/export/", {"query": NUL}
    yield "post", "/admin/partitions/partitionedtable/run/", {"table": NUL}
    health = "/admin/health/databasehealth/"
    yield "post", f"{health}activity/1/explode/", {}
    yield "post", f"{health}activity/abc/cancel/", {}


@pytest.mark.parametrize("role", ROLES)
def test_the_custom_screens_take_odd_parameters_without_a_500(client, django_user_model, marketplace, role):
    client.force_login(user_for(role, django_user_model))
    assert_no_500(client, custom_gets(marketplace))


@pytest.mark.parametrize("role", ROLES)
def test_the_custom_forms_refuse_garbage_without_a_500_and_change_nothing(
    client, django_user_model, marketplace, role
):
    client.force_login(user_for(role, django_user_model))
    before = fingerprint()
    assert_no_500(client, custom_posts(marketplace))
    assert changed_since(before) == []


def permitted_posts(data: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """Each custom POST, well formed, from a user whose role does not allow it."""
    health = "/admin/health/databasehealth/"
    yield (
        "post",
        f"/admin/catalog/product/{data['product'].pk}/adjust-stock/",
        {"adjust-delta": "1", "adjust-reason": "x"},
    )
    yield (
        "post",
        f"/admin/catalog/product/{data['product'].pk}/count-stock/",
        {"count-on_hand": "1", "count-expected_on_hand": "10"},
    )
    yield "post", f"/admin/orders/order/{data['order'].pk}/transition/", {"to": "accepted"}
    yield "post", f"/admin/sync/syncconflict/{data['conflict'].pk}/resolve/", {"resolution": "keep_server"}
    yield "post", "/admin/orders/order/export/", {"query": "status__exact=pending"}
    yield "post", "/admin/partitions/partitionedtable/run/", {}
    yield "post", "/admin/backups/backup/back-up-now/", {}
    yield "post", f"{health}activity/1/cancel/", {}
    yield "post", f"{health}queries/reset/", {}


def test_custom_posts_without_the_permission_are_refused_and_change_nothing(client, marketplace):
    # Support reads orders and customers, notes orders: none of these buttons is theirs.
    client.force_login(role_user(SUPPORT))
    before = fingerprint()
    for method, url, fields in permitted_posts(marketplace):
        with transaction.atomic():
            response = getattr(client, method)(url, fields)
        assert response.status_code == 403 or (
            response.status_code == 302 and "/login/" in response["Location"]
        ), (url, response.status_code)
    assert changed_since(before) == []


# --- How each refusal reads ---------------------------------------------------------------------


def test_every_admin_screen_refuses_odd_input():
    # The base that turns filter values of the wrong kind and garbage selections into the admin's
    # own answers: a new screen built without it would answer them with a 500.
    from okada.core.admin import RefusesOddInput

    assert [
        m._meta.label for m, a in admin.site._registry.items() if not isinstance(a, RefusesOddInput)
    ] == []


def test_a_nul_character_is_a_400_in_the_pages_language(client, admin_user):
    from django.conf import settings

    client.force_login(admin_user)
    french = client.get("/admin/orders/order/", {"status__exact": NUL})
    assert french.status_code == 400
    assert "caractère NUL" in french.content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english = client.post("/admin/orders/order/export/", {"query": f"q={NUL}"})
    assert english.status_code == 400
    assert "NUL character" in english.content.decode()


def test_a_filter_value_of_the_wrong_kind_gives_the_admins_invalid_answer(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/admin/auth/user/", {"groups__id__exact": "not-a-number"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/auth/user/?e=1"


def test_an_action_on_ids_that_are_not_ids_says_so_and_does_nothing(client, admin_user, marketplace):
    client.force_login(admin_user)
    response = client.post(
        "/admin/catalog/vendor/",
        {
            "action": "suspend",
            "_selected_action": ["not-a-uuid", str(marketplace["vendor"].pk)],
            "index": "0",
        },
        follow=True,
    )
    assert "n\u2019est pas valide\u00a0: rien n\u2019a été fait" in response.content.decode()
    marketplace["vendor"].refresh_from_db()
    assert marketplace["vendor"].status == "active"
