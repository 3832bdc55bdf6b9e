"""Partition policy of the sync change feed (found by okada.partitions at start-up)."""

from django.utils.translation import gettext_lazy as _

from okada.partitions.registry import PartitionPolicy, register

register(
    PartitionPolicy(
        table="sync_change",
        label=_("Sync change feed"),
        retention_months=3,
        archive=False,
        on_detach="sync.services.feed_partition_detached",
        note=_(
            "Three months by default (OKADA_PARTITION_RETENTION_MONTHS may change it): a device "
            "offline for longer downloads its data again. Not archived: the feed holds only ids "
            "of rows that are in their own tables. A month leaving the feed records the highest "
            "position it held, so older cursors are answered reset."
        ),
    )
)
