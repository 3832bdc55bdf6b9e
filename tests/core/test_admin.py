"""The admin bases: every write through services, permissions on every POST, revert blocked."""

from __future__ import annotations

import re

import pytest

from catalog.models import Category, Product, Vendor
from catalog.services import category_soft_delete, product_soft_delete, product_update, vendor_soft_delete
from okada.core.roles import FINANCE, OPERATIONS, STOCK, SUPPORT
from orders.models import Order, OrderStatus
from tests.catalog.factories import CategoryFactory, ProductFactory, VendorFactory, role_user, staff_actor
from tests.hard_delete import confirm_hard_delete
from tests.orders.factories import OrderFactory, order_in_status

pytestmark = pytest.mark.django_db


def login(client, *roles: str, **fields):
    user = role_user(*roles, **fields)
    client.force_login(user)
    return user


# --- History revert --------------------------------------------------------------------------


def test_a_view_only_user_cannot_revert_an_order_from_history(client):
    order = OrderFactory()
    old = order.history.earliest()
    login(client, SUPPORT)
    page = client.get(f"/admin/orders/order/{order.pk}/history/{old.history_id}/")
    assert page.status_code == 200  # reading the old version is fine
    response = client.post(
        f"/admin/orders/order/{order.pk}/history/{old.history_id}/", {"status": "delivered"}
    )
    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_no_one_reverts_a_cancelled_order_to_pending_through_history(client):
    order = order_in_status(OrderStatus.CANCELLED)
    pending_version = order.history.filter(status=OrderStatus.PENDING).earliest()
    login(client, OPERATIONS, is_superuser=True)
    response = client.post(f"/admin/orders/order/{order.pk}/history/{pending_version.history_id}/", {})
    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED


def test_a_product_revert_goes_through_the_update_service_with_the_change_permission(client):
    product = ProductFactory(name="Riz parfumé", price_xaf=1000)
    first = product.history.earliest()
    product_update(product=product, data={"price_xaf": 1500, "name": "Riz"}, actor=staff_actor())
    url = f"/admin/catalog/product/{product.pk}/history/{first.history_id}/"

    login(client, STOCK)  # may view products, not change them
    assert client.post(url, {"name": "x"}).status_code == 403

    ops = login(client, OPERATIONS)
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    data["is_active"] = "on"
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    product.refresh_from_db()
    assert (product.name, product.price_xaf, product.version) == ("Riz parfumé", 1000, 3)
    latest = product.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (ops, "product updated")


# --- Actions and POSTs check permissions -------------------------------------------------------


def test_a_support_user_cannot_run_the_cancel_action(client):
    order = OrderFactory()
    login(client, SUPPORT)
    client.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [str(order.pk)]})
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_a_view_only_user_cannot_suspend_or_restore_vendors(client):
    vendor = VendorFactory()
    gone = VendorFactory()
    vendor_soft_delete(vendor=gone, actor=staff_actor())
    login(client, FINANCE)  # may view vendors
    client.post("/admin/catalog/vendor/", {"action": "suspend", "_selected_action": [str(vendor.pk)]})
    client.post(
        "/admin/catalog/vendor/?deleted=deleted",
        {"action": "restore_selected", "_selected_action": [str(gone.pk)]},
    )
    assert Vendor.objects.get(pk=vendor.pk).status == Vendor.Status.ACTIVE
    assert Vendor.deleted_objects.filter(pk=gone.pk).exists()


