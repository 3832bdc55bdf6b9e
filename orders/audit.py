"""The nightly invariant audit: the stored data checked against the rules the services keep.

Each check is one SQL statement over whole tables, so it reads one consistent snapshot while
orders keep coming, and is set-based (no per-row Python): a hash aggregate of the child table
joined to its parent, sized for the large data set (1M orders, 3M items, 5M movements). A check
returns how many rows break its rule and the first few of them.

Checks that span catalog and orders live here: orders may import catalog, not the reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from catalog.selectors import stock_audit

from .models import MOBILE_MONEY, OPEN_STATUSES, OrderStatus, PaymentStatus
from .selectors import order_total_audit
from .services import SELLS_STOCK

log = logging.getLogger(__name__)

SAMPLE = 20  # rows kept per check in the report (and the JobRun summary)
# Orders whose items are still reserved: open, and not yet turned into a sale.
HOLDING_STOCK = [s for s in OPEN_STATUSES if s not in SELLS_STOCK]

# name -> (rule, SQL returning the rows that break it, their key first: the sample is the first
# rows by key, the same on every run).
SQL_CHECKS: dict[str, tuple[str, str]] = {
    # The database CHECKs total = subtotal + fee on every write; a row from elsewhere (a restored
    # dump, a constraint dropped by hand) is caught here.
    "order_totals": (
        "each order's total is its subtotal plus its delivery fee",
        """
        SELECT o.id, o.number, o.subtotal_xaf, o.delivery_fee_xaf, o.total_xaf
          FROM orders_order o
         WHERE o.total_xaf <> o.subtotal_xaf + o.delivery_fee_xaf
        """,
    ),
    "reserved_vs_open_orders": (
        "each product's reserved stock is the quantity its open orders hold",
        """
        SELECT coalesce(s.product_id, h.product_id) AS product_id, s.reserved,
               coalesce(h.held, 0) AS held
          FROM catalog_stock s
          FULL JOIN (SELECT i.product_id, sum(i.quantity) AS held
                       FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
                      WHERE o.status = ANY(%(holding)s)
                      GROUP BY i.product_id) h ON h.product_id = s.product_id
         WHERE coalesce(s.reserved, 0) <> coalesce(h.held, 0)
        """,
    ),
    "paid_vs_payments": (
        "an order is paid (or refunded) when its successful payments cover its total, else unpaid",
        """
        SELECT o.id, o.number, o.status, o.payment_status, o.total_xaf,
               coalesce(r.received_xaf, 0) AS received_xaf
          FROM orders_order o
          LEFT JOIN (SELECT order_id, sum(received_xaf)::bigint AS received_xaf
                       FROM orders_payment WHERE status = 'succeeded'
                      GROUP BY order_id) r ON r.order_id = o.id
         WHERE CASE o.payment_status
                   WHEN %(unpaid)s THEN coalesce(r.received_xaf, 0) >= o.total_xaf
                   WHEN %(paid)s THEN coalesce(r.received_xaf, 0) < o.total_xaf
                   WHEN %(refunded)s THEN coalesce(r.received_xaf, 0) < o.total_xaf
                                          OR o.status <> %(refunded)s
                   ELSE true
               END
        """,
    ),
    "unpaid_mobile_money_past_pending": (
        "an unpaid mobile-money order is still pending (or cancelled or expired)",
        """
        SELECT o.id, o.number, o.status, o.payment_method
          FROM orders_order o
         WHERE o.payment_method = ANY(%(mobile_money)s) AND o.payment_status = %(unpaid)s
           AND o.status <> ALL(%(unpaid_may_be)s)
        """,
    ),
}

PARAMS: dict[str, Any] = {
    "holding": HOLDING_STOCK,
    "unpaid": PaymentStatus.UNPAID,
    "paid": PaymentStatus.PAID,
    "refunded": PaymentStatus.REFUNDED,
    "mobile_money": list(MOBILE_MONEY),
    "unpaid_may_be": [OrderStatus.PENDING, OrderStatus.CANCELLED, OrderStatus.EXPIRED],
}


@dataclass
class AuditReport:
    """What the audit found: per check, how many rows break its rule and the first of them."""

    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def findings(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """For the JobRun: the count of every check, and the sample rows of those that found any."""
        return {"findings": self.findings, "checks": dict(self.counts), "samples": dict(self.samples)}


# name -> (rule, selector returning the rows that break it), the selectors other code uses too.
SELECTOR_CHECKS: dict[str, tuple[str, Callable[..., list[Any]]]] = {
    "stock_vs_ledger": ("each product's stock is the sum of its ledger movements", stock_audit),
    "order_subtotals": ("each order's subtotal is the sum of its line totals", order_total_audit),
}
CHECKS = [*SELECTOR_CHECKS, *SQL_CHECKS]


def invariant_audit(*, using: str = DEFAULT_DB_ALIAS) -> AuditReport:
    """Run every check (stock = ledger, totals = items, reserved = open items, paid = payments,
    unpaid mobile money still pending); log each finding at ERROR. Writes nothing.

    `using`: another database with the same schema (e.g. a restored copy)."""
    report = AuditReport()
    for name, (rule, selector) in SELECTOR_CHECKS.items():
        mismatches = selector(using=using)
        _add(report, name, rule, len(mismatches), [asdict(m) for m in mismatches[:SAMPLE]])
    with connections[using].cursor() as cur:
        for name, (rule, sql) in SQL_CHECKS.items():
            query = f"SELECT count(*) OVER (), c.* FROM ({sql}) AS c ORDER BY 2 LIMIT {SAMPLE}"  # noqa: S608 (constants)
            cur.execute(query, PARAMS)
            columns = [column.name for column in cur.description[1:]]
            rows = cur.fetchall()
            sample = [dict(zip(columns, row[1:], strict=True)) for row in rows]
            _add(report, name, rule, rows[0][0] if rows else 0, sample)
    return report


def _add(report: AuditReport, name: str, rule: str, count: int, sample: list[dict[str, Any]]) -> None:
    report.counts[name] = count
    if count:
        report.samples[name] = [{k: _jsonable(v) for k, v in row.items()} for row in sample]
        log.error(
            "invariant audit: %d rows break the rule that %s (%s); first: %r", count, rule, name, sample
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)  # a sum of bigints
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
