"""Reads for the partition screens: the catalog's view of a table, and the action log."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from . import ddl
from .models import PartitionAction


def partition_list(table: str) -> list[ddl.PartitionInfo]:
    """The table's partitions with bounds, estimated rows (pg_class.reltuples) and sizes."""
    with connection.cursor() as cursor:
        return ddl.partitions(cursor, table)


def archived_partitions(table: str) -> QuerySet[PartitionAction]:
    """Retired partitions of `table` with their archive files, newest first."""
    return PartitionAction.objects.filter(
        table=table, kind=PartitionAction.Kind.ARCHIVED, outcome=PartitionAction.Outcome.SUCCESS
    ).order_by("-started_at")


def recent_actions(table: str, *, limit: int = 50) -> QuerySet[PartitionAction]:
    return PartitionAction.objects.filter(table=table).order_by("-started_at")[:limit]
