"""django-prometheus's PostgreSQL backend (query metrics) with a cheaper connection health check.

With CONN_HEALTH_CHECKS, Django checks a connection kept from an earlier request before the
request's first query by running `SELECT 1`: a round trip to PostgreSQL on every request, one of
the two or three a product-list page costs in all. A connection that PostgreSQL dropped between
requests (a restart, `pg_terminate_backend`, a crash, an idle timeout) leaves its socket readable:
the server's last message, then the end of the stream. A connection that is idle and usable has
nothing to read (this project does not LISTEN), so a socket with nothing to read passes without a
round trip, and anything else gets Django's `SELECT 1`, which decides as before: the check is never
less strict than Django's, only cheaper when it can be. A host that vanished without closing its
side (no FIN) is caught by neither check; the TCP keepalives and `tcp_user_timeout` set on every
connection (okada.core.db) bound that wait.
"""

from __future__ import annotations

import select

import psycopg  # psycopg 3 (requirements.txt): its connections' `broken` and `info` are used here
from django_prometheus.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        if self._quiet_and_idle():
            return True
        return bool(super().is_usable())

    def _quiet_and_idle(self) -> bool:
        """True when the connection is open, outside a transaction, and its socket holds nothing
        to read (checked without blocking); False means "ask PostgreSQL"."""
        conn = self.connection
        if conn.closed or conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        try:
            poller = select.poll()  # not select.select: a descriptor past 1024 is refused there
            poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError, psycopg.Error):
            return False