def test_a_logged_in_user_who_is_not_staff_cannot_reach_the_admin(client):
    order = OrderFactory()
    login(client, OPERATIONS, is_staff=False)
    response = client.post(f"/admin/orders/order/{order.pk}/transition/", {"to": "accepted"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING


def test_hard_delete_is_for_superusers_after_a_confirmation(client):
    product = ProductFactory()
    product_soft_delete(product=product, actor=staff_actor())
    login(client, OPERATIONS)
    post = {"action": "hard_delete_selected", "_selected_action": [str(product.pk)]}
    client.post("/admin/catalog/product/?deleted=deleted", {**post, "confirm": "yes"})
    assert Product.all_objects.filter(pk=product.pk).exists()

    login(client, OPERATIONS, is_superuser=True)
    page = client.post("/admin/catalog/product/?deleted=deleted", post)
    assert page.status_code == 200 and "confirm" in page.content.decode()
    assert Product.all_objects.filter(pk=product.pk).exists()  # not before the confirmation
    # A product no order refers to can go (its stock row with it).
    confirm_hard_delete(client, "/admin/catalog/product/?deleted=deleted", [product.pk])
    assert not Product.all_objects.filter(pk=product.pk).exists()


# --- One write path per model --------------------------------------------------------------------


def test_a_vendor_status_cannot_be_edited_in_the_form(client):
    vendor = VendorFactory(status=Vendor.Status.ACTIVE)
    login(client, OPERATIONS)
    data = {
        "name": vendor.name,
        "slug": vendor.slug,
        "phone": vendor.phone,
        "email": "",
        "city": "douala",
        "commission_bps": "1200",
        "status": "suspended",
    }
    response = client.post(f"/admin/catalog/vendor/{vendor.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    vendor.refresh_from_db()
    assert (vendor.status, vendor.commission_bps) == (Vendor.Status.ACTIVE, 1200)
    assert vendor.history.latest().history_change_reason == "vendor updated"


def test_deleting_a_product_in_admin_moves_its_version(client):
    product = ProductFactory()
    login(client, OPERATIONS)
    response = client.post(f"/admin/catalog/product/{product.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    deleted = Product.deleted_objects.get(pk=product.pk)
    assert deleted.version == product.version + 1


def test_a_refused_delete_is_shown_not_a_500(client):
    category = CategoryFactory()
    ProductFactory(category=category)
    login(client, OPERATIONS)
    response = client.post(f"/admin/catalog/category/{category.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert Category.objects.filter(pk=category.pk).exists()
    assert "Des produits encore en service renvoient à" in response.content.decode()


def test_a_refused_delete_reads_as_french_whatever_the_gender_of_what_is_named(client):
    # "… est encore utilisé par des commandes actifs" (a zone, a customer): the sentence agreed
    # with neither the rows named nor a feminine row ("la catégorie … est encore utilisé").
    from orders.models import Zone

    order = OrderFactory()
    login(client, OPERATIONS)
    client.cookies["django_language"] = "fr"
    url = f"/admin/orders/zone/{order.zone.pk}/delete/"
    page = client.post(url, {"post": "yes"}, follow=True).content.decode()
    assert Zone.objects.filter(pk=order.zone.pk).exists()
    assert f"Des commandes encore en service renvoient à {order.zone}" in page, page
    assert "commandes actifs" not in page and "encore utilisé" not in page
    client.cookies["django_language"] = "en"
    page = client.post(url, {"post": "yes"}, follow=True).content.decode()
    assert f"{order.zone} is still used by live orders: delete or move them first." in page


def test_a_service_refusal_on_a_form_shows_the_form_with_the_error(client):
    VendorFactory(slug="taken")
    vendor = VendorFactory(slug="mine")
    vendor_soft_delete(vendor=VendorFactory(slug="free-again"), actor=staff_actor())
    login(client, OPERATIONS)
    data = {
        "name": "X",
        "slug": "taken",
        "phone": vendor.phone,
        "email": "",
        "city": "douala",
        "commission_bps": "10",
    }
    response = client.post(f"/admin/catalog/vendor/{vendor.pk}/change/", data)
    assert response.status_code == 200
    assert "Un vendeur utilise déjà cet identifiant URL." in response.content.decode()
    assert Vendor.objects.get(pk=vendor.pk).slug == "mine"
    # a slug only a deleted vendor had is free
    response = client.post(f"/admin/catalog/vendor/{vendor.pk}/change/", {**data, "slug": "free-again"})
    assert response.status_code == 302


# --- Deleted rows are never offered, and refused when forged --------------------------------------


def test_autocomplete_never_offers_a_deleted_vendor(client):
    live, gone = VendorFactory(name="Boutique Akwa"), VendorFactory(name="Boutique Akwa fermée")
    vendor_soft_delete(vendor=gone, actor=staff_actor())
    login(client, OPERATIONS)
    response = client.get(
        "/admin/autocomplete/",
        {"term": "Akwa", "app_label": "catalog", "model_name": "product", "field_name": "vendor"},
    )
    assert response.status_code == 200
    ids = {r["id"] for r in response.json()["results"]}
    assert ids == {str(live.pk)}


def test_a_forged_post_naming_a_deleted_category_is_refused(client):
    category = CategoryFactory()
    category_soft_delete(category=category, actor=staff_actor())
    vendor = VendorFactory()
    login(client, OPERATIONS)
    data = {
        "vendor": str(vendor.pk),
        "sku": "X-1",
        "name": "X",
        "description": "",
        "price_xaf": "100",
        "compare_at_price_xaf": "",
        "unit": "piece",
        "is_active": "on",
        "attributes": "{}",
        "category": str(category.pk),
    }
    response = client.post("/admin/catalog/product/add/", data)
    assert response.status_code == 200
    assert not Product.all_objects.filter(sku="X-1").exists()


# --- Scheduled jobs (django-celery-beat's screen) -----------------------------------------------


def test_a_view_only_user_cannot_disable_or_run_a_scheduled_job_by_posting(client):
    from django.contrib.auth.models import Permission
    from django_celery_beat.models import PeriodicTask

    from tests.catalog.factories import UserFactory

    task = PeriodicTask.objects.get(task="credentials.prune_tokens")
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_periodictask"))
    client.force_login(viewer)
    url = "/admin/django_celery_beat/periodictask/"
    page = client.get(url)
    assert page.status_code == 200 and "disable_tasks" not in page.content.decode()
    for action in ("disable_tasks", "toggle_tasks"):
        client.post(url, {"action": action, "_selected_action": [str(task.pk)]})
        assert PeriodicTask.objects.get(pk=task.pk).enabled, action

    login(client, OPERATIONS)  # may change schedules
    client.post(url, {"action": "disable_tasks", "_selected_action": [str(task.pk)]})
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


def test_the_scheduled_jobs_screens_read_in_french(client, admin_user):
    from django_celery_beat.models import PeriodicTask

    client.force_login(admin_user)
    task = PeriodicTask.objects.get(task="backups.run_backup")
    pages = {
        "tasks": client.get("/admin/django_celery_beat/periodictask/").content.decode(),
        "task": client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/").content.decode(),
        "crontabs": client.get("/admin/django_celery_beat/crontabschedule/").content.decode(),
    }

    english = [
        "Nightly backup<",
        "Scheduler",
        "Human readable",
        "At 02:00",
        "only on Sunday",
        "past the hour",
    ]
    assert {name: [e for e in english if e in page] for name, page in pages.items()} == {n: [] for n in pages}
    assert "Sauvegarde nocturne" in pages["tasks"] and "À 02:00" in pages["tasks"]
    assert "dimanche" in pages["crontabs"]


# --- scheduled jobs: starting one needs what its own button needs ------------------------------


def _scheduler_user():
    """May change schedules, may not run backups (no role has this mix today: a custom group could)."""
    from django.contrib.auth.models import Permission

    from tests.catalog.factories import UserFactory

    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_periodictask", "change_periodictask"])
    )
    return user


def _queued() -> list[str]:
    import json

    import redis
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return [json.loads(m)["headers"]["task"] for m in broker.lrange("celery", 0, -1)]


@pytest.fixture
def empty_queue():
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery")


def _run_now(client, *task_names: str):
    from django_celery_beat.models import PeriodicTask

    ids = [str(t.pk) for t in PeriodicTask.objects.filter(task__in=task_names)]
    return client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "run_tasks", "_selected_action": ids},
        follow=True,
    )


def test_run_now_of_a_backup_needs_the_backup_permission_not_only_the_schedules(client, empty_queue):
    client.force_login(_scheduler_user())
    page = _run_now(client, "backups.run_backup", "credentials.prune_tokens").content.decode()
    assert _queued() == []  # all or nothing: the message says which job was refused
    assert "Sauvegarde nocturne" in page or "Nightly backup" in page

    _run_now(client, "credentials.prune_tokens")
    assert _queued() == ["credentials.prune_tokens"]

    login(client, OPERATIONS)  # holds backups.run_backup
    _run_now(client, "backups.run_backup")
    assert sorted(_queued()) == ["backups.run_backup", "credentials.prune_tokens"]


def test_a_schedule_cannot_be_pointed_at_a_job_the_user_may_not_start(client):
    from django.forms.models import model_to_dict
    from django_celery_beat.models import PeriodicTask

    client.force_login(_scheduler_user())
    prune = PeriodicTask.objects.get(task="credentials.prune_tokens")
    url = f"/admin/django_celery_beat/periodictask/{prune.pk}/change/"
    form = {k: v for k, v in model_to_dict(prune).items() if v is not None}
    refused = client.post(url, {**form, "regtask": "partitions.maintain_partitions", "task": ""})
    assert refused.status_code == 200 and "partitions.run_partition_maintenance" in refused.content.decode()
    assert PeriodicTask.objects.get(pk=prune.pk).task == "credentials.prune_tokens"

    # Its own task kept, a schedule of a job the user may not start can still be edited.
    backup = PeriodicTask.objects.get(task="backups.run_backup")
    form = {k: v for k, v in model_to_dict(backup).items() if v is not None}
    saved = client.post(
        f"/admin/django_celery_beat/periodictask/{backup.pk}/change/",
        {**form, "regtask": "backups.run_backup", "description": "moved by ops"},
    )
    assert saved.status_code == 302
    assert PeriodicTask.objects.get(pk=backup.pk).description == "moved by ops"


def test_when_a_backup_runs_is_decided_only_by_who_may_start_one(client):
    """Enabling, disabling, re-timing or deleting the backup schedule is starting (or stopping)
    backups: without `backups.run_backup`, only its name and description may change."""
    from django.contrib.auth.models import Permission
    from django.forms.models import model_to_dict
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    user = _scheduler_user()
    user.user_permissions.add(Permission.objects.get(codename="delete_periodictask"))
    client.force_login(user)
    backup = PeriodicTask.objects.get(task="backups.run_backup")
    before = model_to_dict(backup)
    url = f"/admin/django_celery_beat/periodictask/{backup.pk}/change/"
    form = {k: v for k, v in before.items() if v is not None}
    every_minute = CrontabSchedule.objects.create(minute="*", hour="*", timezone="Africa/Douala")

    for change in ({"enabled": ""}, {"crontab": every_minute.pk}, {"kwargs": '{"kind": "manual"}'}):
        refused = client.post(url, {**form, "regtask": "backups.run_backup", **change})
        assert refused.status_code == 200, change
        assert "backups.run_backup" in refused.content.decode(), change  # the permission it needs
    for action in ("disable_tasks", "toggle_tasks"):
        page = client.post(
            "/admin/django_celery_beat/periodictask/",
            {"action": action, "_selected_action": [str(backup.pk)]},
            follow=True,
        )
        assert "Rien n\u2019a été fait" in page.content.decode(), action
    assert (
        client.post(
            f"/admin/django_celery_beat/periodictask/{backup.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    bulk = client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "delete_selected", "_selected_action": [str(backup.pk)], "post": "yes"},
    )
    assert bulk.status_code == 403
    assert model_to_dict(PeriodicTask.objects.get(pk=backup.pk)) == before

    # A job without a button of its own: the change permission on schedules is enough.
    prune = PeriodicTask.objects.get(task="credentials.prune_tokens")
    client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "disable_tasks", "_selected_action": [str(prune.pk)]},
    )
    assert not PeriodicTask.objects.get(pk=prune.pk).enabled

    login(client, OPERATIONS)  # holds backups.run_backup
    assert client.post(url, {**form, "regtask": "backups.run_backup", "enabled": ""}).status_code == 302
    assert not PeriodicTask.objects.get(pk=backup.pk).enabled


# --- Users: deleting one would erase them from the audit trail ------------------------------------


def test_deleting_a_user_who_acted_is_refused_so_history_keeps_their_name(client):
    """Django's delete of a user sets history_user to NULL on every history row they wrote and
    deletes their vendor memberships for good (a tracked model, outside its services): refused,
    by the delete page and by the "delete selected" action; deactivating is the way."""
    from catalog.models import VendorMember
    from catalog.services import vendor_member_add
    from tests.catalog.factories import UserFactory

    clerk = role_user(OPERATIONS)
    product = ProductFactory(name="Riz")
    product_update(product=product, data={"name": "Riz long"}, actor=staff_actor(clerk))
    owner = UserFactory()
    vendor_member_add(vendor=product.vendor, user=owner, role="owner", actor=staff_actor())
    login(client, OPERATIONS, is_superuser=True)

    page = client.post(f"/admin/auth/user/{clerk.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200
    assert "désactivez plutôt le compte" in page.content.decode()  # the admin speaks French
    bulk = {"action": "delete_selected", "_selected_action": [str(owner.pk)], "post": "yes"}
    client.post("/admin/auth/user/", bulk)

    assert product.history.latest().history_user == clerk
    assert VendorMember.objects.filter(user=owner, vendor=product.vendor).exists()

    nobody = UserFactory()  # never did anything: may go
    client.post(f"/admin/auth/user/{nobody.pk}/delete/", {"post": "yes"})
    assert not type(nobody).objects.filter(pk=nobody.pk).exists()


# --- Users and roles: nobody grants what they do not hold ------------------------------------------


def _user_manager():
    """May edit users and roles (no role holds this today: a custom group could), nothing else."""
    from django.contrib.auth.models import Permission

    from tests.catalog.factories import UserFactory

    manager = UserFactory(is_staff=True)
    manager.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="auth",
            codename__in=["view_user", "change_user", "delete_user", "view_group", "change_group"],
        )
    )
    return manager


