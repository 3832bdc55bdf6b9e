"""`ApiView`: the base of every `/api/v1/` endpoint (see the package docstring for what it does)."""

from __future__ import annotations

import io
import logging
import time
from typing import Any, ClassVar

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView
from gunicorn.http.errors import NoMoreData, ParseException
from rest_framework import exceptions
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from okada.core.actors import Actor
from okada.core.errors import InvalidInput, NotAuthenticated, NotFound

from . import idempotency
from .auth import Credential, SignedBodyAuthentication
from .problems import (
    JSONRenderer,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    unsupported_content_encoding,
)
from .ratelimit import CredentialRateThrottle
from .unreadable import UnreadableRequest

log = logging.getLogger(__name__)


# Answers an Idempotency-Key does not keep although the handler ran (besides 500 and more):
# refusals of the caller, not of the request (401 who is calling, 403 what they may do or their
# vendor's standing, e.g. `vendor_suspended`, 429 their rate). Nothing was done, and what refused
# it may change within the 24 h (staff reactivate the vendor, a scope is granted, the window
# ends): a retry with the same key runs again rather than replaying the refusal. And 415: the
# body's label (Content-Type), which the key's fingerprint (method, path, body) does not hold,
# so a retry with the label corrected is "the same request" and got the 415 again for 24 h
# (the 415 of a compressed body never reaches the store either: `_check_body`). Everything
# else is an answer about the request and is kept: 2xx, 400 (its input), 404 (what it names),
# 409 (the state it met: out_of_stock, version_conflict...), 422 -- except the codes below.
NOT_KEPT_STATUSES = frozenset({401, 403, 415, 429})

# Problem codes not kept whatever their status: refusals that depend only on the vendor's current
# standing, not on anything the request says or met in its own data. `vendor_not_active` (409, an
# order for a vendor that is pending or suspended, or deleted meanwhile;
# orders.services.VendorNotActive) is the one today: staff activate the vendor within the key's
# 24 h, and the storefront's retry with the same key must then place the order, not replay the
# refusal. Like the statuses above, it changes nothing (a refused placement leaves no order nor
# customer; the transaction is rolled back with the key's).
# Not here: codes about the request's own objects and their state (out_of_stock,
# product_unavailable, zone_unavailable, version_conflict...), kept as any other 409.
# (`vendor_suspended` is a 403, already not kept by its status.)
VENDOR_STANDING_CODES = frozenset({"vendor_not_active"})


def is_kept(status: int, code: str | None = None) -> bool:
    """Whether an Idempotency-Key keeps an answer of this status (and problem `code`) for replay."""
    return status < 500 and status not in NOT_KEPT_STATUSES and code not in VENDOR_STANDING_CODES


def problem_code(response: HttpResponseBase) -> str | None:
    """The `code` of a problem answer (status 400 or more) before it is rendered; None otherwise."""
    data = getattr(response, "data", None)
    if response.status_code < 400 or not isinstance(data, dict):
        return None
    code = data.get("code")
    return code if isinstance(code, str) else None


class _NotKept(Exception):
    """The handler's answer is not kept (`is_kept`): roll the idempotent transaction back."""

    def __init__(self, response: HttpResponseBase) -> None:
        self.response = response


class Metadata(SimpleMetadata):
    """What OPTIONS answers: the formats, and where the endpoint is documented. Not DRF's `name`
    and `description`: the Python class's name ("Product List Api") and docstring are ours, in
    English, and say nothing the documentation does not say better."""

    def determine_metadata(self, request: Request, view: APIView) -> dict[str, Any]:
        described = super().determine_metadata(request, view)
        return {
            "renders": described["renders"],
            "parses": described["parses"],
            "docs": request.build_absolute_uri(reverse("api-docs")),
        }


