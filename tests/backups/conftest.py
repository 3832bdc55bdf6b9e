"""Backups write into a directory of each test's own, never encrypt unless a test says so, and
messages are read in English (the default language is French)."""

from __future__ import annotations

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.OKADA_BACKUP_DIR = tmp_path / "backups"
    settings.OKADA_BACKUP_PASSPHRASE = ""
    return settings.OKADA_BACKUP_DIR


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def client(client, settings):
    """The test client with English chosen (the admin is French until a user picks English)."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client
