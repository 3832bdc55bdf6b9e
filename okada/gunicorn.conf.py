"""gunicorn settings: `make serve`, and production (`gunicorn -c okada/gunicorn.conf.py okada.wsgi`).

Sync workers (the API is database-bound and each request is short), 2 x cores + 1 of them by
default. The access log is written by Django (`okada.access`, JSON with the request id), so
gunicorn's own is off; its error log goes to stderr.
"""

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# WEB_THREADS > 1: gthread workers, that many requests at once each, and keep-alive connections
# (sync workers close every connection after its answer).
threads = int(os.environ.get("WEB_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # the Idempotency-Key lock outlives it
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (memory), staggered; 0 never (the benchmarks count workers' CPU).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
accesslog = None
errorlog = "-"
# Trust X-Forwarded-* only from the local reverse proxy (Okada reads it too: OKADA_TRUSTED_PROXIES).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "okada-web"
# No control socket: its default path is one per user, shared by every gunicorn of that user.
control_socket_disable = True


def post_worker_init(worker):
    """Requests gunicorn cannot parse are answered by gunicorn itself, in HTML: problem+json
    instead, as every other error (okada.core.api.unreadable). Once the application is loaded."""
    from gunicorn import util

    from okada.core.api.unreadable import write_problem

    util.write_error = write_problem
    # The objects of the loaded application (about 140,000: modules, models, URL patterns) live
    # as long as the worker: out of the collector's sight, a full collection no longer walks them
    # all (50 to 100 ms of CPU, a pause for the requests queued on this worker, about once every
    # thousand API requests). Memory is unchanged: they would never be freed anyway.
    gc.freeze()
