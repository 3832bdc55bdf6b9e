"""Staff roles are Django groups, made and kept in step by data migrations.

    Operations  orders, vendors, catalog (the day-to-day back office)
    Stock       stock counts and adjustments only
    Support     reads orders and customers, adds notes to orders
    Finance     payments, refunds and the `needs_refund` follow-up

Each app grants its own permissions from a migration of its own, so a new app (or a later
migration that adds a permission) puts itself into the roles without touching the others::

    from okada.core.roles import OPERATIONS, grant_operation

    operations = [grant_operation({OPERATIONS: ["catalog.view_vendor", ...]})]

`grant` is idempotent (a group or permission already there is kept), and permissions the
migration names are created first (Django would otherwise create them only after `migrate`).
The actor's permissions then come from the user's groups (`Actor.for_staff_user(user).can()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import migrations
from django.utils.translation import pgettext, pgettext_lazy

# The groups' names, stored in English (migrations and code find the groups by them); the admin
# shows them in the page's language through role_label.
OPERATIONS = "Operations"
STOCK = "Stock"
SUPPORT = "Support"
FINANCE = "Finance"
ROLES = (OPERATIONS, STOCK, SUPPORT, FINANCE)
# For `make messages` (role_label translates the stored names in this context).
_ROLE_NAMES = (
    pgettext_lazy("staff role", "Operations"),
    pgettext_lazy("staff role", "Stock"),
    pgettext_lazy("staff role", "Support"),
    pgettext_lazy("staff role", "Finance"),
)


def role_label(name: str) -> str:
    """A group's name in the active language: a role's translated, any other group's as typed."""
    return pgettext("staff role", name) if name in ROLES else name


def _permissions(apps: Any, names: Iterable[str]) -> list[Any]:
    from django.contrib.auth.management import create_permissions

    Permission = apps.get_model("auth", "Permission")
    names = sorted(set(names))
    for label in {name.split(".", 1)[0] for name in names}:
        config = apps.get_app_config(label)
        if getattr(config, "models_module", None) is None:
            config.models_module = True  # create_permissions skips app configs without one (migration stubs)
        create_permissions(config, apps=apps, verbosity=0)
    found = {
        f"{p.content_type.app_label}.{p.codename}": p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[n.split(".", 1)[1] for n in names]
        )
    }
    missing = [n for n in names if n not in found]
    if missing:
        raise LookupError(f"unknown permissions: {', '.join(missing)}")
    return [found[n] for n in names]


def grant(apps: Any, grants: Mapping[str, Iterable[str]]) -> None:
    """Give each role (group, made if missing) the permissions `app_label.codename` listed."""
    Group = apps.get_model("auth", "Group")
    for role, names in grants.items():
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.add(*_permissions(apps, names))


def revoke(apps: Any, grants: Mapping[str, Iterable[str]]) -> None:
    """Take the listed permissions away from the roles (the reverse of `grant`)."""
    Group = apps.get_model("auth", "Group")
    for role, names in grants.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, names))


def grant_operation(grants: Mapping[str, Iterable[str]]) -> migrations.RunPython:
    """A migration operation granting `grants`; reversed, it takes them back."""
    operation = migrations.RunPython(
        lambda apps, schema_editor: grant(apps, grants),
        lambda apps, schema_editor: revoke(apps, grants),
    )
    # read by replay_grants()
    operation.okada_grants = grants  # type: ignore[attr-defined]
    return operation


def replay_grants() -> None:
    """Grant again what every migration granted, in migration order (after a database flush,
    which keeps permissions but empties the groups: transactional tests, `manage.py flush`)."""
    from django.apps import apps
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    for key in loader.graph.leaf_nodes():
        for app_label, name in loader.graph.forwards_plan(key):
            for operation in loader.graph.nodes[(app_label, name)].operations:
                if hasattr(operation, "okada_grants"):
                    grant(apps, operation.okada_grants)
