"""problem+json for the requests gunicorn refuses before Django sees them.

gunicorn answers a request it cannot parse (a malformed request line or header, a URL or headers
over its limits, a bad chunked body, a Transfer-Encoding it does not read) itself, with an HTML
page (`gunicorn.util.write_error`). Each worker swaps that function for `write_problem`
(okada/gunicorn.conf.py, `post_worker_init`), so that these answers too are problem+json, as every
other error of the API and the admin's JSON clients expect. gunicorn still chooses the status and
logs the refusal ("Invalid request from ip=..."); the answer closes the connection as before.

The request's headers were not read, so its `Accept-Language` is unknown: the message is in the
default language (LANGUAGE_CODE, as for a request that sends none), gunicorn's own reason quoted
verbatim in it.
"""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any

import orjson
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from okada.core.errors import DomainError, InternalError, NotAllowed

from .problems import PROBLEM_CONTENT_TYPE, problem_body


class UnreadableRequest(DomainError):
    code = "unreadable_request"
    status = 400
    default_message = _("The HTTP request cannot be read.")


class UriTooLong(DomainError):
    code = "uri_too_long"
    status = 414
    default_message = _("The URL is too long: send the filters in fewer or shorter parameters.")


class ExpectationFailed(DomainError):
    code = "expectation_failed"
    status = 417
    default_message = _("The server cannot meet the request's Expect header: send the request without it.")


class HeadersTooLarge(DomainError):
    code = "headers_too_large"
    status = 431
    default_message = _("The request headers are too many or too large.")


class TransferCodingNotImplemented(DomainError):
    code = "transfer_coding_not_implemented"
    status = 501
    default_message = _("The request's Transfer-Encoding is not supported: send it plain or chunked.")


_BY_STATUS: dict[int, type[DomainError]] = {
    400: UnreadableRequest,
    403: NotAllowed,  # a forwarded-for header from a proxy gunicorn does not trust
    414: UriTooLong,
    417: ExpectationFailed,
    431: HeadersTooLarge,
    501: TransferCodingNotImplemented,
}


def unreadable_error(status: int, reason: str) -> DomainError:
    """The error of a refusal by gunicorn: its status, and its reason (English, technical) quoted."""
    kind = _BY_STATUS.get(status, InternalError)
    if kind is InternalError or not reason:
        return kind()
    return kind(f"{kind.default_message} ({reason})")  # read at once, in the active language


def problem_bytes(status: int, reason: str, mesg: str) -> bytes:
    """The whole HTTP answer to a request gunicorn refused with `status`, `reason` and `mesg`.
    The status line's phrase is the standard one for the status we answer (gunicorn's `reason`
    goes with its own status, which may not be ours: one we have no error for is a 500)."""
    with translation.override(settings.LANGUAGE_CODE):
        error = unreadable_error(status, mesg)
        body = orjson.dumps(problem_body(error))
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str, *_: Any) -> None:
    """`gunicorn.util.write_error`'s signature and way of writing, problem+json instead of HTML."""
    from gunicorn import util

    util.write_nonblock(sock, problem_bytes(status_int, reason, mesg))