def _posted(client, url: str, **changes):
    """POST the admin form at `url` as it is shown, with `changes`."""
    form = client.get(url).context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if getattr(field.widget, "widgets", None):  # a date and a time: posted as name_0, name_1
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = part.isoformat() if part else ""
            continue
        if value is None or value is False:
            continue
        data[name] = [str(v) for v in value] if isinstance(value, list | tuple) else value
    return client.post(url, {**data, **changes})


def test_a_user_manager_grants_no_role_or_permission_beyond_their_own(client):
    from django.contrib.auth.models import Group, Permission

    from tests.catalog.factories import UserFactory

    manager = _user_manager()
    clerk = UserFactory(is_staff=True)
    client.force_login(manager)
    url = f"/admin/auth/user/{clerk.pk}/change/"

    operations = Group.objects.get(name=OPERATIONS)
    refused = _posted(client, url, groups=[str(operations.pk)])
    assert refused.status_code == 200
    assert "Vous ne pouvez pas accorder des permissions que vous n" in refused.content.decode()
    run_backup = Permission.objects.get(codename="run_backup")
    _posted(client, url, user_permissions=[str(run_backup.pk)])
    _posted(client, url, is_superuser="on")
    clerk.refresh_from_db()
    assert not clerk.groups.exists() and not clerk.user_permissions.exists() and not clerk.is_superuser

    readers = Group.objects.create(name="Lecteurs des comptes")
    readers.permissions.add(Permission.objects.get(codename="view_user"))
    ok = _posted(client, url, groups=[str(readers.pk)])
    assert ok.status_code == 302, ok.context["adminform"].form.errors  # held by the manager
    assert list(clerk.groups.all()) == [readers]

    # Nor through a role's permissions (their own included), nor by taking over a superuser.
    mine = Group.objects.create(name="Gestion des comptes")
    manager.groups.add(mine)
    _posted(client, f"/admin/auth/group/{mine.pk}/change/", permissions=[str(run_backup.pk)])
    assert not mine.permissions.exists()
    boss = UserFactory(is_staff=True, is_superuser=True)
    assert client.post(f"/admin/auth/user/{boss.pk}/change/", {"username": "x"}).status_code == 403
    assert client.post(f"/admin/auth/user/{boss.pk}/password/", {"password1": "x"}).status_code == 403
    client.post(
        "/admin/auth/user/", {"action": "delete_selected", "_selected_action": [str(boss.pk)], "post": "yes"}
    )
    boss.refresh_from_db()
    assert boss.is_superuser and boss.username != "x"


