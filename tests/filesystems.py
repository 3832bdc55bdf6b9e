"""A real small file system for tests of a disk that fills or turns read-only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(parent: Path, size: str = "64k") -> Iterator[Path]:
    """A tmpfs of `size` mounted under `parent` for the block (mounting needs root, as in CI:
    there a refusal fails the test rather than skip it, so these tests never stop running
    unnoticed)."""
    mountpoint = parent / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        why = f"cannot mount a small file system here: {mounted.stderr.decode().strip()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
