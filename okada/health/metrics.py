"""`/metrics` for Prometheus: django-prometheus' request, database and cache metrics, and Okada's
own gauges and counters (from each app's health.py, see okada.core.health_registry).

Access: `Authorization: Bearer $OKADA_METRICS_TOKEN`, or a client address in
OKADA_METRICS_ALLOWED_IPS; with neither configured every scrape is refused. Behind a reverse
proxy every request comes from the proxy's address, so the allowlist would let everybody in that
the proxy lets through: a request carrying forwarding headers is judged by the client the proxy
names only when it comes from a proxy of OKADA_TRUSTED_PROXIES, and gets no access by
address otherwise (see okada.core.clients).

Okada's figures are computed at scrape time, at most once per OKADA_METRICS_CACHE_SECONDS for all
web processes (the samples are cached in Redis; while Redis is down, at every scrape), each
provider under the health statement timeout; a provider that fails is left out and
`okada_metrics_provider_up{provider}` says 0.
Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode) so request counters add up across workers.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from okada.core import clients
from okada.core import health_registry as registry
from okada.core.db import database_cache_key

from . import pg

log = logging.getLogger(__name__)


def compute() -> list[registry.Metric]:
    """Every provider's metrics now, plus whether each provider answered."""
    found: list[registry.Metric] = []
    up = registry.Metric(
        "okada_metrics_provider_up", "Whether the provider's figures could be read (1) or not (0)."
    )
    for key, provider in registry.metric_providers().items():
        try:
            with pg.reads():  # every provider's queries under the health statement timeout
                found.extend(provider())
            up.samples.append(({"provider": key}, 1))
        except Exception:
            log.exception("metrics provider %s failed", key)
            up.samples.append(({"provider": key}, 0))
    found.append(up)
    return found


def cached() -> list[registry.Metric]:
    """The figures of the last OKADA_METRICS_CACHE_SECONDS, or new ones. With Redis down they are
    computed at every scrape: the scrape must answer most of all when something is wrong."""
    key = database_cache_key("health", "metrics-samples")
    try:
        samples = cache.get(key)
    except Exception:
        log.warning("metrics cache unavailable: figures computed for this scrape", exc_info=True)
        return compute()
    if samples is None:
        samples = compute()
        try:
            cache.set(key, samples, settings.OKADA_METRICS_CACHE_SECONDS)
        except Exception:
            log.warning("metrics cache unavailable: figures not kept", exc_info=True)
    return samples


class OkadaCollector(Collector):
    def describe(self) -> list[Metric]:
        # Without describe() the registry would collect at registration time, in app loading,
        # reading the database and Redis before anything is ready.
        return []

    def collect(self) -> Iterator[Metric]:
        for metric in cached():
            family: Any
            if metric.kind == "counter":
                family = CounterMetricFamily(metric.name, metric.help, labels=_label_names(metric))
            else:
                family = GaugeMetricFamily(metric.name, metric.help, labels=_label_names(metric))
            for labels, value in metric.samples:
                family.add_metric([labels[name] for name in _label_names(metric)], value)
            yield family


def _label_names(metric: registry.Metric) -> list[str]:
    return sorted(metric.samples[0][0]) if metric.samples else []


COLLECTOR = OkadaCollector()
_installed = False


def install() -> None:
    """Put Okada's collector on prometheus_client's default registry (once per process)."""
    global _installed
    if not _installed:
        REGISTRY.register(COLLECTOR)
        _installed = True


def _registry() -> Any:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # gunicorn workers: add their files up
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        merged.register(COLLECTOR)
        return merged
    return REGISTRY


def allowed(request: HttpRequest) -> bool:
    """A scraper with the token, or from an allowed address."""
    token = settings.OKADA_METRICS_TOKEN
    # The scheme is case-insensitive (RFC 9110 section 11.1): "bearer" is Bearer.
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(credentials.strip().encode(), token.encode())
    ):
        return True
    client = clients.client_address(request)
    return client is not None and clients.within(client, settings.OKADA_METRICS_ALLOWED_IPS)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


# --- okada.health's own metrics: the database, jobs, alerts, the Celery queue ----------------------


def database_metrics() -> list[registry.Metric]:
    from .models import Alert
    from .queue import queue_length, queue_names
    from .selectors import job_summary

    with pg.reads() as cur:
        conns = pg.connections(cur)
        db = pg.database(cur)
        jobs = job_summary(cur)
        status = pg.statements_status(cur)
    found = [
        registry.Metric(
            "okada_db_connections",
            "Connections to the server by state.",
            samples=[({"state": r["state"]}, r["n"]) for r in _by_state(conns["by_state"])],
        ),
        registry.Metric(
            "okada_db_max_connections", "max_connections.", samples=[({}, conns["max_connections"])]
        ),
        registry.Metric("okada_db_size_bytes", "This database's size.", samples=[({}, db["bytes"])]),
        registry.Metric(
            "okada_db_xid_age",
            "Transaction id age of this database (wraparound).",
            samples=[({}, db["xid_age"])],
        ),
        registry.Metric(
            "okada_db_mxid_age",
            "Multixact id age of this database (wraparound).",
            samples=[({}, db["mxid_age"])],
        ),
        registry.Metric(
            "okada_db_statements_available",
            "Whether pg_stat_statements can be read.",
            samples=[({}, 1 if status["available"] else 0)],
        ),
        registry.Metric(
            "okada_job_last_success_timestamp_seconds",
            "When each scheduled job last succeeded (Unix time).",
            samples=[({"job": j["name"]}, j["last_success"].timestamp()) for j in jobs if j["last_success"]],
        ),
        registry.Metric(
            "okada_job_last_duration_seconds",
            "How long each scheduled job's last finished run took.",
            samples=[({"job": j["name"]}, j["last_seconds"]) for j in jobs if j["last_seconds"] is not None],
        ),
        registry.Metric(
            "okada_job_failures_24h",
            "Failed or abandoned runs of each job in the last 24 hours.",
            samples=[({"job": j["name"]}, j["failures_24h"]) for j in jobs],
        ),
    ]
    open_alerts: dict[str, int] = {}
    for kind in Alert.objects.open().values_list("kind", flat=True):
        open_alerts[kind] = open_alerts.get(kind, 0) + 1
    found.append(
        registry.Metric(
            "okada_alerts_open",
            "Open health alerts by kind.",
            samples=[({"kind": k}, n) for k, n in sorted(open_alerts.items())],
        )
    )
    try:
        found.append(
            registry.Metric(
                "okada_celery_queue_length",
                "Tasks waiting in the Celery broker's queue.",
                samples=[({"queue": queue_names()[0]}, queue_length())],
            )
        )
    except Exception:
        log.warning("could not read the Celery queue length", exc_info=True)
    return found


def _by_state(by_state: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    for row in by_state:
        totals[row["state"]] = totals.get(row["state"], 0) + row["n"]
    return [{"state": s, "n": n} for s, n in sorted(totals.items())]


def timed(provider: Any) -> Any:
    """Log a provider slower than a second (scrapes must stay cheap at scale)."""

    def run() -> Any:
        started = time.monotonic()
        try:
            return provider()
        finally:
            elapsed = time.monotonic() - started
            if elapsed > 1:
                log.warning(
                    "metrics provider %s took %.2f s", getattr(provider, "__name__", provider), elapsed
                )

    return run


registry.register_metrics("database", timed(database_metrics))
