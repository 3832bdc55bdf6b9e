"""Partition policy of the order timeline (found by okada.partitions at start-up)."""

from django.utils.translation import gettext_lazy as _

from okada.partitions.registry import PartitionPolicy, register

register(
    PartitionPolicy(
        table="orders_orderevent",
        label=_("Order events"),
        retention_months=None,
        archive=True,
        note=_(
            "Kept forever by default: orders are kept forever and their events are their audit "
            "trail. OKADA_PARTITION_RETENTION_MONTHS may set a retention; old months are then "
            "archived to the backup directory before they are dropped."
        ),
    )
)
