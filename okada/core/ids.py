"""Time-ordered ids: UUID version 7 (RFC 9562).

A v7 id is 48 bits of Unix time in milliseconds, the version (7), 12 random bits, the variant
(0b10) and 62 random bits. Ids made later sort later, so new rows are inserted at the right edge
of the indexes on them instead of at random pages.

Written here rather than taken from a library: the libraries we looked at (uuid6) keep ids
strictly increasing within a process by moving the timestamp on by a millisecond whenever two
ids fall in the same one, so a burst of ids runs ahead of the clock. Ours keep the real
millisecond, with 74 random bits to tell apart the ids made in it, exactly as okada_uuid7() does
in SQL (orders migration 0010): the same kind of id on both sides.
"""

from __future__ import annotations

import secrets
import time
import uuid

RANDOM_BITS = 74  # 12 after the version, 62 after the variant
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


def uuid7_int(ms: int, random: int) -> int:
    """The 128 bits of the v7 id of Unix millisecond `ms`, its random parts taken from `random`
    (RANDOM_BITS bits). seed_demo calls this with the seeded generator's bits."""
    rand_a, rand_b = (random >> 62) & 0xFFF, random & ((1 << 62) - 1)
    return (ms & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_AND_VARIANT | rand_a << 64 | rand_b


def uuid7() -> uuid.UUID:
    """A new id: the current millisecond and 74 bits from the operating system's CSPRNG."""
    return uuid.UUID(int=uuid7_int(time.time_ns() // 1_000_000, secrets.randbits(RANDOM_BITS)))
