"""Confirming the superusers' "delete for good" page as a browser does: the confirmation carries
back the fingerprint of what the page counted (okada.core.admin TrackedAdmin.hard_delete_selected)."""

from __future__ import annotations

import re
from typing import Any


def counted(html: str) -> str:
    found = re.search(r'name="counted" value="([0-9a-f]+)"', html)
    assert found, "the page offers a confirmation"
    return found.group(1)


def confirm_hard_delete(client: Any, url: str, selected: list[Any]) -> Any:
    """Open the page for the rows `selected` of the changelist at `url`, then confirm it."""
    post = {"action": "hard_delete_selected", "_selected_action": [str(pk) for pk in selected]}
    page = client.post(url, post)
    assert page.status_code == 200, page.status_code
    return client.post(url, {**post, "confirm": "yes", "counted": counted(page.content.decode())})


def forge_hard_delete(client: Any, url: str, model: Any, selected: list[Any]) -> Any:
    """Confirm a delete for good the page offers no confirmation for, as a script would: with the
    fingerprint of what would go with the rows, so that only the services stand in the way."""
    from okada.core.deletion import hard_delete_summary

    fingerprint = hard_delete_summary(model, selected).fingerprint
    post = {"action": "hard_delete_selected", "_selected_action": [str(pk) for pk in selected]}
    return client.post(url, {**post, "confirm": "yes", "counted": fingerprint})
