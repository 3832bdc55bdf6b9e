"""Close the connection after an answer given without reading the request's whole body.

The API answers some requests without reading their body: a refused one (no or a bad credential,
a scope it lacks, its rate, a body over the cap) and one whose body did not arrive in time or
whole. The unread bytes are still on the connection. gunicorn's sync workers close every
connection after its answer; its gthread workers (WEB_THREADS > 1) keep it open, and would first
read the rest of the body to find where the next request starts (up to 64 KiB or 5 s, gunicorn's
own bounds): the very read the answer spared, for a request already answered. So the API marks the
request (`mark`), and `closing` makes gunicorn answer it with `Connection: close` and close the
connection after the answer, whatever the worker kind. Outside gunicorn (the tests' client) the
mark does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

UNREAD = "okada.unread_body"  # the WSGI environ's key: True while a body sent is not read whole


def mark(environ: WSGIEnvironment, unread: bool) -> None:
    """Say whether the request's body is still (partly) on the connection."""
    environ[UNREAD] = unread


def closing(application: WSGIApplication) -> WSGIApplication:
    """`application`, with the connection closed after an answer that left a body unread."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = application(environ, start_response)  # Django has called start_response: nothing sent
        if environ.get(UNREAD):
            # gunicorn hands its Response's bound start_response; force_close() makes it send
            # `Connection: close` and close after the answer (a Connection header from the
            # application is dropped, as hop-by-hop). Another server: nothing to do here.
            response: Any = getattr(start_response, "__self__", None)
            force_close = getattr(response, "force_close", None)
            if callable(force_close):
                force_close()
        return answer

    return wrapped
