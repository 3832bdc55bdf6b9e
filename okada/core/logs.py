"""Structured logs: structlog renders every log line, ours and the libraries' (standard logging).

- `logging_config(fmt)` is the settings' LOGGING: "json" writes one JSON object per line
  (production), "plain" readable lines (development, tests).
- `RequestContextMiddleware` gives each request an id (the caller's `X-Request-ID` when it sends
  a sane one, else a new one, echoed in the response) and makes every line logged while the
  request runs carry it, with the signed-in user or the API credential and its vendor.
- Celery tasks carry their task id and task name (signals connected by `connect_celery()`), and
  `okada.core.jobs.job()` adds the job name and its JobRun id.

Context lives in one context variable (`_bound`, set by `bound()`): for one request or one task, then
cleared, so nothing leaks into the next one a process serves.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

import structlog
import structlog.tracebacks
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.functional import empty
from log_request_id import middleware as log_request_id_middleware

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's X-Request-ID is kept only if it matches (whole: fullmatch, so no trailing newline);
# anything else (8,000 characters, a newline, a space) is replaced by a new id, never echoed or logged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def sane_request_id(value: object) -> bool:
    return isinstance(value, str) and _SANE_REQUEST_ID.fullmatch(value) is not None


_current_request: ContextVar[Any] = ContextVar("okada_log_request", default=None)
# What `bound` and the request and task hooks bind, in the order bound (a new mapping at each
# change, never one changed in place). One variable read per line: structlog's merge_contextvars walks
# every context variable of the thread to find its own, some fifty in a request (asgiref's and
# Django's locals).
_bound: ContextVar[Mapping[str, Any]] = ContextVar("okada_log_bound", default=MappingProxyType({}))


def _merge_bound(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _bound.get().items():
        event.setdefault(key, value)
    return event


def _request_context(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Who the current request acts for, read when the line is written: the user is known only
    after authentication, and an API credential only once the API view authenticated it."""
    request = _current_request.get()
    if request is None:
        # Django logs a refused request ("Unauthorized: /api/v1/products") once the middleware
        # chain has returned, outside the request's binding; its record holds the request.
        record = event.get("_record")
        request = getattr(record, "request", None) if record is not None else None
        request_id = getattr(request, "id", None)
        if request_id is None:
            return event
        event.setdefault("request_id", request_id)
    user = request.__dict__.get("user")  # never evaluate a lazy user here (a query in a log call)
    wrapped = getattr(user, "_wrapped", user)
    # (The fallbacks are computed only when needed: str() of a credential is its dataclass repr.)
    if wrapped is not None and wrapped is not empty and getattr(wrapped, "is_authenticated", False):
        event.setdefault("user", wrapped.username if hasattr(wrapped, "username") else str(wrapped.pk))
    credential = getattr(request, "credential", None)
    if credential is not None:
        scope_key = credential.scope_key if hasattr(credential, "scope_key") else str(credential)
        event.setdefault("credential", scope_key)
        vendor = getattr(credential, "vendor_id", None)
        if vendor is not None:
            event.setdefault("vendor", str(vendor))
    return event


def _shared_processors() -> list[Any]:
    return [
        _merge_bound,
        _request_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),  # logger.info("...", extra={...}) fields become keys
        _without_request,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]


