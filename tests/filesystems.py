"""Real file systems for tests: a small tmpfs for a disk that fills or turns read-only, and a strace
of what a process asked of the file system (fsync, link, unlink), in order."""

from __future__ import annotations

import os
import re
import shutil
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


def traced_calls(command: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> list[tuple[str, str]]:
    """Run `command` (its own process only, not its children) under strace and return the file
    system calls it made, in order, as (call, path): ("fsync", path of the descriptor),
    ("link", new name), ("unlink", path). A real trace of what reached the kernel, never a mock
    of os.fsync. strace is required, as in CI (elsewhere, its absence skips the test)."""
    strace = shutil.which("strace")
    if strace is None:
        why = "strace is not installed (apt-get install -y strace)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    done = subprocess.run(
        [strace, "-qq", "-e", "trace=openat,fsync,link,linkat,unlink,unlinkat", "-o", str(log), *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    opened: dict[str, str] = {}
    calls = []
    for line in log.read_text().splitlines():
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
        result = line.rsplit("=", 1)[-1].strip().split(" ")[0]
        if result.startswith("-"):
            continue  # the call failed
        if line.startswith("openat("):
            opened[result] = paths[0]
        elif line.startswith("fsync("):
            calls.append(("fsync", opened.get(line[6:].split(")")[0], "?")))
        elif line.startswith(("link(", "linkat(")):
            calls.append(("link", paths[1]))
        elif line.startswith(("unlink(", "unlinkat(")):
            calls.append(("unlink", paths[0]))
    return calls
