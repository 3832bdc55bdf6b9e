"""System checks that keep every tracked model honest: partial uniqueness, partial deleted index."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks
from django.db.models import UniqueConstraint


def _condition_mentions_deleted_at(constraint: UniqueConstraint) -> bool:
    """True when the condition is `deleted_at IS NULL` AND-ed with anything else."""
    condition = constraint.condition
    if condition is None or condition.negated:
        return False
    children = condition.children if condition.connector == "AND" else [condition]
    return ("deleted_at__isnull", True) in children


@checks.register(checks.Tags.models)
def tracked_models_use_partial_unique(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .models import TrackedModel

    errors: list[checks.CheckMessage] = []
    for model in apps.get_models():
        if issubclass(model, TrackedModel):
            errors += partial_unique_errors(model)
            errors += deleted_index_errors(model)
    return errors


def deleted_index_errors(model: Any) -> list[checks.CheckMessage]:
    """An error unless `model` indexes its soft-deleted rows with a partial index only."""
    for index in model._meta.indexes:
        condition = index.condition
        if (
            list(index.fields) == ["deleted_at"]
            and condition is not None
            and list(condition.children) == [("deleted_at__isnull", False)]
        ):
            return []
    return [
        checks.Error(
            f"{model._meta.label} has no partial index of its deleted rows.",
            hint="Add okada.core.models.deleted_rows_index(name) to Meta.indexes.",
            obj=model,
            id="okada.E002",
        )
    ]


def partial_unique_errors(model: Any) -> list[checks.CheckMessage]:
    """Errors for every uniqueness rule of `model` that would also count soft-deleted rows."""
    hint = "Use okada.core.models.live_unique() in Meta.constraints."
    problems = [
        f"{model._meta.label}.{field.name} is unique=True"
        for field in model._meta.local_fields
        if field.unique and not field.primary_key
    ]
    if model._meta.unique_together:
        problems.append(f"{model._meta.label} uses unique_together")
    # A model may name constraints that are unique over deleted rows on purpose (`unique_forever`:
    # values no one ever types again, such as an order number made by a sequence).
    forever = set(getattr(model, "unique_forever", ()))
    problems += [
        f"{model._meta.label} constraint {c.name} is not partial on deleted_at IS NULL"
        for c in model._meta.constraints
        if isinstance(c, UniqueConstraint) and not _condition_mentions_deleted_at(c) and c.name not in forever
    ]
    return [
        checks.Error(f"{p}: a deleted row would block re-creation.", hint=hint, obj=model, id="okada.E001")
        for p in problems
    ]


RATE_SETTINGS = (
    "OKADA_API_RATE_LIMIT",
    "OKADA_API_ANON_RATE_LIMIT",
    "OKADA_API_LOGIN_RATE_LIMIT",
    "OKADA_API_LOGIN_ADDRESS_RATE_LIMIT",
    "OKADA_API_LOGIN_ACCOUNT_RATE_LIMIT",
)


@checks.register()
def rate_settings_parse(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A mistyped rate would otherwise surface as a 500 on the first request (or login) it limits."""
    from django.conf import settings

    from .api.ratelimit import Rate

    errors: list[checks.CheckMessage] = []
    for name in RATE_SETTINGS:
        try:
            Rate.parse(str(getattr(settings, name)))
        except ValueError as exc:
            errors.append(checks.Error(f"{name}: {exc}", id="okada.E003"))
    return errors
