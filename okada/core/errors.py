"""Domain errors: raised by services, turned into clear 4xx answers by the API layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class DomainError(Exception):
    """A business rule refused the operation. `code` is stable: clients and tests match on it."""

    code = "domain_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.data = data

    def __str__(self) -> str:
        return self.message


class NotAllowed(DomainError):
    code = "not_allowed"
    status = 403


class InvalidInput(DomainError):
    """Field validation failed; `data["errors"]` maps field names to messages."""

    code = "invalid"
    status = 400


class Conflict(DomainError):
    code = "conflict"
    status = 409


def validated(obj: Any, *, exclude: list[str] | None = None) -> Any:
    """full_clean() with the result as an InvalidInput (a DomainError) instead of ValidationError.

    Constraints are checked by the database (and mapped by `unique_or`), not here.
    """
    from django.core.exceptions import ValidationError

    try:
        obj.full_clean(exclude=exclude, validate_constraints=False)
    except ValidationError as exc:
        errors = {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
        first = next(iter(errors.values()))[0] if errors else str(exc)
        raise InvalidInput(first, errors=errors) from None
    return obj


@contextmanager
def unique_or(error: DomainError, *constraints: str) -> Iterator[None]:
    """Turn a unique violation of one of `constraints` into `error` (a clear 409, not a 500).

    The services check first for a nice message; this closes the race where two requests both
    pass the check. Runs the block in a savepoint so the caller's transaction stays usable.
    """
    from django.db import IntegrityError, transaction

    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        if getattr(diag, "constraint_name", None) in constraints:
            raise error from None
        raise
