"""django-prometheus's PostgreSQL backend (query metrics) with a cheaper connection health check.

With CONN_HEALTH_CHECKS, Django checks a connection kept from an earlier request before the
request's first query by running `SELECT 1`: a round trip to PostgreSQL on every request, one of
the two or three a product-list page costs in all. Here the round trip is skipped when all of these
hold, and Django's `SELECT 1` decides otherwise (the check is never weaker than Django's for a
connection that has been idle longer than QUIET_SECONDS):

- the connection ran a query in a request (or task) that ended at most QUIET_SECONDS ago: a busy
  process, whose connection PostgreSQL answered a moment ago;
- it is outside a transaction;
- its socket has nothing to read. A connection PostgreSQL dropped (a restart,
  `pg_terminate_backend`, a crash, an idle timeout) leaves its socket readable: the server's last
  message, then the end of the stream. An idle usable one has nothing to read (this project does
  not LISTEN).

What only `SELECT 1` sees is a connection whose server side vanished without a word: the address
taken over by another host (a floating-IP failover), state lost in a NAT or firewall. Its socket
stays quiet, and the first packet sent gets a reset: Django's check then reconnects, a skipped one
lets the request's first query fail. That is why the skip needs a use within QUIET_SECONDS: a
connection idle for longer, the case of a quiet process during a failover, is asked as before.
"""

from __future__ import annotations

import select
import time
from typing import Any

import psycopg  # psycopg 3 (requirements.txt): its connections' `broken` and `info` are used here
from django_prometheus.db.backends.postgresql import base

# How recently a connection must have been used for its health check to skip the round trip.
QUIET_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.used_at: float | None = None  # time.monotonic() at the end of a request that queried

    def close_if_unusable_or_obsolete(self) -> None:
        # Called at the start and at the end of every request and task. `health_check_done` says
        # the request ran a query (every first query checks the connection), and this call resets it.
        if self.health_check_done and self.connection is not None:
            self.used_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def connect(self) -> None:
        super().connect()
        self.used_at = None

    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        if self._quiet_and_idle():
            return True
        return bool(super().is_usable())

    def _quiet_and_idle(self) -> bool:
        """True when the connection was used less than QUIET_SECONDS ago, is outside a
        transaction, and its socket holds nothing to read (checked without blocking); False
        means "ask PostgreSQL"."""
        conn = self.connection
        if self.used_at is None or time.monotonic() - self.used_at > QUIET_SECONDS:
            return False
        if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        try:
            poller = select.poll()  # not select.select: a descriptor past 1024 is refused there
            poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError, psycopg.Error):
            return False
