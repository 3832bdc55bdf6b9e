"""Actors: who acts, and what they may do (permissions come from the user's groups)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import translation

from okada.core.actors import Actor
from okada.core.errors import NotAllowed

pytestmark = pytest.mark.django_db


def test_a_logged_in_user_who_is_not_staff_gets_no_staff_actor(django_user_model):
    user = django_user_model.objects.create_user(username="client", password="pw")
    with pytest.raises(NotAllowed):
        Actor.for_staff_user(user)
    user.is_staff, user.is_active = True, False
    with pytest.raises(NotAllowed):
        Actor.for_staff_user(user)


def test_staff_permissions_come_from_their_groups(django_user_model):
    user = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    actor = Actor.for_staff_user(user)
    assert not actor.can("orders.change_order")
    with pytest.raises(NotAllowed) as refused:
        actor.require("orders.change_order")
    assert refused.value.data["permission"] == "orders.change_order"

    group = Group.objects.create(name="Ops test")
    group.permissions.add(Permission.objects.get(codename="change_order", content_type__app_label="orders"))
    user.groups.add(group)
    user = django_user_model.objects.get(pk=user.pk)  # permissions are cached per user object
    assert Actor.for_staff_user(user).can("orders.change_order")


def test_superusers_and_the_system_may_do_anything_vendors_no_django_permission(django_user_model):
    root = django_user_model.objects.create_superuser(username="root", password="pw", email="r@x.cm")
    assert Actor.for_staff_user(root).can("orders.change_order")
    assert Actor.system("job").can("orders.change_order")
    assert not Actor(role=Actor.VENDOR, vendor_id=1).can("orders.change_order")
    assert not Actor(role=Actor.STOREFRONT).can("orders.change_order")


@pytest.mark.parametrize(
    ("perm", "en", "fr"),
    [
        ("catalog.count_stock", "Can record a stock count", "Peut enregistrer un inventaire"),
        ("orders.change_order", "Can change orders", "Peut modifier\u00a0: commandes"),
        ("nothing.such", "nothing.such", "nothing.such"),
    ],
)
def test_a_refusal_names_the_permission_in_the_readers_language_and_by_its_code(
    django_user_model, perm, en, fr
):
    clerk = django_user_model.objects.create_user(username="clerk", password="pw", is_staff=True)
    with pytest.raises(NotAllowed) as refused:
        Actor.for_staff_user(clerk).require(perm)
    assert refused.value.data["permission"] == perm
    with translation.override("en"):
        assert str(refused.value.text) == (
            f"You do not have the permission “{en}” ({perm}): ask an administrator for a role that has it."
        )
    with translation.override("fr"):
        assert str(refused.value.text) == (
            f"Vous n\u2019avez pas la permission «\u00a0{fr}\u00a0» ({perm})\u00a0: "
            "demandez à un administrateur un rôle qui l\u2019a."
        )
