"""Catalog test data. Vendors are plain rows (setup); products go through `product_create`, so
every product has its Stock row and its initial stock is in the ledger like in production."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from catalog.models import Category, Product, Vendor
from catalog.services import product_create
from okada.core.actors import Actor


class UserFactory(factory.django.DjangoModelFactory[Any]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.cm")


class VendorFactory(factory.django.DjangoModelFactory[Vendor]):
    class Meta:
        model = Vendor

    name = factory.Sequence(lambda n: f"Boutique {n}")
    slug = factory.Sequence(lambda n: f"boutique-{n}")
    phone = factory.Sequence(lambda n: f"+237677{n:06d}")
    city = "douala"
    status = Vendor.Status.ACTIVE
    commission_bps = 1000


class CategoryFactory(factory.django.DjangoModelFactory[Category]):
    class Meta:
        model = Category

    slug = factory.Sequence(lambda n: f"rayon-{n}")
    name_fr = factory.Sequence(lambda n: f"Rayon {n}")
    name_en = factory.Sequence(lambda n: f"Aisle {n}")


class ProductFactory(factory.Factory[Product]):
    """`ProductFactory(vendor=v, initial_stock=10)`: created by the service, with stock and ledger."""

    class Meta:
        model = Product

    vendor = factory.SubFactory(VendorFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"Produit {n}")
    price_xaf = 1000
    initial_stock = 0
    actor = factory.LazyFunction(lambda: Actor.system("factory"))

    @classmethod
    def _create(cls, model_class: type[Product], *args: Any, **kwargs: Any) -> Product:
        return product_create(**kwargs)


def staff_actor(user: Any = None) -> Actor:
    """A staff actor; by default a superuser (every permission): role tests use `role_user`."""
    return Actor(role=Actor.STAFF, user=user or UserFactory(is_staff=True, is_superuser=True))


def role_user(*roles: str, username: str | None = None, **fields: Any) -> Any:
    """An active staff user in the given role groups (Operations, Stock, Support, Finance)."""
    from django.contrib.auth.models import Group

    from okada.core.roles import replay_grants

    if Group.objects.filter(name__in=roles).count() < len(set(roles)):
        replay_grants()  # a transactional test's flush emptied the groups the migrations made
    fields.setdefault("is_staff", True)
    user: Any = UserFactory(**({"username": username} if username else {}), **fields)
    user.set_password("pw")
    user.save()
    user.groups.set(Group.objects.filter(name__in=roles))
    return user


def vendor_actor(vendor: Vendor, user: Any = None) -> Actor:
    return Actor(role=Actor.VENDOR, user=user or UserFactory(), vendor_id=vendor.pk)
