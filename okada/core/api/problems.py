"""Every API error as RFC 9457 problem+json, in the request's language.

`{"type", "title", "status", "detail", "code", "errors": {"field": ["message"]}}` plus the
error's machine-readable details (`DomainError.data`, e.g. `items` short of stock). Services'
`DomainError`s map one to one (code, status, errors, data); DRF's own exceptions (validation,
authentication, 404, 405, parse errors, throttling) get the matching generic code; anything else
is logged and answered as a 500 `internal` problem, never as an HTML page.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    SuspiciousMultipartForm,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, renderers
from rest_framework.response import Response
from rest_framework.utils import encoders

from okada.core.errors import (
    DomainError,
    InternalError,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    Throttled,
    TryAgain,
)
from okada.core.texts import Text

log = logging.getLogger(__name__)

# Deadlock detected, serialization failure: PostgreSQL rolled the transaction back for a
# concurrent one; the same request again goes through.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})

PROBLEM_CONTENT_TYPE = "application/problem+json"
# `type` is a URI naming the problem kind; one per code, documented in the README's table.
TYPE_PREFIX = "urn:okada:problem:"


class _OrjsonRenderer(renderers.JSONRenderer):
    """Plain JSON (compact: no spaces after separators), UTF-8, written by orjson (several times
    faster than the json module on a list page). What orjson does not write itself (lazy
    translations, Decimals) and datetimes (so that they keep DRF's format) go through DRF's
    encoder: the JSON is what DRF's renderer writes. `orjson.Fragment` embeds JSON text
    as it is (e.g. a jsonb column read as text)."""

    compact = True
    _encoder = encoders.JSONEncoder()

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(
            data,
            default=self._encoder.default,
            option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS,
        )


class JSONRenderer(_OrjsonRenderer):
    """`application/json`: every answer (errors are labelled problem+json by problem_response)."""


class ProblemJSONRenderer(_OrjsonRenderer):
    """For clients that accept only `application/problem+json` (e.g. those that read nothing but
    errors): they get answers, not a 406. Listed after JSONRenderer (DRF's negotiation takes the
    first renderer that matches the most specific accepted type, so `*/*` and `application/*`
    still get JSONRenderer). Errors are problem+json whichever renderer was picked; a success is
    labelled `application/json`, what its body is, never as a problem. Not a JSONRenderer
    subclass: the OpenAPI schema lists JSONRenderer's (and subclasses') media types only
    (SPECTACULAR_SETTINGS["RENDERER_WHITELIST"]), so no success is documented as problem+json."""

    media_type = PROBLEM_CONTENT_TYPE

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        # DRF set Content-Type from this renderer's media type just before calling render().
        if response is not None and response.content_type is None and response.status_code < 400:
            response["Content-Type"] = JSONRenderer.media_type
        return super().render(data, accepted_media_type, renderer_context)


# --- Codes for what the HTTP layer refuses (the services never raise these) --------------------


class Malformed(InvalidInput):
    code = "malformed"
    default_message = _("The request body is not valid JSON.")


class MethodNotAllowed(DomainError):
    code = "method_not_allowed"
    status = 405
    default_message = _("This method is not allowed here.")


class NotAcceptable(DomainError):
    code = "not_acceptable"
    status = 406
    default_message = _("The API answers in JSON only (application/json).")


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    default_message = _("The request body is too large.")


class RequestTimeout(DomainError):
    code = "request_timeout"
    status = 408
    default_message = _("The request body did not arrive in time: send the request again.")


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"
    status = 415
    default_message = _("Send the request body as JSON (Content-Type: application/json).")


def unsupported_content_encoding() -> UnsupportedMediaType:
    """A compressed request body (`Content-Encoding` other than identity): the API reads none.
    Answered with `Accept-Encoding: identity` (RFC 7694), as `accept_encoding` in the body."""
    return UnsupportedMediaType(
        _("Send the request body uncompressed: the API reads no Content-Encoding."),
        accept_encoding="identity",
    )


TITLES: dict[int, Any] = {
    400: _("Bad request"),
    401: _("Not authenticated"),
    403: _("Forbidden"),
    404: _("Not found"),
    405: _("Method not allowed"),
    406: _("Not acceptable"),
    408: _("Request timeout"),
    409: _("Conflict"),
    413: _("Payload too large"),
    414: _("URI too long"),
    415: _("Unsupported media type"),
    417: _("Expectation failed"),
    422: _("Unprocessable request"),
    429: _("Too many requests"),
    431: _("Request header fields too large"),
    500: _("Internal server error"),
    503: _("Service unavailable"),
    501: _("Not implemented"),
}


def problem_body(error: DomainError) -> dict[str, Any]:
    """The problem+json document of a domain error."""
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{error.code}",
        "title": str(TITLES.get(error.status, _("Error"))),
        "status": error.status,
        "detail": error.message,
        "code": error.code,
        "errors": error.errors,
    }
    body.update({k: v for k, v in error.data.items() if k not in body})
    return body


def problem_response(error: DomainError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        problem_body(error), status=error.status, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation errors as `{"items.2.quantity": ["..."]}`."""
    return {path: [str(item) for item, _keys in items] for path, items in error_paths(detail, prefix).items()}


