"""Read replicas (DESIGN.md section 7: "read replicas through a database router").

With `DATABASE_REPLICA_URL` set, settings add a `replica` database (a streaming standby of the
primary). Nothing reads from it unless asked by name (`reading_alias()`): only long reads that
may lag behind the primary by a few seconds go there, today the order CSV export. Every other
read stays on the primary: a page shown after a save, an API answer after a write, a sync pull
(its horizon is the primary's transaction ids) and the health screens (the primary's own
statistics) must see the primary.

The router keeps writes off the standby (it refuses them anyway): without it, Django saves a row
read from the replica back to the replica.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

log = logging.getLogger(__name__)

REPLICA = "replica"


def reading_alias() -> str:
    """Where a long read that may lag a few seconds goes: the replica if one is set up and
    answers, else the primary (a standby down for maintenance stops no export; it is logged)."""
    if REPLICA not in settings.DATABASES:
        return DEFAULT_DB_ALIAS
    try:
        connections[REPLICA].ensure_connection()
    except OperationalError:
        log.warning(
            "the read replica (DATABASE_REPLICA_URL) cannot be reached: reading from the primary",
            exc_info=True,
        )
        return DEFAULT_DB_ALIAS
    return REPLICA


class PrimaryRouter:
    """Writes and migrations on the primary; reads where the queryset says (`.using()`), else
    the primary (Django's default for a model read without hints)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database and its copy: a row from either may point at one from the other

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # the standby replays the primary's schema