def test_a_user_manager_takes_over_no_account_that_holds_more_than_they_do(client):
    """Setting the password of a Finance clerk (or re-activating, renaming, deleting them) would
    give the manager Finance's permissions: an account holding a permission the editor lacks is
    theirs to read only, inactive or not."""
    from tests.catalog.factories import UserFactory

    manager = _user_manager()
    client.force_login(manager)
    for finance in (role_user(FINANCE), role_user(FINANCE, is_active=False)):
        url = f"/admin/auth/user/{finance.pk}"
        assert client.get(f"{url}/password/").status_code == 403
        assert (
            client.post(f"{url}/password/", {"password1": "S3cret!x", "password2": "S3cret!x"}).status_code
            == 403
        )
        assert client.post(f"{url}/change/", {"username": "x", "is_active": "on"}).status_code == 403
        assert client.post(f"{url}/delete/", {"post": "yes"}).status_code == 403
        client.post(
            "/admin/auth/user/",
            {"action": "delete_selected", "_selected_action": [str(finance.pk)], "post": "yes"},
        )
        before = (finance.username, finance.password, finance.is_active)
        finance.refresh_from_db()
        assert (finance.username, finance.password, finance.is_active) == before

    # An account holding nothing the manager lacks stays theirs to manage.
    clerk = UserFactory(is_staff=True)
    assert client.get(f"/admin/auth/user/{clerk.pk}/password/").status_code == 200
    assert _posted(client, f"/admin/auth/user/{clerk.pk}/change/", first_name="Awa").status_code == 302


