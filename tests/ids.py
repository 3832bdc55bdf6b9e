"""What a UUID v7 says: its version, its variant and the millisecond it was made."""

from __future__ import annotations

import datetime as dt
import uuid


def uuid7_time(value: uuid.UUID | str) -> dt.datetime:
    """The creation time a UUID v7 carries; fails on any other kind of UUID."""
    value = uuid.UUID(str(value))
    assert value.version == 7, f"{value} is a version {value.version} UUID"
    assert value.variant == uuid.RFC_4122, f"{value} has variant {value.variant}"
    return dt.datetime.fromtimestamp((value.int >> 80) / 1000, tz=dt.UTC)
