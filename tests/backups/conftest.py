"""Backups write into a directory of each test's own and never encrypt unless a test says so."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_BACKUP_PASSPHRASE = ""
    return settings.OKADA_BACKUP_DIR