def test_a_user_manager_strips_or_drops_no_role_that_holds_more_than_they_do(client):
    """Editing roles is not a way to take Finance's permissions away (or to delete Finance): a role
    holding a permission the editor lacks is theirs to read only."""
    from django.contrib.auth.models import Group, Permission

    manager = _user_manager()
    manager.user_permissions.add(Permission.objects.get(codename="delete_group"))
    client.force_login(manager)
    finance = Group.objects.get(name=FINANCE)
    held = set(finance.permissions.values_list("pk", flat=True))
    url = f"/admin/auth/group/{finance.pk}"
    assert client.get(f"{url}/change/").status_code == 200  # readable
    assert client.post(f"{url}/change/", {"name": FINANCE, "permissions": []}).status_code == 403
    assert client.post(f"{url}/delete/", {"post": "yes"}).status_code == 403
    client.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [str(finance.pk)], "post": "yes"},
    )
    assert set(Group.objects.get(pk=finance.pk).permissions.values_list("pk", flat=True)) == held

    # A role holding nothing the manager lacks stays theirs to edit.
    readers = Group.objects.create(name="Lecteurs des comptes")
    readers.permissions.add(*Permission.objects.filter(codename__in=["view_user", "view_group"]))
    view_user = Permission.objects.get(codename="view_user")
    ok = _posted(client, f"/admin/auth/group/{readers.pk}/change/", permissions=[str(view_user.pk)])
    assert ok.status_code == 302
    assert list(readers.permissions.all()) == [view_user]


