"""Services of the test-only tracked models, so their admin writes the way every admin does."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from okada.core import services as core
from okada.core.actors import Actor, acting_for

from .models import Shelf


def shelf_create(*, actor: Actor, **data: Any) -> Shelf:
    with transaction.atomic(), acting_for(actor, "shelf created"):
        shelf = Shelf(**data)
        shelf.save()
    return shelf


def shelf_update(*, shelf: Shelf, data: dict[str, Any], actor: Actor) -> Shelf:
    with transaction.atomic(), acting_for(actor, "edited in admin"):
        shelf = core.locked(Shelf.objects, shelf.pk)
        if core.model_fields_update(shelf, data):
            shelf.save()
    return shelf


def tracked_delete(*, obj: Any, actor: Actor) -> Any:
    return core.soft_delete(obj, actor=actor, reason="deleted in admin")


def tracked_restore(*, obj: Any, actor: Actor) -> Any:
    return core.restore(obj, actor=actor, reason="restored in admin")