class ApiView(APIView):
    """Authentication, scopes, rate limits, body cap, Idempotency-Key, problem+json.

    Class attributes a view sets:
    - `required_scopes = {"GET": "products:read", "POST": "products:write"}`;
    - `allowed_roles = {"storefront"}` (or per method: `{"POST": {"storefront", "vendor"}}`);
    - `idempotent = False` to turn the Idempotency-Key store off (an answer that holds a secret,
      such as a new token, must never be stored);
    - `query_params = {"GET": ("limit", "cursor", ...)}`: the query parameters each method takes,
      as its schema documents them (tests/core/api/test_schema.py compares the two); any other
      is a 400 naming it, so a mistyped filter (`?is_activ=false`) is an error rather than the
      whole list; so is one given twice (each takes one value: only the last counted, so
      `?atomic=true&atomic=false` applied a bulk upsert item by item). `None`: not checked (a
      provider's callback URL may carry its own).
    """

    required_scopes: dict[str, str | tuple[str, ...]] = {}  # per method: a scope, or all of several
    allowed_roles: Any = None
    idempotent = True
    query_params: dict[str, tuple[str, ...]] | None = {}
    metadata_class = Metadata  # type: ignore[assignment]  # the stubs say an instance; DRF calls it

    # --- who is calling ------------------------------------------------------------------------

    @property
    def actor(self) -> Actor:
        return self.credential.actor

    @property
    def credential(self) -> Credential:
        credential = self.request.auth
        if not isinstance(credential, Credential):  # a view without authentication asked for it
            raise NotAuthenticated()
        return credential

    # --- the request cycle ---------------------------------------------------------------------

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's checks, in this order (README "Rate limits"):

        1. what needs no credential: the body cap (413), the method (405), content negotiation
           (406). Noted, not answered yet: a credential's refused requests count too. A view that
           authenticates with the body (a signed callback) answers them at once, before the
           signature is computed over a body it should not read or a method it does not serve;
        2. authentication (401). A request without a valid credential has no credential's limit:
           it counts against its address's (`OKADA_API_ANON_RATE_LIMIT`), a failed one included;
        3. the rate limit (429), before the permissions: every request of a credential counts,
           a 403 included (DRF checks permissions first, so a credential probed without limit);
        4. the refusal noted in 1, then the permissions (401 without a credential, 403).
        """
        self.format_kwarg = self.get_format_suffix(**kwargs)
        refusal: Exception | None = None
        try:
            _check_body(request)
        except (PayloadTooLarge, UnsupportedMediaType) as exc:
            refusal = exc
        method = str(request.method).lower()
        if refusal is None and not (method in self.http_method_names and hasattr(self, method)):
            refusal = self.method_refusal(request)
        try:
            negotiated = self.perform_content_negotiation(request)
        except exceptions.NotAcceptable as exc:
            negotiated = self.perform_content_negotiation(request, force=True)
            refusal = refusal or exc
        request.accepted_renderer, request.accepted_media_type = negotiated
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        signed = any(isinstance(a, SignedBodyAuthentication) for a in request.authenticators or ())
        if refusal is not None and signed:
            raise refusal
        try:
            self.perform_authentication(request)
        except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, NotAuthenticated):
            self._count_for_address(request)
            raise
        self.check_throttles(request)
        if refusal is not None:
            raise refusal
        self.check_permissions(request)
        self._refuse_unknown_query_params(request)

    def method_refusal(self, request: Request) -> Exception:
        """The answer to a method this view does not serve (raised once the credential and its
        rate are checked, as step 4 of `initial` says)."""
        return exceptions.MethodNotAllowed(str(request.method))

    def _refuse_unknown_query_params(self, request: Request) -> None:
        if self.query_params is None or request.method == "OPTIONS":  # describes the URL, reads none
            return
        method = "GET" if request.method == "HEAD" else str(request.method)
        unknown = set(request.query_params) - set(self.query_params.get(method, ()))
        if unknown:
            raise InvalidInput(
                _("Unknown query parameter: see the API documentation for this URL's parameters."),
                errors={name: [_("Unknown query parameter.")] for name in sorted(unknown)},
            )
        repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1)
        if repeated:
            raise InvalidInput(
                _("A query parameter is given more than once: give each one once."),
                errors={name: [_("Give this query parameter once.")] for name in repeated},
            )

    def _count_for_address(self, request: Request) -> None:
        """A failed authentication counts against the caller's address (429 past its limit)."""
        for throttle in self.get_throttles():
            if isinstance(throttle, CredentialRateThrottle) and not throttle.allow_request(
                request, self, anonymous=True
            ):
                self.throttled(request, throttle.wait() or 1.0)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """DRF's dispatch, with the handler run through the Idempotency-Key store for POSTs."""
        self.args = args
        self.kwargs = kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            self.initial(drf_request, *args, **kwargs)
            response: Any = self._run(drf_request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response

    def _handler(self, request: Request) -> Any:
        if request.method and request.method.lower() in self.http_method_names:
            return getattr(self, request.method.lower(), self.http_method_not_allowed)
        return self.http_method_not_allowed

    def _run(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        handler = self._handler(request)
        if request.method != "POST" or not self.idempotent:  # the header is ignored: not checked
            return handler(request, *args, **kwargs)
        key = idempotency.validate_key(request.headers.get(idempotency.HEADER))
        if key is None:
            return handler(request, *args, **kwargs)
        scope = self.credential.scope_key if isinstance(request.auth, Credential) else self._anonymous_scope()
        # One transaction: the key's lock, the handler's writes and the record with the answer
        # (see idempotency's docstring). A refusal of the key (409, 422) rolls it back, as does an
        # answer that is not kept (`is_kept`: 5xx, and 401, 403, 429, which refuse the caller, and
        # the vendor-standing codes such as 409 `vendor_not_active`: all wrote nothing), so that a
        # retry with the key runs again.
        try:
            with transaction.atomic():
                outcome = idempotency.begin(
                    scope=scope,
                    key=key,
                    method=request.method,
                    path=request.get_full_path(),
                    body=request.body,
                )
                if isinstance(outcome, idempotency.Replay):
                    return outcome.response()
                try:
                    response: Any = handler(request, *args, **kwargs)
                except Exception as exc:
                    response = self.handle_exception(exc)
                if not is_kept(response.status_code, problem_code(response)) or connection.needs_rollback:
                    raise _NotKept(response)
                response = self.finalize_response(request, response, *args, **kwargs)
                if isinstance(response, Response):
                    response.render()
                idempotency.keep(outcome, response)
            return response
        except _NotKept as refused:  # rolled back: nothing kept, a retry runs again
            return refused.response

    def _anonymous_scope(self) -> str:
        """Endpoints without a credential (payment callbacks) scope keys by view."""
        return f"anon:{type(self).__name__}"

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        usage = getattr(request, "ratelimit", None)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        return response


def _check_body(request: Request) -> None:
    """413 for a body over OKADA_API_MAX_BODY_BYTES (before it is read); a chunked one is read
    here, under the cap. 415 for a compressed body: nothing decompresses it (a gzipped body was
    answered "not valid JSON", a plain one labelled `deflate` was read as plain)."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not (length.isascii() and length.isdigit()) or int(length) > settings.OKADA_API_MAX_BODY_BYTES:
        raise PayloadTooLarge(max_bytes=settings.OKADA_API_MAX_BODY_BYTES)
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    coding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if coding not in ("", "identity") and (int(length) > 0 or chunked):
        raise unsupported_content_encoding()
    if chunked or length != "0":
        # A 408 or a 400 here is answered at once: the request is broken, whoever sent it.
        _read_body(request, None if length == "0" else int(length))


def _read_body(request: Request, length: int | None) -> None:
    """Read the body now: `length` bytes, or a chunked one (`None`; gunicorn undoes the chunks)
    until its end, under the body cap. Under gunicorn, within OKADA_API_BODY_TIMEOUT_SECONDS.

    Chunked: Django reads CONTENT_LENGTH bytes of a body, so without one it read nothing: a
    chunked PATCH answered 200 and changed nothing, a chunked POST was refused as empty. It is
    read here as if its length had been sent (one byte over the cap says it is over: 413).

    In time: a client whose body stops short (a Content-Length that lies, a device whose network
    dropped mid-upload) left the worker waiting on the socket until gunicorn killed it
    (GUNICORN_TIMEOUT, 30 s by default): a 500, after holding one of the few workers that long.
    Now a 408 `request_timeout` when the time is up, and a 400 `unreadable_request` when the
    client closed its side before its Content-Length (never read as if whole). The socket's own
    timeout is put back afterwards: the answer is written at the client's pace. Outside gunicorn
    (the tests' WSGI handler) there is no socket to bound."""
    django_request = request._request
    if getattr(django_request, "_read_started", False):  # read already (by middleware): Django keeps it
        return
    environ = django_request.META  # META is the WSGI environ
    sock = environ.get("gunicorn.socket")
    cap = settings.OKADA_API_MAX_BODY_BYTES
    wanted = cap + 1 if length is None else length
    deadline = time.monotonic() + settings.OKADA_API_BODY_TIMEOUT_SECONDS
    previous = sock.gettimeout() if sock is not None else None
    parts: list[bytes] = []
    received = 0
    try:
        while received < wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout()
            if sock is not None:
                sock.settimeout(remaining)
            # Small reads: gunicorn loops on recv until it has what it was asked for, so the
            # deadline is checked between them.
            chunk = environ["wsgi.input"].read(min(_BODY_READ_BYTES, wanted - received))
            if not chunk:
                break
            parts.append(chunk)
            received += len(chunk)
    except TimeoutError:
        raise RequestTimeout() from None
    except ConnectionError:
        # The client's network cut the upload (a reset, common on mobile networks): its fault,
        # not the server's, so a 4xx (nobody may read it), not a 500 logged with a traceback.
        raise UnreadableRequest(
            _("The connection was cut while the request body was sent: send the request again.")
        ) from None
    except (NoMoreData, ParseException):
        # A chunked body gunicorn cannot read (a bad chunk size, the client gone mid-chunk): it
        # refuses it only when it reads the body itself, so here it is ours to refuse (was a 500).
        raise UnreadableRequest() from None
    finally:
        if sock is not None:
            sock.settimeout(previous)
    if length is None and received > cap:
        raise PayloadTooLarge(max_bytes=cap)
    if length is not None and received < length:
        raise UnreadableRequest(_("The request body ended before its Content-Length: send it again."))
    django_request._stream = io.BytesIO(b"".join(parts))
    environ["CONTENT_LENGTH"] = str(received)


_BODY_READ_BYTES = 16 * 1024


def not_found() -> NotFound:
    """What a caller gets for another tenant's object: exactly what a missing one gets."""
    return NotFound()


class UnknownUrlApi(ApiView):
    """Every URL under /api/ that no endpoint serves: a problem+json 404, checked like any answer.

    A 404 answered by Django before any view (no credential read) was neither counted nor
    carried `RateLimit-*`: a client could probe URLs without limit. Here it goes through
    `ApiView.initial` as every endpoint does: a valid credential's request counts against its
    limit (no database query beyond authentication's: none for a credential kept by this
    process), one without a credential against its address's, a bad credential is a 401, and
    past the limit a 429. Every method is a 404 (none is a 405: nothing is served here); no
    query parameter is checked, nothing is kept under an Idempotency-Key (nothing was done)."""

    permission_classes: list[Any] = []
    idempotent = False
    query_params = None
    schema = None  # not an operation of the OpenAPI document

    def _not_found(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotFound()

    get = post = put = patch = delete = head = options = trace = _not_found

    def method_refusal(self, request: Request) -> Exception:
        # A method no view names (PROPFIND, CONNECT, FOO) is not served here either: a 404 too.
        return NotFound()

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotFound()

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response.headers.pop("Allow", None)  # DRF lists every method defined above: none is served
        return response


class SchemaApi(SpectacularAPIView):
    """/api/schema/: the OpenAPI document, in YAML or JSON (`?format=json`). Its errors (a
    `format` it does not serve, a POST) were rendered by the negotiated renderer, YAML by
    default, under a problem+json label: they are JSON, as every other error under /api/."""

    # The document is the same for every caller (public, read without a credential): it depends
    # only on the code, the settings, the language and the format. Each is generated and written
    # once per process (about 65 ms to generate, 150 ms more to write as YAML, on an endpoint
    # anyone may call) and forgotten when a setting changes (tests).
    _documents: ClassVar[dict[tuple[str, str], tuple[bytes, list[tuple[str, str]]]]] = {}

    def _document_key(self, request: Request) -> tuple[str, str] | None:
        """(language, media type) of the document asked for; None for a language we do not
        have (`?lang=` takes any text: caching each would let the cache grow without bound)."""
        language = request.query_params.get("lang") or translation.get_language()
        if language not in {code for code, _name in settings.LANGUAGES}:
            return None
        return language, str(request.accepted_media_type)

    def _get_schema_response(self, request: Request) -> HttpResponseBase:
        """SpectacularAPIView.get's document (`get` itself keeps the library's schema marks)."""
        key = self._document_key(request)
        cached = self._documents.get(key) if key else None
        if cached is None:
            return super()._get_schema_response(request)
        content, headers = cached
        response = HttpResponse(content)
        for name, value in headers:
            response[name] = value
        return response

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        key = self._document_key(request)
        if isinstance(response, Response) and response.status_code == 200 and key is not None:
            response.render()
            self._documents[key] = (response.content, list(response.items()))
        return response

    def handle_exception(self, exc: Exception) -> Any:
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


@receiver(setting_changed)
def _forget_schema_documents(**kwargs: Any) -> None:
    SchemaApi._documents.clear()
