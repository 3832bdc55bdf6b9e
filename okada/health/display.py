"""How an alert reads to people: its message and its kind in the reader's language (the admin,
the banner, the emails to Operations)."""

from __future__ import annotations

from typing import Any

from okada.core import health_registry as registry
from okada.core.display import job_label
from okada.core.texts import Text

from .models import Alert


def kind_label(kind: str) -> str:
    """An alert's kind (a condition's code, stored) by its condition's title."""
    condition = registry.condition(kind)
    return str(condition.title) if condition is not None else kind


def alert_text(alert: Alert) -> str:
    """The alert's message in the reader's language (okada.core.texts: a parameter that is a
    stored text, e.g. a drill's error, translated with it), a job by its label: the stored
    English text (logs, email) keeps the task name."""
    template, params = alert.data.get("message"), alert.data.get("params") or {}
    if not template or not isinstance(params, dict):
        return alert.message
    if isinstance(params.get("job"), str):
        params = {**params, "job": job_label(params["job"])}
    stored: dict[str, Any] = {"msgid": template, "params": params}
    if isinstance(alert.data.get("plural"), str) and isinstance(alert.data.get("number"), (str, int)):
        stored.update(plural=alert.data["plural"], number=alert.data["number"])
    return Text.from_json(stored).render()