def test_a_backup_schedule_is_not_taken_off_backups_by_pointing_it_elsewhere(client):
    """Moving the backup's schedule to another job stops backups, as disabling it would."""
    from django.forms.models import model_to_dict
    from django_celery_beat.models import PeriodicTask

    client.force_login(_scheduler_user())
    backup = PeriodicTask.objects.get(task="backups.run_backup")
    before = model_to_dict(backup)
    url = f"/admin/django_celery_beat/periodictask/{backup.pk}/change/"
    form = {k: v for k, v in before.items() if v is not None}

    refused = client.post(url, {**form, "regtask": "credentials.prune_tokens", "task": ""})
    assert refused.status_code == 200
    assert "backups.run_backup" in refused.content.decode()
    assert model_to_dict(PeriodicTask.objects.get(pk=backup.pk)) == before


def _inline_management(client, url: str) -> dict[str, str]:
    """What the change page's inlines post (they are read-only): management forms and row ids."""
    page = client.get(f"{url}/change/")
    data: dict[str, str] = {}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
        for form in formset.initial_forms:
            data[form.add_prefix("id")] = str(form.instance.pk)
            data[form.add_prefix(formset.fk.name)] = str(formset.instance.pk)
    return data


def test_the_backup_is_not_re_timed_through_its_crontab(client):
    """The backup's crontab is shared by reference: changing it (or deleting it, which deletes
    its schedules) decides when backups run, so it needs `backups.run_backup` too."""
    from django.contrib.auth.models import Permission
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    user = _scheduler_user()
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_crontabschedule", "change_crontabschedule", "delete_crontabschedule"]
        )
    )
    client.force_login(user)
    crontab = PeriodicTask.objects.get(task="backups.run_backup").crontab
    before = (crontab.minute, crontab.hour, crontab.day_of_week)
    url = f"/admin/django_celery_beat/crontabschedule/{crontab.pk}"
    changed = {
        "minute": "0",
        "hour": "2",
        "day_of_month": "31",
        "month_of_year": "2",
        "day_of_week": "*",
        "timezone": "Africa/Douala",
    }
    assert client.post(f"{url}/change/", {**changed, **_inline_management(client, url)}).status_code == 403
    assert client.post(f"{url}/delete/", {"post": "yes"}).status_code == 403
    crontab.refresh_from_db()
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == before

    # A crontab of jobs without a button of their own: the change permission is enough.
    spare = CrontabSchedule.objects.create(minute="5", hour="4", timezone="Africa/Douala")
    url = f"/admin/django_celery_beat/crontabschedule/{spare.pk}"
    saved = client.post(f"{url}/change/", {**changed, "hour": "6", **_inline_management(client, url)})
    assert saved.status_code == 302
    spare.refresh_from_db()
    assert spare.hour == "6"


def test_a_history_version_shows_the_change_pages_fields_and_links_back_to_the_history(client):
    # The version's page listed every column (the product's full-text search vector, in English,
    # as "Search vector") and its "History" tab had no link (unfold built it from the historical
    # model's name: clicking it did nothing but raise a script error).
    product = ProductFactory(name="Riz parfumé")
    first = product.history.earliest()
    product_update(product=product, data={"name": "Riz"}, actor=staff_actor())
    login(client, STOCK)
    page = client.get(f"/admin/catalog/product/{product.pk}/history/{first.history_id}/")
    body = page.content.decode()
    shown = {field for line in page.context["adminform"] for row in line for field in row.fields}
    assert "search_vector" not in shown and "Search vector" not in body
    assert "name" in shown and "Riz parfumé" in body
    assert f'href="/admin/catalog/product/{product.pk}/history/"' in body
    assert "actionDropdownOpen" not in body


