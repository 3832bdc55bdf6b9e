"""HTTP middleware: one access log line per request, and gzip for JSON answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware

from okada.core import clients

access_log = logging.getLogger("okada.access")

# JSON, and the OpenAPI document (YAML or JSON, ~700 KB): nothing secret in any of them.
COMPRESSED_TYPES = ("application/json", "application/problem+json", "application/vnd.oai.openapi")


class AccessLogMiddleware:
    """`okada.access`: method, path, status, duration, who called; the request id comes from the
    log filter (django-log-request-id), so the JSON log line carries it like every other line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        credential = getattr(request, "credential", None)
        access_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "credential": getattr(credential, "scope_key", None),
                "remote_addr": request.META.get("REMOTE_ADDR"),
                # Behind a trusted proxy, the client it names (else the peer again).
                "client_addr": clients.key_address(request),
            },
        )
        return response


class JsonGZipMiddleware(GZipMiddleware):
    """Compress JSON answers for clients that accept gzip. Only JSON: compressing HTML pages that
    carry a CSRF token would expose them to BREACH; static files are pre-compressed by whitenoise."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not response.get("Content-Type", "").startswith(COMPRESSED_TYPES):
            return response
        return super().process_response(request, response)
