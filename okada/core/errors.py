"""Domain errors: raised by services, turned into clear 4xx answers by the API layer."""

from __future__ import annotations

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
    status = 409


class Conflict(DomainError):
    code = "conflict"
    status = 409
