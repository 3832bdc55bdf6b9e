"""What the admin's delete confirmation pages list (an object's delete page and the "delete
selected" action's), in the page's language.

Django lists every row a delete removes, each as "<model>: <the row>", and counts them per model
in the page's summary. Among them are the rows of the link tables Django makes for many-to-many
fields (a user's roles and permissions, a role's permissions and members): models with no name of
their own ("Relation user-group", fixed in English when the model was made) and no `__str__`, so
French pages read "Relation user-group: User_groups object (3)", and each row named the other
side with a query of its own. Here such a row says what the delete unlinks
("Permission (lien supprimé) : Catalogue | produit | Peut voir les produits" under the role), and
is counted as "Liens entre groupes et permissions". Roles and permissions are named in the page's
language. The delete permission is checked on every registered model's rows, as Django does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from django.contrib.admin.utils import NestedObjects, quote
from django.db import router
from django.db.models import ForeignKey, Model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext

from .permission_labels import permission_label
from .roles import role_label


def named(obj: Any) -> str:
    """A row as staff read it: a permission or a role in the page's language, else its str()."""
    from django.contrib.auth.models import Group, Permission

    if isinstance(obj, Permission):
        return permission_label(obj)
    if isinstance(obj, Group):
        return role_label(obj.name)
    return str(obj)


def row_line(model_name: Any, shown: Any, *, link: bool = False) -> str:
    """ "<Model>: <row>" as the page's language writes it (French puts a space before the colon);
    a link row "<Model> (link removed): <row>". `shown` is escaped unless it is safe HTML."""
    line = gettext("%(model)s (link removed): %(object)s") if link else gettext("%(model)s: %(object)s")
    return mark_safe(  # noqa: S308  (both values are escaped)
        line % {"model": conditional_escape(capfirst(model_name)), "object": conditional_escape(shown)}
    )


def _links(model: Any) -> tuple[Any, Any]:
    """The two foreign keys of a many-to-many field's link model: (from, to)."""
    keys = [f for f in model._meta.fields if isinstance(f, ForeignKey)]
    return keys[0], keys[1]


def _is_link(model: Any) -> bool:
    return bool(model._meta.auto_created)


def _plural(model: Any) -> str:
    if _is_link(model):
        source, target = _links(model)
        return gettext("links between %(models)s and %(others)s") % {
            "models": source.related_model._meta.verbose_name_plural,
            "others": target.related_model._meta.verbose_name_plural,
        }
    return str(model._meta.verbose_name_plural)


def _linked_side(row: Model, deleted: dict[Any, set[Any]]) -> Any:
    """The key of a link row that points away from the rows being deleted."""
    source, target = _links(type(row))
    if getattr(row, source.attname) in deleted.get(source.related_model, set()):
        return target
    return source


def _load_linked(collector: NestedObjects, deleted: dict[Any, set[Any]]) -> None:
    """What the link rows point to, one query per link table (the collector selected only the
    side being deleted): a role with 300 permissions is named in two queries, not 600."""
    from django.contrib.auth.models import Permission

    for model, rows in collector.model_objs.items():
        if not _is_link(model):
            continue
        by_key: dict[Any, list[Model]] = {}
        for row in rows:
            by_key.setdefault(_linked_side(row, deleted), []).append(row)
        for key, linked in by_key.items():
            target = key.related_model
            queryset = target._base_manager.all()
            if target is Permission:
                queryset = queryset.select_related("content_type")
            found = queryset.in_bulk({getattr(row, key.attname) for row in linked})
            for row in linked:
                key.set_cached_value(row, found.get(getattr(row, key.attname)))


def deleted_objects(
    objs: Iterable[Model], request: HttpRequest, admin_site: Any
) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
    """Django's `get_deleted_objects` (the nested list, the count per model, the names of the
    models whose rows the user may not delete, the protected rows), with link rows in words."""
    objs = list(objs)
    if not objs:
        return [], {}, set(), []
    origin: Any = objs  # Django passes a list too (the delete page's one row)
    collector = NestedObjects(using=router.db_for_write(type(objs[0])), origin=origin)
    collector.collect(objs)
    deleted = {model: {row.pk for row in rows} for model, rows in collector.model_objs.items()}
    _load_linked(collector, deleted)
    perms_needed: set[str] = set()

    def format_callback(obj: Model) -> str:
        model, opts = type(obj), obj._meta
        if _is_link(model):
            key = _linked_side(obj, deleted)
            other = getattr(obj, key.name)
            return row_line(key.related_model._meta.verbose_name, named(other), link=True)
        if not admin_site.is_registered(model):
            return row_line(opts.verbose_name, named(obj))
        if not admin_site.get_model_admin(model).has_delete_permission(request, obj):
            perms_needed.add(str(opts.verbose_name))
        try:
            url = reverse(
                f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)]
            )
        except NoReverseMatch:
            return row_line(opts.verbose_name, named(obj))
        return row_line(opts.verbose_name, format_html('<a href="{}">{}</a>', url, named(obj)))

    to_delete = collector.nested(format_callback)
    protected = [format_callback(obj) for obj in collector.protected]
    model_count = {_plural(model): len(rows) for model, rows in collector.model_objs.items()}
    return to_delete, model_count, perms_needed, protected


class DeletionInWords:
    """An admin whose delete pages list the rows in the page's language (see the module)."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        return deleted_objects(objs, request, self.admin_site)  # type: ignore[attr-defined]

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> Any:
        # The page's question names the row ("… supprimer le groupe « Exploitation » ?"): a role by
        # its name in the page's language. The page also builds URLs from the row (unfold's back
        # button), so it gets a copy of the row named so, never saved.
        from django.contrib.auth.models import Group

        group = context.get("object")
        if isinstance(group, Group) and named(group) != group.name:
            shown = copy.copy(group)
            shown.name = named(group)
            context["object"] = shown
        return super().render_delete_form(request, context)  # type: ignore[misc]
