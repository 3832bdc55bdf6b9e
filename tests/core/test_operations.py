"""Index changes on big tables never block writers: dropped and built CONCURRENTLY, reversibly."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cur.fetchall())


def test_drop_field_index_drops_the_fields_own_index_and_migrating_back_builds_it_again():
    before = "0004_labels"
    try:
        call_command("migrate", "testapp", before, verbosity=0)
        old = indexes("testapp_shelf")
        full = [name for name, d in old.items() if d.endswith("(deleted_at)")]
        assert len(full) == 1, old  # Django's own index of the field, on every row

        call_command("migrate", "testapp", verbosity=0)
        new = indexes("testapp_shelf")
        assert full[0] not in new
        assert new["testapp_shelf_deleted"].endswith("WHERE (deleted_at IS NOT NULL)")
        assert "USING brin (history_date)" in indexes("testapp_historicalshelf")["testapp_hshelf_date"]

        call_command("migrate", "testapp", before, verbosity=0)
        assert indexes("testapp_shelf") == old  # the same index, under the same name
    finally:
        call_command("migrate", "testapp", verbosity=0)
