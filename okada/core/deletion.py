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

Both pages count what a delete removes rather than load it (`hard_delete_summary`): a user with
50,000 admin log entries or a role with thousands of members gets a page of a few queries, the
first rows of each model named and "and N more".
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.admin.utils import quote
from django.db.models import CASCADE, DO_NOTHING, PROTECT, RESTRICT, ForeignKey, Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.formats import number_format
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext

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


def deleted_objects(
    objs: Iterable[Model], request: HttpRequest, admin_site: Any
) -> tuple[list[Any], dict[str, int | str], set[str], list[Any]]:
    """Django's `get_deleted_objects` (the lines, the count per model, the names of the models
    whose rows the user may not delete, the protected rows), counted rather than walked.

    Django's own walks every row the delete removes (a user's 50,000 admin log entries, a role's
    thousands of member links) and names each on the page. Here the same relations are counted
    by `hard_delete_summary` (the superusers' hard delete page): per model a count and the first
    HARD_DELETE_LISTED rows named, then "and N more"; the queries depend on the models, never on
    the rows. The delete permission is asked as Django asks it, of every row of a registered
    model (those are few here: a schedule's periodic tasks); rows of unregistered models (log
    entries, link rows) are not asked about, as in Django.
    """
    objs = list(objs)
    if not objs:
        return [], {}, set(), []
    model = type(objs[0])
    try:
        summary = hard_delete_summary(model, [obj.pk for obj in objs])
    except TooDeep:
        too_deep = gettext("What goes with these rows is too deep to count: nothing was deleted.")
        return [], {}, set(), [too_deep]
    perms_needed: set[str] = set()
    for part in summary.deleted:
        if not admin_site.is_registered(part.model):
            continue
        model_admin = admin_site.get_model_admin(part.model)
        rows: Iterable[Model] = objs if part.model is model else part.queryset().order_by("pk").iterator()
        if not model_admin.has_delete_permission(request) or not all(
            model_admin.has_delete_permission(request, row) for row in rows
        ):
            perms_needed.add(str(part.model._meta.verbose_name))
    return (
        summary_lines(summary.deleted, admin_site),
        summary_counts(summary.deleted),
        perms_needed,
        summary_lines(summary.protected, admin_site),
    )


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


# --- The superusers' "delete for good" page: counted, never walked -------------------------------
# Django's delete pages load every row a delete removes or that stops it (a vendor's 1,000 products
# and 1,000 orders) and name each. The hard delete page instead follows the same relations as
# Django's Collector (CASCADE goes with the rows, PROTECT and RESTRICT stop them, SET_NULL and
# DO_NOTHING touch no row to delete) as subqueries: per model, one query counts the rows (with a
# digest of their ids, which the confirmation carries back) and one names the first few. The
# number of queries depends on the models, never on the rows. A DO_NOTHING key that is still a
# database constraint (an order item's product) stops the delete too, as PROTECT does: Django
# lets it through and the database refuses it at the end.
#
# The rows that stop a delete are counted up to HARD_DELETE_COUNTED only ("more than 100"): they
# need not be exact, and some are found by a key with no index (an order item's product: nothing
# else reads items by product), whose exact count would read the whole table each time.

HARD_DELETE_LISTED = 20
HARD_DELETE_COUNTED = 100
_MAX_DEPTH = 6


class TooDeep(Exception):
    """A chain of cascades longer than _MAX_DEPTH (a cascading tree): not counted, not deleted."""


@dataclass
class Part:
    """The rows of one model that a hard delete removes (or that stop it)."""

    model: Any
    where: Q
    via: Any = None  # the foreign key a link row was reached through (its other side is named)
    count: int = 0  # when bounded, up to HARD_DELETE_COUNTED + 1: past it, "more than 100"
    bounded: bool = False  # counted up to HARD_DELETE_COUNTED only (the rows that stop a delete)
    digest: str = ""
    rows: list[Model] = field(default_factory=list)

    def queryset(self) -> QuerySet:
        return self.model._base_manager.filter(self.where)

    @property
    def over_bound(self) -> bool:
        return self.bounded and self.count > HARD_DELETE_COUNTED


@dataclass
class HardDeleteSummary:
    deleted: list[Part]
    protected: list[Part]

    @property
    def fingerprint(self) -> str:
        """What the page showed, to compare with what the confirmation would delete."""
        parts = [f"{p.model._meta.label}:{p.count}:{p.digest}" for p in self.deleted]
        return hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()