def _without_request(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Django's lines of a refused request pass the request in `extra`: rendered, it was
    `<WSGIRequest: GET '/api/v1/orders?q=677...'>`, a query string with a customer's phone or name
    in the logs (the access log leaves it out on purpose). The line already names the path."""
    if isinstance(event.get("request"), HttpRequest):
        del event["request"]
    return event


class ClientErrorsWithoutTraceback(logging.Filter):
    """Django logs every 4xx it raised (PermissionDenied, Http404, a bad request) with the
    exception's traceback: the caller's mistake, not ours, and a whole traceback per refused
    request (log volume, CPU). Their line stays; the traceback goes. 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True


class Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's ProcessorFormatter, rendering a standard-library record (the access log's, the
    libraries') without the copy of the record it makes first and the formatting of that copy by
    logging.Formatter: with this formatter's options (none but the processors), that formatting
    gives back the rendered line as it is, and the record is only read. The same line, for less
    CPU on every request. A structlog logger's line takes structlog's own path."""

    def __init__(self, processors: list[Any], foreign_pre_chain: list[Any]) -> None:
        super().__init__(processors=processors, foreign_pre_chain=foreign_pre_chain)
        self._chain = (*foreign_pre_chain, *processors)

    def format(self, record: logging.LogRecord) -> str:
        if "_logger" in record.__dict__:  # wrap_for_formatter's: a structlog logger's event
            return super().format(record)
        # As ProcessorFormatter.format does for a foreign record (its defaults: the message with
        # its arguments, no positional_args, no logger), on the record itself.
        event: Any = {"event": record.getMessage(), "_record": record, "_from_structlog": False}
        if record.exc_info:
            event["exc_info"] = record.exc_info
        if record.stack_info:
            event["stack_info"] = record.stack_info
        method = record.levelname.lower()
        for processor in self._chain:
            event = processor(None, method, event)
        return str(event)


def logging_config(fmt: str) -> dict[str, Any]:
    """The LOGGING dict: every handler renders through structlog, as JSON or plain text."""
    if fmt not in ("json", "plain"):
        # As every setting the settings cannot read: ImproperlyConfigured, naming it.
        raise ImproperlyConfigured(f"OKADA_LOG_FORMAT must be json or plain, not {fmt!r}")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any
    if fmt == "json":
        # Tracebacks without the frames' local variables (structlog shows them by default): they
        # hold bearer secrets, passwords and customers' phone numbers.
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        renderer = [tracebacks, structlog.processors.JSONRenderer()]
    else:
        # Plain tracebacks: structlog's default (rich, when installed) prints every frame's local
        # variables, secrets included.
        renderer = [
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": Formatter,
                "foreign_pre_chain": _shared_processors(),
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
            }
        },
        "filters": {"client_errors": {"()": ClientErrorsWithoutTraceback}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "filters": ["client_errors"],
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
    }


def request_id_for(request: Any) -> str:
    """The request's id: one an earlier middleware gave it, the caller's sane X-Request-ID, or new."""
    known = getattr(request, "id", None)
    if sane_request_id(known):
        return str(known)
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    return sent if sane_request_id(sent) else uuid.uuid4().hex


class RequestIDMiddleware(log_request_id_middleware.RequestIDMiddleware):
    """django-log-request-id's middleware (it sets the id the log filter and the response header
    use), keeping a caller's X-Request-ID only if `sane_request_id`; otherwise a new one, as for a
    missing header (GENERATE_REQUEST_ID_IF_NOT_IN_HEADER). The library echoed and logged any value:
    a newline in it made the response a 500 (BadHeaderError)."""

    def _get_request_id(self, request: Any) -> str:
        request_id = super()._get_request_id(request)
        return request_id if sane_request_id(request_id) else self._generate_id()


class RequestContextMiddleware:
    """Binds the request id (and, lazily, user, credential, vendor) to every line of a request."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request_id = request_id_for(request)
        request.id = request_id
        token = _current_request.set(request)
        try:
            with bound(request_id=request_id):
                response = self.get_response(request)
        finally:
            _current_request.reset(token)
        if REQUEST_ID_HEADER not in response:
            response[REQUEST_ID_HEADER] = request_id
        return response


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add `values` to every line logged inside the block (job name, run id ...)."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    _bound.set({"task_id": task_id, "task": getattr(task, "name", None)})  # nothing of an earlier task


def _task_finished(**kwargs: Any) -> None:
    _bound.set({})


def connect_celery() -> None:
    """Every line a task logs carries its task id and name (worker processes import Django)."""
    from celery import signals

    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="okada.logs.task_prerun")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="okada.logs.task_postrun")


def get_logger(name: str) -> Any:
    """A structlog logger (key=value events); standard `logging.getLogger` works just as well."""
    return structlog.stdlib.get_logger(name)
