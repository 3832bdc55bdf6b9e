"""okada.core.db_router: with a read replica, writes and migrations stay on the primary."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, router
from django.test.utils import CaptureQueriesContext

from okada.core.db_router import REPLICA, reading_alias
from orders.models import Zone
from tests.orders.factories import ZoneFactory
from tests.replicas import replica_database

pytestmark = pytest.mark.django_db(transaction=True)  # the replica's connection reads what is committed


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_row_read_from_the_replica_is_saved_on_the_primary(settings):
    # Without the router Django saves a row back to the database it was read from: the standby,
    # which refuses it ("cannot execute UPDATE in a read-only transaction").
    zone = ZoneFactory(name="Akwa")
    with replica_database(settings) as replica:
        with CaptureQueriesContext(replica) as on_replica:
            read = Zone.objects.using(REPLICA).get(pk=zone.pk)
        assert on_replica.captured_queries, "the row was not read from the replica"
        read.name = "Akwa Nord"
        with CaptureQueriesContext(connection) as on_primary:
            read.save()
        assert any(q["sql"].startswith("UPDATE") for q in on_primary.captured_queries)
        assert Zone.objects.get(pk=zone.pk).name == "Akwa Nord"
        assert reading_alias() == REPLICA
    assert (
        router.allow_migrate(REPLICA, "orders", model_name="zone") is False
    )  # the standby replays the primary
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "orders", model_name="zone") is True


def test_without_a_replica_long_reads_go_to_the_primary():
    assert reading_alias() == DEFAULT_DB_ALIAS
