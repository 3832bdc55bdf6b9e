"""Domain errors: every refusal a service makes, in one shape the API maps to RFC 9457.

A `DomainError` has
- `code`: stable, machine-readable (clients and tests match on it); one class per code;
- `status`: the HTTP status the API answers with (400, 401, 403, 404, 409, 422, 429, 500);
- `message`: a sentence for people, translated into the active language when raised;
- `text`: the same sentence kept in no language (okada.core.texts), for a message that is
  stored (a sync mutation's rejection): the Text it was raised with, or the msgid of a lazy
  message (gettext_lazy, as the default messages). So services raise with
  `Text(gettext_noop("... %(x)s"), x=...)` when the sentence has parameters, else with
  `gettext_lazy("...")`; a string translated already is kept as it is (in its language), and
  tests/core/test_error_texts.py refuses one in the code;
- `errors`: optional `{field: [messages]}` for input that failed validation;
- `data`: optional machine-readable details (`items` short of stock, `allowed` targets...).

Only subclasses are raised: the base class has no code of its own. Every code is registered
(`DomainError.registry`) and listed in the README's table of error codes (a test keeps the two
in step).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .texts import Text


class DomainError(Exception):
    """A business rule refused the operation (or, for status >= 500, the server is at fault)."""

    code: ClassVar[str] = ""
    status: ClassVar[int] = 400
    default_message: ClassVar[Any] = _("The request was refused.")
    registry: ClassVar[dict[str, type[DomainError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.code:
            raise TypeError(f"{cls.__name__} must set a `code`")
        known = DomainError.registry.get(cls.code)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"error code {cls.code!r} is used by {known.__name__} and {cls.__name__}")
        DomainError.registry[cls.code] = cls

    def __init__(
        self,
        message: Any = None,
        *,
        errors: dict[str, list[Any]] | None = None,
        field: str | None = None,
        **data: Any,
    ) -> None:
        if type(self) is DomainError:
            raise TypeError("raise a DomainError subclass: the base class has no code")
        message = message if message is not None else self.default_message
        self.message = str(message)
        self.text = Text.of(message)
        # `field=` is shorthand for the common case of one message about one field.
        self.errors = {k: [str(m) for m in v] for k, v in (errors or {}).items()}
        if field is not None:
            self.errors.setdefault(field, []).append(self.message)
        self.data = data
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        """The error as plain JSON values (what the API's problem+json body carries)."""
        body: dict[str, Any] = {"code": self.code, "status": self.status, "detail": self.message}
        if self.errors:
            body["errors"] = self.errors
        body.update({k: v for k, v in self.data.items() if k not in body})
        return body


# --- The generic codes (one per HTTP status); services subclass them for specific refusals ------


class InvalidInput(DomainError):
    """Input failed validation; `errors` maps field names to messages."""

    code = "invalid"
    status = 400
    default_message = _("The input is not valid.")


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    status = 401
    default_message = _("Authentication is required: send a valid credential.")


class NotAllowed(DomainError):
    code = "not_allowed"
    status = 403
    default_message = _("You are not allowed to do this.")


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = _("Not found.")


class Conflict(DomainError):
    """The request is valid but the current state refuses it (409)."""

    code = "conflict"
    status = 409
    default_message = _("The current state of the data does not allow this.")


class ChangedSinceOpened(Conflict):
    """Someone changed the row after this user opened the page that would change it (an admin
    form, a sync conflict's resolution): going on would silently undo their change."""

    code = "changed_since_opened"


class InUse(Conflict):
    """Live rows still depend on the row (a vendor's products, a zone's customers): no delete."""

    code = "in_use"
    default_message = _("Live records still depend on this one: delete or move them first.")


class AlreadyRecorded(Conflict):
    code = "already_recorded"
    default_message = _("This was already recorded.")


class IdempotencyMismatch(DomainError):
    code = "idempotency_mismatch"
    status = 422
    default_message = _("This Idempotency-Key was already used for a different request.")


class Throttled(DomainError):
    code = "throttled"
    status = 429
    default_message = _("Too many requests: slow down and retry later.")


class TryAgain(DomainError):
    """PostgreSQL stopped this transaction for a conflicting one running at the same instant (a
    deadlock, a serialization failure) and rolled it back: nothing was applied, and the same
    request sent again goes through. A 503 with Retry-After, not a 500: the client is not at
    fault and neither is the code."""

    code = "try_again"
    status = 503
    default_message = _(
        "A change made at the same moment stopped this one: nothing was applied. Send the same request again."
    )


class InternalError(DomainError):
    """The server is at fault (a corrupt ledger, an unexpected database answer): a 500, logged."""

    code = "internal"
    status = 500
    default_message = _("Internal error: the operation was not applied. Staff have been told.")


def validated(obj: Any, *, exclude: list[str] | None = None, validate_unique: bool = True) -> Any:
    """full_clean() with the result as an InvalidInput instead of a ValidationError.

    Constraints are checked by the database (and mapped by `unique_or`), not here.
    `validate_unique=False` skips the unique fields' checks (a query each, the primary key's
    among them): for a caller that writes many rows and lets the database refuse duplicates.
    """
    from django.core.exceptions import ValidationError

    try:
        obj.full_clean(exclude=exclude, validate_unique=validate_unique, validate_constraints=False)
    except ValidationError as exc:
        errors = {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
        raise InvalidInput(validation_text(exc), errors=errors) from None
    return obj


def validation_text(exc: Any) -> Text:
    """The first message of a Django ValidationError as a Text: its msgid and parameters (a
    model's name among them kept as a word to translate), as the services' own refusals. A
    plural message (ngettext_lazy: "at most %(limit_value)d characters") keeps both msgids. One
    with no msgid to keep (a context, npgettext_lazy) is kept as shown in the active language."""
    first = next(iter(exc.error_dict.values()))[0] if hasattr(exc, "error_dict") else exc.error_list[0]
    text = Text.of(first.message)
    if not text.msgid:
        return Text(first.messages[0])
    params = {k: _word(v) if isinstance(v, Promise) else v for k, v in (first.params or {}).items()}
    return text.with_params(**params)


def _word(value: Promise) -> Text:
    """A lazy parameter as a word to translate. Django passes capfirst(verbose_name), whose own
    words ("Snapshot") no catalog knows: the verbose name's msgid ("snapshot") is, and the French
    reads "Un objet instantané ...", not an English word (told apart in the site's language)."""
    word = Text.of(value)
    lowered = word.msgid[:1].lower() + word.msgid[1:]
    if lowered != word.msgid:
        with translation.override(settings.LANGUAGE_CODE):
            if gettext(word.msgid) == word.msgid and gettext(lowered) != lowered:
                return Text(lowered)
    return word


@contextmanager
def unique_or(error: DomainError, *constraints: str) -> Iterator[None]:
    """Turn a unique violation of one of `constraints` into `error` (a clear 409, not a 500).

    The services check first for a nice message; this closes the race where two requests both
    pass the check. Runs the block in a savepoint so the caller's transaction stays usable.
    """
    with constraints_or(dict.fromkeys(constraints, error)):
        yield


@contextmanager
def constraints_or(errors: Mapping[str, DomainError]) -> Iterator[None]:
    """`unique_or` for several constraints at once, each with its own error, in one savepoint:
    any IntegrityError (unique, CHECK, foreign key) of a constraint named in `errors`."""
    from django.db import IntegrityError, transaction

    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        error = errors.get(getattr(diag, "constraint_name", None) or "")
        if error is not None:
            raise error from None
        raise