@pytest.mark.django_db(transaction=True)  # as served: the revert view runs in no test transaction
def test_a_revert_posted_with_the_change_forms_opening_time_is_refused_not_a_500(client, admin_user):
    """A revert form posted with `_okada_loaded_at` (a stale tab, a crafted POST) is checked like
    the change form: under the row lock, in the revert's own transaction, refused with the
    message; never a TransactionManagementError (a 500)."""
    product = ProductFactory(name="Riz parfumé", price_xaf=1000)
    first = product.history.earliest()
    opened = product.updated_at.isoformat()
    product_update(product=product, data={"price_xaf": 1500, "name": "Riz"}, actor=staff_actor())
    url = f"/admin/catalog/product/{product.pk}/history/{first.history_id}/"

    client.force_login(admin_user)
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    refused = client.post(url, {**data, "is_active": "on", "_okada_loaded_at": opened})
    assert refused.status_code == 200
    assert "Quelqu\u2019un d\u2019autre a enregistré cette fiche" in refused.content.decode()
    product.refresh_from_db()
    assert (product.name, product.price_xaf, product.version) == ("Riz", 1500, 2)


@pytest.mark.django_db(transaction=True)  # as served: the revert view runs in no test transaction
def test_a_revert_form_opened_before_someone_elses_save_does_not_undo_it(client, admin_user):
    """The revert form carries the live row's time when it was opened: a save made meanwhile by
    someone else is not silently replaced; posting the refused form again is a choice."""
    product = ProductFactory(name="Riz parfumé", price_xaf=1000)
    first = product.history.earliest()
    url = f"/admin/catalog/product/{product.pk}/history/{first.history_id}/"

    client.force_login(admin_user)
    page = client.get(url)
    opened = re.search(r'name="_okada_loaded_at" value="([^"]+)"', page.content.decode())
    assert opened is not None and opened.group(1) == product.updated_at.isoformat()
    form = page.context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    data.update({"is_active": "on", "_okada_loaded_at": opened.group(1)})

    product_update(product=product, data={"price_xaf": 1500}, actor=staff_actor())  # someone else
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "Quelqu\u2019un d\u2019autre a enregistré cette fiche" in refused.content.decode()
    product.refresh_from_db()
    assert (product.price_xaf, product.version) == (1500, 2)

    again = re.search(r'name="_okada_loaded_at" value="([^"]+)"', refused.content.decode())
    assert again is not None and again.group(1) == product.updated_at.isoformat()
    reverted = client.post(url, {**data, "_okada_loaded_at": again.group(1)})
    assert reverted.status_code == 302
    product.refresh_from_db()
    assert (product.price_xaf, product.version) == (1000, 3)


def test_a_role_keeps_its_name_so_its_migrations_still_grant_to_it(client, admin_user):
    from django.contrib.auth.models import Group

    operations = Group.objects.get(name=OPERATIONS)
    client.force_login(admin_user)
    url = f"/admin/auth/group/{operations.pk}/change/"
    page = client.get(url)
    assert "name" not in page.context["adminform"].form.fields
    permissions = [str(pk) for pk in operations.permissions.values_list("pk", flat=True)]
    client.post(url, {"name": "Ops", "permissions": permissions})
    assert Group.objects.filter(pk=operations.pk, name=OPERATIONS).exists()

    custom = Group.objects.create(name="Lecteurs")  # not a role: renamed freely
    client.post(f"/admin/auth/group/{custom.pk}/change/", {"name": "Lecteurs du catalogue"})
    assert Group.objects.filter(pk=custom.pk, name="Lecteurs du catalogue").exists()


