"""HTTP middleware: one access log line per request, gzip for JSON answers, and
django-prometheus's request metrics with each labelled series found once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware
from django_prometheus import middleware as prometheus

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


class PrometheusAfterMiddleware(prometheus.PrometheusAfterMiddleware):
    """django-prometheus's, with the labelled series it counts into looked up once per process.

    Every request counts into seven series named by labels (method, transport, view, status,
    charset), each found by `metric.labels(...)`: checking and converting the values, taking
    a lock, then a dict lookup, some 3 us each. The same few series come back on every request:
    kept here, one dict lookup. The series are prometheus_client's own objects (its metric
    keeps each one it made for good), so the figures and /metrics are unchanged.
    """

    # The values come from a bounded set (views, methods, statuses), except a method nobody
    # serves in `requests_latency_by_view_method` (django-prometheus keeps it as sent): past this
    # many, the kept lookups start over rather than grow with them.
    MAX_SERIES = 5000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._series: dict[tuple[Any, ...], Any] = {}

    def label_metric(self, metric: Any, request: Any, response: Any = None, **labels: Any) -> Any:
        if not labels:
            return metric
        key = (metric, *labels.items())
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.MAX_SERIES:
                self._series.clear()
            series = self._series[key] = metric.labels(**labels)
        return series