def _reached(model: Any, where: Q) -> list[tuple[Any, Q, Any, bool]]:
    """(related model, its rows' filter, the key, blocks?) of each relation a delete follows."""
    from django.db.models.deletion import get_candidate_relations_to_delete

    rows = model._base_manager.filter(where)
    found = []
    relations: Iterable[Any] = get_candidate_relations_to_delete(model._meta)
    for rel in relations:
        key = rel.field  # the ForeignKey or OneToOneField pointing at `model`
        on_delete = key.remote_field.on_delete
        # DO_NOTHING with the database's constraint: Django deletes nothing of theirs, and the
        # database refuses the delete while they exist (an ordered product's order items).
        kept_by_database = on_delete is DO_NOTHING and key.db_constraint
        if on_delete not in (CASCADE, PROTECT, RESTRICT) and not kept_by_database:
            continue  # SET_NULL, SET_DEFAULT, SET(), DO_NOTHING without a constraint: none goes
        related_where = Q(**{f"{key.attname}__in": rows.values(key.target_field.attname)})
        found.append((rel.related_model, related_where, key, on_delete is not CASCADE))
    return found


def hard_delete_summary(
    model: Any, pks: Iterable[Any], *, listed: int = HARD_DELETE_LISTED, lock: bool = False
) -> HardDeleteSummary:
    """What deleting the rows `pks` of `model` for good removes and what stops it, counted per
    model, the first `listed` rows of each loaded with what their names read. RESTRICT, and
    DO_NOTHING on a key the database checks, are counted as blocking even when the rows that
    refer go too (Django allows RESTRICT then; no model here uses it, and none cascades to both
    sides of such a key). What blocks is counted up to HARD_DELETE_COUNTED only.

    With `lock` (the confirmation, in the transaction of the deletes), every row that rows could
    be added under (the selected rows, and each cascaded row that others reference: a shelf's
    books, under which pages hang) is locked FOR UPDATE, parents first, before anything is
    counted. A new row's foreign-key check takes FOR KEY SHARE on the row it references, which
    conflicts with FOR UPDATE only (not with FOR NO KEY UPDATE): a row added under them now waits
    for the deletes and then fails, so what is counted is what is deleted, at any depth."""
    deleted: dict[Any, Part] = {model: Part(model, Q(pk__in=list(pks)))}
    protected: dict[Any, Part] = {}
    queue = [(model, deleted[model].where, 0)]
    parents: list[Part] = []
    while queue:
        parent, where, depth = queue.pop(0)
        reached = _reached(parent, where)
        if reached and lock:
            parents.append(Part(parent, where))
        for related, related_where, key, blocks in reached:
            into = protected if blocks else deleted
            part = into.get(related)
            if part is None:
                into[related] = Part(related, related_where, via=key)
            else:
                part.where |= related_where
            if not blocks:
                if depth >= _MAX_DEPTH:
                    raise TooDeep
                queue.append((related, related_where, depth + 1))
    for part in parents:  # breadth first: a level's rows are fixed once its parents are locked
        list(part.queryset().order_by("pk").select_for_update().values_list("pk", flat=True))
    for part in protected.values():
        part.bounded = True
    for part in [*deleted.values(), *protected.values()]:
        _count(part)
        if part.count:
            part.rows = _first_rows(part, listed)
    return HardDeleteSummary(
        deleted=[p for p in deleted.values() if p.count],
        protected=[p for p in protected.values() if p.count],
    )


def _count(part: Part) -> None:
    from django.contrib.postgres.aggregates import StringAgg
    from django.db.models import Count, TextField
    from django.db.models.functions import MD5, Cast

    if part.bounded:
        # SELECT COUNT(*) FROM (... LIMIT 101): stops at the first row past the bound.
        part.count = part.queryset().order_by().values("pk")[: HARD_DELETE_COUNTED + 1].count()
        return
    found = (
        part.queryset()
        .order_by()
        .aggregate(n=Count("pk"), digest=MD5(StringAgg(Cast("pk", TextField()), ",", order_by="pk")))
    )
    part.count, part.digest = found["n"], found["digest"] or ""


def _first_rows(part: Part, listed: int) -> list[Model]:
    """The first rows, with the rows their names read (a stock row's product, a membership's user
    and vendor) in the same query."""
    from django.contrib.auth.models import Permission

    keys = [f.name for f in part.model._meta.concrete_fields if f.many_to_one or f.one_to_one]
    if _is_link(part.model):
        keys += [f"{f.name}__content_type" for f in _links(part.model) if f.related_model is Permission]
    return list(part.queryset().select_related(*keys).order_by("pk")[:listed])


def _over_line(part: Part) -> str:
    """ "and more order items (over 100 in all)": past a bounded count, the number is unknown."""
    return gettext("and more %(name)s (over %(count)s in all)") % {
        "name": _plural(part.model),
        "count": number_format(HARD_DELETE_COUNTED, force_grouping=True),
    }


