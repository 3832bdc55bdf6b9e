"""Permissions named in the page's language, built when shown (the stored rows never change).

Django names a permission by its row: "Catalogue | catégorie | Can add category". The row's name
is English for good (Django writes "Can add %s" % verbose_name_raw, untranslated), and
simple-history's models are named "historical <name>" in whatever language was active when they
were made. Here each part is taken from the model in the active language instead:

- the four default permissions: a sentence on the model's plural name ("Can add categories",
  "Peut ajouter des catégories": a plural needs no gendered article in French);
- a historical model's: the same on its model's history ("Peut voir l'historique des catégories");
- a permission declared in a model's `Meta.permissions` (ours, with gettext_lazy names): that
  name, translated; one the code no longer declares: its stored name through gettext.

Labels read only the permission's content type (select it with the permission) and the app
registry: no query per permission.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_noop

DEFAULT = {
    "add": gettext_noop("Can add %(models)s"),
    "change": gettext_noop("Can change %(models)s"),
    "delete": gettext_noop("Can delete %(models)s"),
    "view": gettext_noop("Can view %(models)s"),
}
ON_HISTORY = {
    "add": gettext_noop("Can add to the history of %(models)s"),
    "change": gettext_noop("Can change the history of %(models)s"),
    "delete": gettext_noop("Can delete from the history of %(models)s"),
    "view": gettext_noop("Can view the history of %(models)s"),
}
HISTORY_OF = gettext_noop("history of %(models)s")

# Third-party names whose French the admin would show wrong: django-celery-beat's catalogue lacks
# its change tracker's (no admin page: its permissions are its only appearance), leaves some
# plurals unagreed ("tâches périodique") and spells "intervale". Our catalogue, read first by
# Django (LOCALE_PATHS), corrects them everywhere they appear: sidebar, lists, forms, permissions.
_THIRD_PARTY = (
    gettext_noop("periodic task track"),
    gettext_noop("periodic task tracks"),
    gettext_noop("periodic tasks"),
    gettext_noop("solar events"),
    gettext_noop("Periodic Tasks"),
    gettext_noop("interval"),
    gettext_noop("intervals"),
    gettext_noop("Interval Period"),
    gettext_noop("Number of interval periods to wait before running the task again"),
)


def permission_label(permission: Any) -> str:
    """ "<app> | <model> | <what it allows>" in the active language."""
    content_type = permission.content_type
    model = content_type.model_class()
    if model is None:  # a model since removed: its stored names are all there is
        return f"{content_type} | {gettext(permission.name)}"
    opts = model._meta
    base = getattr(model, "instance_type", None)  # simple-history's historical models
    if base is not None:
        plural = str(base._meta.verbose_name_plural)
        sentences, model_name = ON_HISTORY, gettext(HISTORY_OF) % {"models": plural}
    else:
        plural = str(opts.verbose_name_plural)
        sentences, model_name = DEFAULT, str(opts.verbose_name)
    action, _, codename_model = permission.codename.partition("_")
    if codename_model == opts.model_name and action in opts.default_permissions and action in sentences:
        what = gettext(sentences[action]) % {"models": plural}
    else:
        declared = dict(opts.permissions).get(permission.codename)
        what = str(declared) if declared is not None else gettext(permission.name)
    return f"{opts.app_config.verbose_name} | {model_name} | {what}"


def sort_key(label: str) -> str:
    # As the admin's two-box picker sorts what moves between its boxes (SelectBox.sort): the list
    # reads in the same order before and after.
    return label.lower()


def permission_labels(permissions: Iterable[Any]) -> list[str]:
    """The labels of `permissions`, sorted as the picker shows them."""
    return sorted((permission_label(p) for p in permissions), key=sort_key)


def permission_list(permissions: Iterable[Any]) -> str:
    """Permissions one a line, for a read-only page."""
    labels = permission_labels(permissions)
    return format_html_join(mark_safe("<br>"), "{}", ((label,) for label in labels)) if labels else "-"


class _ByLabel(forms.models.ModelChoiceIterator):
    def __iter__(self) -> Iterator[Any]:
        return iter(sorted(super().__iter__(), key=lambda choice: sort_key(str(choice[1]))))


class PermissionChoiceField(forms.ModelMultipleChoiceField):
    """A form's permissions, each by its label, sorted by it (the queryset should select the
    content type, as Django's user and group forms do)."""

    iterator = _ByLabel

    def label_from_instance(self, obj: Any) -> str:
        return permission_label(obj)
