"""Partition policies: one per partitioned table, declared by the app that owns the table.

An app declares its tables' policies in a `partitions.py` module (found at start-up, as the admin
finds `admin.py`), so this package never imports a domain app::

    # orders/partitions.py
    from okada.partitions.registry import PartitionPolicy, register

    register(PartitionPolicy(table="orders_orderevent", label=_("Order events"), ...))

Settings may change what the code declares where the policy allows it:
`OKADA_PARTITION_PREMAKE_MONTHS` (months made ahead when a policy does not say) and
`OKADA_PARTITION_RETENTION_MONTHS` (`{"orders_orderevent": 36}`; "forever" keeps every month).
`policies()` returns the policies with the settings applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _

FOREVER = "forever"


@dataclass(frozen=True)
class PartitionPolicy:
    """How one range-partitioned table is kept.

    - `key`: the timestamptz column the table is partitioned on (exact UTC months).
    - `premake_months`: months made ahead of the current one (None: the setting, default 3).
    - `retention_months`: months kept before the current one; older partitions are retired
      (archived when `archive`, then detached and dropped). None keeps every month.
    - `retention_configurable`: False when dropping old months would break an invariant (the
      stock ledger sums to the stock): settings may then not set a retention.
    - `on_detach`: dotted path of a function `(cursor, table, partition)` called when a partition
      is detached to be retired, in the detach's own transaction (after the DETACH: the
      partition is a table of its own, locked, that no row can reach any more). The sync change
      feed records there the highest position it drops. For a table without DEFAULT partition
      (detached CONCURRENTLY, outside a transaction) it is called right after, in a transaction
      of its own.
    """

    table: str
    label: Any = ""
    key: str = "created_at"
    interval: str = "month"
    premake_months: int | None = None
    retention_months: int | None = None
    archive: bool = True
    retention_configurable: bool = True
    note: Any = ""  # why this retention, shown in the admin
    on_detach: str = ""

    def __post_init__(self) -> None:
        if self.interval != "month":
            raise ImproperlyConfigured(f"{self.table}: only monthly partitions are supported")
        for name in ("premake_months", "retention_months"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ImproperlyConfigured(f"{self.table}: {name} must be a whole number >= 0 or None")
        if self.retention_months is not None and self.retention_months < MIN_RETENTION_MONTHS:
            raise ImproperlyConfigured(
                f"{self.table}: retention_months must be at least {MIN_RETENTION_MONTHS} (or None: forever)"
            )
        if self.retention_months is not None and not self.retention_configurable:
            raise ImproperlyConfigured(f"{self.table}: a retention is declared where none is allowed")

    @property
    def keeps_forever(self) -> bool:
        return self.retention_months is None


_declared: dict[str, PartitionPolicy] = {}


def register(policy: PartitionPolicy) -> PartitionPolicy:
    """Declare `policy` for its table (once: a second, different policy for a table is an error)."""
    known = _declared.get(policy.table)
    if known is not None and known != policy:
        raise ImproperlyConfigured(f"two partition policies for {policy.table}")
    _declared[policy.table] = policy
    return policy


def unregister(table: str) -> None:
    """Forget a table's policy (tests that register a table of their own)."""
    _declared.pop(table, None)


def autodiscover() -> None:
    autodiscover_modules("partitions")


# The least retention the settings may set: 0 would keep the current month alone and retire
# every earlier one at the next run (a value meant as "none" or "forever" read as "nothing").
MIN_RETENTION_MONTHS = 1


def retention_setting(value: Any) -> int | None:
    """A retention from the settings: a whole number of months, at least MIN_RETENTION_MONTHS, or
    "forever" (None). ValueError otherwise (the system check names the variable first)."""
    if value is None or str(value).strip().lower() in (FOREVER, ""):
        return None
    months = int(str(value).strip())
    if months < MIN_RETENTION_MONTHS:
        raise ValueError(value)
    return months


def effective(policy: PartitionPolicy) -> PartitionPolicy:
    """`policy` with the settings applied (the settings are checked by `checks.py`)."""
    premake = policy.premake_months
    if premake is None:
        premake = int(settings.OKADA_PARTITION_PREMAKE_MONTHS)
    retention = policy.retention_months
    overrides = settings.OKADA_PARTITION_RETENTION_MONTHS
    if policy.retention_configurable and policy.table in overrides:
        retention = retention_setting(overrides[policy.table])
    return replace(policy, premake_months=premake, retention_months=retention)


def policies() -> list[PartitionPolicy]:
    """Every declared policy with the settings applied, by table name."""
    return [effective(p) for _, p in sorted(_declared.items())]


def policy_for(table: str) -> PartitionPolicy | None:
    declared = _declared.get(table)
    return effective(declared) if declared is not None else None


def declared() -> dict[str, PartitionPolicy]:
    """The policies as the apps declared them, before settings (for the system checks)."""
    return dict(_declared)


NO_POLICY = _("no policy: not maintained")
