"""A `replica` database for tests, as DATABASE_REPLICA_URL sets one up: here a second connection
to the test database whose sessions are read-only, as a hot standby's are (with no lag)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.utils import load_backend

from okada.core.db_router import REPLICA


@contextmanager
def replica_database(settings: Any, **changes: Any) -> Iterator[Any]:
    """`settings`: pytest-django's fixture. `changes`: keys of the replica's settings (PORT...)."""
    database = copy.deepcopy(connections["default"].settings_dict)
    database["OPTIONS"] = {**database["OPTIONS"], "options": "-c default_transaction_read_only=on"}
    database.update(changes)
    # Made as the connection handler makes one, but not named in its settings: Django's test
    # case allows such a connection (it refuses the databases it was not told of at its start).
    replica = load_backend(database["ENGINE"]).DatabaseWrapper(database, REPLICA)
    connections[REPLICA] = replica
    settings.DATABASES = {**settings.DATABASES, REPLICA: database}
    try:
        yield replica
    finally:
        replica.close()
        del connections[REPLICA]
