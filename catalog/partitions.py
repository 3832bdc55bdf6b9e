"""Partition policy of the stock ledger (found by okada.partitions at start-up)."""

from django.utils.translation import gettext_lazy as _

from okada.partitions.registry import PartitionPolicy, register

register(
    PartitionPolicy(
        table="catalog_stockmovement",
        label=_("Stock movements"),
        retention_months=None,
        retention_configurable=False,
        note=_(
            "Kept forever: the ledger is the history of stock, and the stock audit checks that "
            "each product's stock equals the sum of all its movements."
        ),
    )
)