Keys = tuple[str | int, ...]


def error_paths(detail: Any, prefix: str = "", keys: Keys = ()) -> dict[str, list[tuple[Any, Keys]]]:
    """`flatten_errors` keeping each message as DRF raised it (an ErrorDetail, with its `code`)
    with the keys that lead to it in the detail (to find the field that raised it)."""
    if isinstance(detail, dict):
        out: dict[str, list[tuple[Any, Keys]]] = {}
        for key, value in detail.items():
            nested = prefix if key == "non_field_errors" and prefix else f"{prefix}.{key}".lstrip(".")
            out.update(error_paths(value, nested, (*keys, key)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "non_field_errors": [(item, keys) for item in detail]} if detail else {}
        out = {}
        for index, item in enumerate(detail):
            out.update(error_paths(item, f"{prefix}.{index}" if prefix else str(index), (*keys, index)))
        return out
    return {prefix or "non_field_errors": [(detail, keys)]}


def as_domain_error(exc: BaseException) -> tuple[DomainError, dict[str, str]]:
    """The domain error (and extra headers) an exception is answered with."""
    if isinstance(exc, DomainError):
        headers = {}
        if "retry_after" in exc.data:  # "try again later": throttled, an Idempotency-Key in flight
            headers["Retry-After"] = str(exc.data["retry_after"])
        if "accept_encoding" in exc.data:  # a compressed body: what the API reads instead
            headers["Accept-Encoding"] = str(exc.data["accept_encoding"])
        return exc, headers
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        first_field, first = next(iter(errors.items()), ("", [""]))
        message = f"{first_field}: {first[0]}" if first_field != "non_field_errors" else first[0]
        return InvalidInput(message or None, errors=errors), {}
    if isinstance(exc, exceptions.ParseError):
        return Malformed(), {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        detail = exc.detail if isinstance(exc, exceptions.AuthenticationFailed) else None
        return NotAuthenticated(detail), {"WWW-Authenticate": 'Bearer realm="api"'}
    if isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)):
        return NotAllowed(), {}
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return NotFound(), {}
    if isinstance(exc, exceptions.MethodNotAllowed):
        return MethodNotAllowed(), {}
    if isinstance(exc, exceptions.NotAcceptable):
        return NotAcceptable(), {}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return UnsupportedMediaType(), {}
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(getattr(exc, "wait", None) or 1)
        return Throttled(retry_after=wait), {"Retry-After": str(wait)}
    if isinstance(exc, UNREADABLE_REQUEST):
        # Logged as Django logs those it answers itself (django.security.<kind>).
        logging.getLogger(f"django.security.{type(exc).__name__}").warning("%s", exc)
        return unreadable_request(exc), {}
    sqlstate = getattr(exc.__cause__, "sqlstate", None) if isinstance(exc, DatabaseError) else None
    if sqlstate in RETRYABLE_SQLSTATES:
        log.warning("the database stopped a request for a concurrent one (SQLSTATE %s): try_again", sqlstate)
        return TryAgain(), {"Retry-After": "1"}
    log.error("unhandled error in the API", exc_info=exc)
    return InternalError(), {}


