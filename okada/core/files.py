"""Files that must survive a power cut: the backups and the partition archives (the only copy of
a retired month) are written under OKADA_BACKUP_DIR through these."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make the names created, renamed or removed in `directory` durable (fsync of a file alone
    does not write its directory entry)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file written earlier (perhaps by another process) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner_only_directory(directory: Path) -> None:
    """Create `directory` and any missing parent with mode 0700 (dumps hold every customer's phone
    number), each new name synced into its parent: a file in a directory a power cut forgets is
    lost with it."""
    missing = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode goes through the umask
        fsync_dir(path.parent)
