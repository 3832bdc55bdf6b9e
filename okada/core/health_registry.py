"""What the apps add to database health: panels of the "Marketplace health" section, alert
conditions, and Prometheus metrics.

The registry lives in `okada.core`, as the dashboard's does, so that the domains never import
`okada.health` (which imports no domain app either): each app declares its contributions in a
`health.py` module, found at start-up by `okada.health` (as the admin finds `admin.py`)::

    # orders/health.py
    from okada.core import health_registry as registry

    registry.register_panel(registry.Panel(key="orders.placements", title=_("Orders placed"),
                                           template="admin/health/panels/placements.html",
                                           build=placements, order=10))
    registry.register_metrics("orders", order_metrics)     # -> list[registry.Metric]
    registry.register_condition(registry.Condition(kind="backup_too_old", title=_("Backup too old"),
                                                   evaluate=stale_backups))  # -> list[Finding]

A condition's `evaluate()` returns what is wrong now, one `Finding` per subject (nothing: all is
well, and its open alerts clear). If it raises, its alerts stay as they were (a check that could
not run proves nothing) and the error is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import autodiscover_modules

from okada.core.texts import Text

WARNING = "warning"
CRITICAL = "critical"


@dataclass(frozen=True)
class Panel:
    key: str
    title: Any
    template: str
    build: Callable[[], dict[str, Any]]
    order: int = 100
    wide: bool = False  # the panel takes the page's whole width


@dataclass(frozen=True)
class Finding:
    """One thing wrong now. `message` is an untranslated msgid (mark it with gettext_noop) with
    %(name)s placeholders filled from `params`: alerts are shown in each reader's language. A
    parameter may be an okada.core.texts.Text (a stored error): it is translated with them.
    A message with plural forms is marked with ngettext_lazy(singular, plural, "the parameter
    that counts")."""

    subject: str
    message: Any  # a msgid, or a lazy plural
    params: dict[str, Any] = field(default_factory=dict)
    severity: str = WARNING

    def text(self) -> Text:
        return Text.of(self.message).with_params(**self.params)


@dataclass(frozen=True)
class Condition:
    kind: str
    title: Any
    evaluate: Callable[[], list[Finding]]


@dataclass(frozen=True)
class Metric:
    """A Prometheus metric family: `kind` is gauge or counter; samples are (labels, value)."""

    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


_panels: dict[str, Panel] = {}
_conditions: dict[str, Condition] = {}
_metrics: dict[str, Callable[[], list[Metric]]] = {}


def register_panel(panel: Panel) -> Panel:
    _panels[panel.key] = panel
    return panel


def register_condition(condition: Condition) -> Condition:
    _conditions[condition.kind] = condition
    return condition


def register_metrics(key: str, provider: Callable[[], list[Metric]]) -> None:
    _metrics[key] = provider


def unregister(key: str) -> None:
    """Forget a panel, condition or metrics provider (tests that register their own)."""
    for table in (_panels, _conditions, _metrics):
        table.pop(key, None)


def panels() -> list[Panel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.key))


def conditions() -> list[Condition]:
    return [c for _, c in sorted(_conditions.items())]


def condition(kind: str) -> Condition | None:
    return _conditions.get(kind)


def metric_providers() -> dict[str, Callable[[], list[Metric]]]:
    return dict(sorted(_metrics.items()))


def autodiscover() -> None:
    autodiscover_modules("health")