# The SuspiciousOperations Django raises while reading the request (its fault, a 400). Others
# (SuspiciousFileOperation from storage, a bad export path...) are the server's: a 500, logged.
UNREADABLE_REQUEST: tuple[type[SuspiciousOperation], ...] = (
    DisallowedHost,
    TooManyFieldsSent,
    TooManyFilesSent,
    SuspiciousMultipartForm,
)


def unreadable_request(exc: BaseException | None) -> InvalidInput:
    """What Django refuses to read (a SuspiciousOperation: more query parameters than
    DATA_UPLOAD_MAX_NUMBER_FIELDS, a Host outside ALLOWED_HOSTS...): a 400, not a 500 where a view
    first reads it, nor Django's HTML page when Django refuses it before any view."""
    if isinstance(exc, TooManyFieldsSent):
        return InvalidInput(
            Text(
                gettext_noop("Too many query parameters (at most %(n)d)."),
                n=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            )
        )
    return InvalidInput(_("This request cannot be read: its address or its headers are not valid."))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes a problem+json response."""
    error, headers = as_domain_error(exc)
    if error.status >= 500 and isinstance(exc, DomainError):
        log.error("%s: %s", error.code, error.message, exc_info=exc)
    view = context.get("view")
    if error.status == 405 and view is not None:
        headers["Allow"] = ", ".join(view.allowed_methods)
    return problem_response(error, headers)


# --- Outside DRF: Django's 404/500 handlers and middleware answers --------------------------------


def problem_http_response(error: DomainError, headers: dict[str, str] | None = None) -> HttpResponse:
    """The same document without DRF, for middleware and Django's error handlers."""
    body = JSONRenderer().render(problem_body(error))
    response = HttpResponse(body, status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return problem_http_response(NotFound())
    from okada.core.forbidden import not_found_page

    return not_found_page(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's answer to a request it refuses before any view (it has logged it already)."""
    if is_api(request):
        return problem_http_response(unreadable_request(exception))
    from okada.core.forbidden import bad_request_page

    return bad_request_page(request)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A PermissionDenied raised outside DRF (DRF's views answer their own): under /api/ the same
    problem+json as theirs (the message stays out: it is the admin's), elsewhere the 403 page."""
    if is_api(request):
        return problem_http_response(NotAllowed())
    from okada.core.forbidden import forbidden_page

    return forbidden_page(request, str(exception or ""))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a POST CsrfViewMiddleware refused (no or a wrong token, an expired form,
    another site's Origin). Django has logged `reason` (django.security.csrf); the page shows what
    to do instead of Django's bare English one: the 403 page, as an admin page under the admin, in
    the user's language. Under /api/ the same problem+json 403 as handler403 (DRF's views are
    CSRF-exempt and bearer-authenticated, so only a view outside DRF could get here).

    Reloading the 403 page would send the same POST, stale token and all: the page links to a GET
    of the form (the request's own path, query string kept), whose fresh token is accepted. With
    DEBUG on it also shows Django's `reason` ("Origin checking failed" is CSRF_TRUSTED_ORIGINS or
    the proxy's SSL header, not an expired form); in production never."""
    if is_api(request):
        return problem_http_response(NotAllowed())
    from okada.core.forbidden import forbidden_page

    form = request.get_full_path()
    # A path only: one like "//host/..." would be another site's address to a browser.
    if not url_has_allowed_host_and_scheme(form, allowed_hosts=None) or not form.startswith("/"):
        form = ""
    return forbidden_page(
        request,
        gettext("The form expired or was sent from another site: open the form again and send it again."),
        form_again=form,
        csrf_reason=reason if settings.DEBUG else "",
    )


def handler500(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return problem_http_response(InternalError())
    from django.views.defaults import server_error

    return server_error(request)
