"""Roles are groups made by migrations; the actor's permissions come from them."""

from __future__ import annotations

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group

from okada.core.actors import Actor
from okada.core.roles import FINANCE, OPERATIONS, ROLES, STOCK, SUPPORT, grant, revoke
from tests.catalog.factories import role_user

pytestmark = pytest.mark.django_db


def perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


def test_migrations_create_the_four_roles():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


def test_each_role_gets_what_its_job_needs_and_not_more():
    ops, stock, support, finance = perms(OPERATIONS), perms(STOCK), perms(SUPPORT), perms(FINANCE)
    assert {
        "orders.transition_order",
        "catalog.change_vendor",
        "catalog.add_product",
        "orders.export_orders",
    } <= ops
    assert "orders.refund_order" not in ops
    assert {"catalog.adjust_stock", "catalog.count_stock", "catalog.view_product"} <= stock
    assert not {p for p in stock if p.startswith("orders.")}
    assert not {p for p in stock if p.split(".")[1].startswith(("change_", "add_", "delete_"))}
    assert {"orders.view_order", "orders.view_customer", "orders.add_order_note"} <= support
    assert "orders.transition_order" not in support and "orders.change_order" not in support
    assert {"orders.refund_order", "orders.view_payment", "orders.export_orders"} <= finance
    assert "orders.transition_order" not in finance


def test_operations_follow_offline_sync_and_issue_and_revoke_api_keys():
    ops = perms(OPERATIONS)
    sync = {
        "sync.view_device",
        "sync.view_syncconflict",
        "sync.resolve_syncconflict",
        "sync.revoke_device",
    }
    keys = {"credentials.view_apikey", "credentials.add_apikey", "credentials.change_apikey"}
    assert sync | keys | {"credentials.change_personaltoken"} <= ops
    assert "credentials.delete_apikey" not in ops  # deleting a key for good: superusers only
    for role in (STOCK, SUPPORT, FINANCE):
        assert not {p for p in perms(role) if p.startswith(("sync.", "credentials."))}, role
    actor = Actor.for_staff_user(role_user(OPERATIONS))
    assert actor.can("sync.resolve_syncconflict") and actor.can("credentials.add_apikey")
    assert not Actor.for_staff_user(role_user(SUPPORT)).can("sync.revoke_device")


def test_grant_is_idempotent_and_revoke_takes_back(django_db_blocker):
    before = perms(SUPPORT)
    grant(global_apps, {SUPPORT: ["orders.view_order", "orders.export_orders"]})
    grant(global_apps, {SUPPORT: ["orders.view_order", "orders.export_orders"]})
    assert perms(SUPPORT) == before | {"orders.export_orders"}
    revoke(global_apps, {SUPPORT: ["orders.export_orders"]})
    assert perms(SUPPORT) == before


def test_grant_refuses_an_unknown_permission():
    with pytest.raises(LookupError, match=r"orders\.fly_order"):
        grant(global_apps, {SUPPORT: ["orders.fly_order"]})


def test_the_actor_of_a_support_user_may_note_but_not_move_orders():
    actor = Actor.for_staff_user(role_user(SUPPORT))
    assert actor.can("orders.add_order_note")
    assert not actor.can("orders.transition_order")