# --- The soft delete's pages: what the services will refuse, said up front --------------------
# A soft delete is refused while rows use the row through a protected key (live rows of a tracked
# model: a vendor's products; any row of another: an order's payments), okada.core.services
# refuse_if_in_use. The pages ask the same relations, per relation: which selected rows are used
# and the rows using them, each counted up to HARD_DELETE_COUNTED with the first rows named, as
# the hard delete page does: the number of queries depends on the model, not on the selection.


def bounded_part(model: Any, where: Q, *, listed: int = HARD_DELETE_LISTED) -> Part:
    """The rows of `model` matching `where`, counted up to HARD_DELETE_COUNTED (two queries),
    the first `listed` loaded for summary_lines."""
    part = Part(model, where, bounded=True)
    _count(part)
    if part.count:
        part.rows = _first_rows(part, listed)
    return part


def soft_delete_refusals(
    model: Any, pks: Any, admin_site: Any, *, listed: int = HARD_DELETE_LISTED
) -> tuple[list[tuple[str, list[Any]]], list[Part]]:
    """What refuse_if_in_use would refuse among the live rows `pks` of `model` (a list of keys or
    a query of them): (why, the selected rows it refuses, named) per protected key, and the rows
    that use them per model. Four queries per protected key, whatever the selection."""
    from django.db.models import Exists, OuterRef

    from .services import in_use_relations

    refused: list[tuple[str, list[Any]]] = []
    using: dict[Any, Part] = {}
    selected = model.objects.filter(pk__in=pks)
    for key, related, tracked in in_use_relations(model):
        live = Q(deleted_at__isnull=True) if tracked else Q()
        users = Q(**{f"{key.attname}__in": selected.values(key.target_field.attname)}) & live
        used = Exists(related._base_manager.filter(live, **{key.attname: OuterRef(key.target_field.attname)}))
        part = bounded_part(model, Q(pk__in=selected.values("pk")) & Q(used), listed=listed)
        if not part.count:
            continue
        why = (
            gettext("Still used by live %(rows)s: delete or move them first.")
            if tracked
            else gettext("They have %(rows)s, which are kept for good: they cannot be deleted.")
        )
        refused.append((why % {"rows": related._meta.verbose_name_plural}, summary_lines([part], admin_site)))
        if related in using:
            using[related].where |= users
        else:
            using[related] = Part(related, users, bounded=True)
    counted = [bounded_part(p.model, p.where, listed=listed) for p in using.values()]
    return refused, [p for p in counted if p.count]


def _more_line(model: Any, more: int) -> str:
    """ "and 980 more products", in the page's language."""
    if _is_link(model) and more == 1:
        source, target = _links(model)
        name = gettext("link between %(models)s and %(others)s") % {
            "models": source.related_model._meta.verbose_name_plural,
            "others": target.related_model._meta.verbose_name_plural,
        }
    elif _is_link(model):
        name = _plural(model)
    else:
        name = str(model._meta.verbose_name if more == 1 else model._meta.verbose_name_plural)
    return ngettext("and %(count)s more %(name)s", "and %(count)s more %(name)s", more) % {
        "count": number_format(more, force_grouping=True),
        "name": name,
    }


def summary_lines(parts: list[Part], admin_site: Any) -> list[Any]:
    """Each part's first rows as "<Model>: <row>" (linked to the row's page), then "…and N more"."""
    lines: list[Any] = []
    for part in parts:
        opts = part.model._meta
        for row in part.rows:
            if _is_link(part.model):
                source, target = _links(part.model)
                other = target if part.via == source else source
                lines.append(
                    row_line(
                        other.related_model._meta.verbose_name, named(getattr(row, other.name)), link=True
                    )
                )
                continue
            shown: Any = named(row)
            if admin_site.is_registered(part.model):
                try:
                    url = reverse(
                        f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[quote(row.pk)]
                    )
                except NoReverseMatch:
                    pass
                else:
                    shown = format_html('<a href="{}">{}</a>', url, shown)
            lines.append(row_line(opts.verbose_name, shown))
        if part.over_bound:
            lines.append(_over_line(part))
        elif part.count > len(part.rows):
            lines.append(_more_line(part.model, part.count - len(part.rows)))
    return lines


def summary_counts(parts: list[Part]) -> dict[str, int | str]:
    """Each part's count ("more than 100" past a bounded count's bound), per model's plural."""
    return {_plural(p.model): _shown_count(p) for p in parts}


def _shown_count(part: Part) -> int | str:
    if part.over_bound:
        return gettext("more than %(count)s") % {
            "count": number_format(HARD_DELETE_COUNTED, force_grouping=True)
        }
    return part.count