def test_an_action_says_what_it_did_delete_restore_or_cancel_not_updated(client):
    # After "delete selected" and "restore" the message said "2 rows updated": staff could not
    # tell a delete from an edit, nor where the deleted rows went.
    vendor = VendorFactory()
    products = [ProductFactory(vendor=vendor) for _ in range(2)]
    login(client, OPERATIONS)
    client.cookies["django_language"] = "fr"

    def said(url: str, action: str, rows: list, **extra: str) -> list[str]:
        data = {"action": action, "_selected_action": [str(r.pk) for r in rows], "index": "0", **extra}
        response = client.post(url, data, follow=True)  # the list shows (and consumes) them
        return [str(m) for m in response.context["messages"]]

    ids = [p.pk for p in products]
    deleted = said("/admin/catalog/product/", "delete_selected", products, post="yes")
    assert deleted == [
        "2 éléments supprimés\u00a0: le filtre «\u00a0supprimés\u00a0» les affiche, pour les restaurer."
    ]
    assert not Product.objects.filter(pk__in=ids).exists()
    restored = said("/admin/catalog/product/?deleted=deleted", "restore_selected", products[:1])
    assert restored == ["1 élément restauré."]
    assert Product.objects.filter(pk__in=ids).count() == 1
    order = OrderFactory()
    cancelled = said("/admin/orders/order/", "cancel_orders", [order])
    assert cancelled == ["1 commande annulée\u00a0: son stock est libéré."]
    client.cookies["django_language"] = "en"
    deleted = said("/admin/catalog/product/", "delete_selected", products[:1], post="yes")
    assert deleted == ["1 row deleted: the “deleted” filter shows it, to restore it."]


def test_a_rows_refusal_in_a_bulk_action_is_named_in_the_pages_typography(client):
    order = OrderFactory()  # open: the delete is refused, and named
    login(client, OPERATIONS)
    data = {"action": "delete_selected", "_selected_action": [str(order.pk)], "post": "yes", "index": "0"}
    for language, said in (
        ("fr", f"{order.number}\u00a0: Une commande en cours ne peut pas être supprimée"),
        ("en", f"{order.number}: An open order cannot be deleted"),
    ):
        client.cookies["django_language"] = language
        response = client.post("/admin/orders/order/", data, follow=True)
        messages = [str(m) for m in response.context["messages"]]
        assert len(messages) == 1 and messages[0].startswith(said), messages
    assert Order.objects.filter(pk=order.pk).exists()


def _vendor(**fields):
    return VendorFactory(**fields)


def _refund_owed():
    from tests.orders.factories import payment_needing_refund

    return payment_needing_refund()


def _device():
    from tests.sync.factories import Phone

    return Phone(VendorFactory()).device


def _conflict():
    from tests.sync.factories import stale_count_conflict

    return stale_count_conflict(VendorFactory())[0]


def _key():
    from okada.credentials.services import api_key_issue

    return api_key_issue(name="erp", vendor=VendorFactory(), actor=staff_actor()).key


def _token():
    from catalog.services import vendor_member_add
    from okada.credentials.services import personal_token_issue
    from tests.catalog.factories import UserFactory

    user = UserFactory(username="awa")
    user.set_password("pw")
    user.save()
    vendor_member_add(vendor=VendorFactory(), user=user, role="owner", actor=staff_actor())
    return personal_token_issue(username="awa", password="pw").token


def _alert():
    from okada.health.models import Alert

    return Alert.objects.create(key="probe:x", kind="probe", severity="warning", message="m")


@pytest.mark.parametrize(
    ("changelist", "action", "make", "said"),
    [
        ("catalog/vendor", "activate", lambda: _vendor(status="pending"), "1 vendeur activé."),
        (
            "catalog/vendor",
            "suspend",
            _vendor,
            "1 vendeur suspendu\u00a0: ses produits ne peuvent plus être commandés.",
        ),
        ("orders/payment", "settle_refunds", _refund_owed, "1 remboursement enregistré comme effectué."),
        ("sync/device", "revoke", _device, "1 appareil révoqué\u00a0: il ne peut plus se synchroniser."),
        ("sync/syncconflict", "keep_server", _conflict, "1 conflit résolu."),
        ("credentials/apikey", "revoke", _key, "1 clé révoquée."),
        ("credentials/personaltoken", "revoke", _token, "1 jeton révoqué."),
        ("health/alert", "acknowledge", _alert, "1 alerte prise en charge."),
    ],
)
def test_every_action_says_what_it_did_in_the_pages_language(
    client, admin_user, changelist, action, make, said
):
    # They all said "1 row updated." ("1 élément mis à jour."), and acknowledging "1 alerte(s)".
    row = make()
    client.force_login(admin_user)
    client.cookies["django_language"] = "fr"
    data = {"action": action, "_selected_action": [str(row.pk)], "index": "0"}
    data |= {"confirm": "yes", "note": "rendu"}  # the refunds' confirmation
    response = client.post(f"/admin/{changelist}/", data, follow=True)
    assert [str(m) for m in response.context["messages"]] == [said]
